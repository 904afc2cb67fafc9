// The route table: which worker serves a URL prefix, the instances each worker has, and the
// upstreams that get its requests. The proxy reads it once per request; the supervisor changes it.
// One object for the server's life, changed only through its methods, so every Fastify context
// sees the same table.
import type { WorkerSpec } from '../config/worker-discovery.js'
import type { WorkerInstance } from '../process/worker-instance.js'
import { pathOf } from '../url-paths.js'
import { StaticFiles, type StaticFilesSnapshot } from './static-files.js'
import { UpstreamTraffic } from './upstream-traffic.js'

export interface WorkerEntry {
  readonly spec: WorkerSpec
  readonly staticFiles: StaticFiles
  /** Every instance that exists, whatever its state. */
  readonly instances: ReadonlySet<WorkerInstance>
  /** Origins that get new requests. Replaced whole, in one step, by publish(). */
  readonly upstreams: readonly string[]
}

export interface RouteMatch {
  entry: WorkerEntry
  /** The path the worker sees: the route prefix removed (the proxy appends the raw query string). */
  forwardPath: string
}

/** One worker's route as a data plane holds it (src/proxy/data-planes.ts): no instances, only upstreams. */
export interface WorkerSnapshot {
  spec: WorkerSpec
  files: StaticFilesSnapshot
  upstreams: string[]
}

interface MutableEntry extends WorkerEntry {
  spec: WorkerSpec
  instances: Set<WorkerInstance>
  upstreams: string[]
  /** Round-robin start among equally busy upstreams. */
  cursor: number
}

export class RouteTable {
  readonly #byName = new Map<string, MutableEntry>()
  readonly #byRoute = new Map<string, MutableEntry>()
  /** Requests in flight, totals and latencies, per upstream origin. */
  readonly traffic = new UpstreamTraffic()
  readonly #listeners = new Set<(name: string) => void>()

  /** Calls `listener` with a worker's name after its route, spec, public/ files or upstreams change. */
  onChange (listener: (name: string) => void): void {
    this.#listeners.add(listener)
  }

  #changed (name: string): void {
    for (const listener of this.#listeners) listener(name)
  }

  /** Adds a worker (or replaces its spec) and routes its prefix to it. */
  setWorker (spec: WorkerSpec, staticFiles: StaticFiles): WorkerEntry {
    const existing = this.#byName.get(spec.name)
    if (existing && existing.spec.route !== spec.route) this.#byRoute.delete(existing.spec.route)
    const entry: MutableEntry = existing
      ? Object.assign(existing, { spec, staticFiles })
      : { spec, staticFiles, instances: new Set(), upstreams: [], cursor: 0 }
    this.#byName.set(spec.name, entry)
    if (spec.enabled) this.#byRoute.set(spec.route, entry)
    else this.#byRoute.delete(spec.route)
    staticFiles.onRefresh = () => this.#changed(spec.name)
    this.#changed(spec.name)
    return entry
  }

  removeWorker (name: string): void {
    const entry = this.#byName.get(name)
    if (!entry) return
    this.#byName.delete(name)
    if (this.#byRoute.get(entry.spec.route) === entry) this.#byRoute.delete(entry.spec.route)
    this.#changed(name)
  }

  /** A worker's route as a data plane needs it; undefined once it is removed. */
  snapshot (name: string): WorkerSnapshot | undefined {
    const entry = this.#byName.get(name)
    return entry && { spec: entry.spec, files: entry.staticFiles.snapshot(), upstreams: entry.upstreams }
  }

  /** Sets a worker's route from a snapshot (in a data plane, which runs no instances). */
  restore ({ spec, files, upstreams }: WorkerSnapshot): void {
    (this.setWorker(spec, StaticFiles.restore(files)) as MutableEntry).upstreams = upstreams
  }

  worker (name: string): WorkerEntry | undefined {
    return this.#byName.get(name)
  }

  workers (): WorkerEntry[] {
    return [...this.#byName.values()]
  }

  addInstance (name: string, instance: WorkerInstance): void {
    this.#byName.get(name)?.instances.add(instance)
  }

  removeInstance (name: string, instance: WorkerInstance): void {
    this.#byName.get(name)?.instances.delete(instance)
  }

  /** Every instance of every worker. */
  instances (): WorkerInstance[] {
    return this.workers().flatMap((entry) => [...entry.instances])
  }

  /** The instance whose process serves `origin`, if any. */
  instanceAt (origin: string): WorkerInstance | undefined {
    for (const entry of this.#byName.values()) {
      for (const instance of entry.instances) if (instance.origin === origin) return instance
    }
    return undefined
  }

  /**
   * Points the worker's traffic at its HEALTHY instances (at its UNHEALTHY ones when none is
   * healthy: they may still answer), in one synchronous step: a request sees either the old set
   * or the new one. This is the switch.
   */
  publish (name: string): void {
    const entry = this.#byName.get(name)
    if (!entry) return
    const serving = (state: 'HEALTHY' | 'UNHEALTHY') => [...entry.instances]
      .filter((instance) => instance.state.is(state) && instance.origin !== undefined)
      .map((instance) => instance.origin!)
    const healthy = serving('HEALTHY')
    entry.upstreams = healthy.length > 0 ? healthy : serving('UNHEALTHY')
    this.#changed(name)
  }

  /**
   * Longest route prefix on a segment boundary: /api matches /api, /api/x and /api?q, never /apix.
   * `url` is the raw request target (path and query); the path is matched without decoding.
   */
  match (url: string): RouteMatch | undefined {
    const path = pathOf(url)
    let prefix = path.length > 1 && path.endsWith('/') ? path.slice(0, -1) : path
    while (true) {
      const entry = this.#byRoute.get(prefix)
      if (entry) {
        const rest = prefix === '/' ? path : path.slice(prefix.length)
        return { entry, forwardPath: rest === '' ? '/' : rest }
      }
      if (prefix === '/' || prefix === '') return undefined
      const slash = prefix.lastIndexOf('/')
      prefix = slash <= 0 ? '/' : prefix.slice(0, slash)
    }
  }

  /** Picks the least busy upstream of a worker and counts the request against it. */
  acquire (entry: WorkerEntry): string | undefined {
    const mutable = entry as MutableEntry
    const { upstreams } = mutable
    if (upstreams.length === 0) return undefined
    let best = upstreams[mutable.cursor++ % upstreams.length]!
    for (const origin of upstreams) {
      if (this.traffic.inflight(origin) < this.traffic.inflight(best)) best = origin
    }
    this.traffic.begin(best)
    return best
  }

  /** Ends a request counted by acquire(); returns how many requests `origin` has served. */
  release (origin: string, durationMs: number, failed: boolean): number {
    return this.traffic.end(origin, durationMs, failed)
  }
}
