// The route table and, per worker, its instances and the upstreams that serve it. The proxy reads
// it once per request; the supervisor changes it. One object for the server's life, changed only
// through its methods, so every Fastify context sees the same table.
import type { HealthReport } from '../report/health-report.js'
import { ServerMetrics } from '../report/metrics.js'
import type { ReloadSummary } from '../reload/prod-reload.js'
import type { StaticFiles } from './static-files.js'
import { UpstreamTraffic } from './upstream-traffic.js'
import type { WorkerSpec } from '../config/worker-discovery.js'
import type { WorkerInstance } from '../process/worker-instance.js'

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

/**
 * True when a request path is safe to forward: valid percent-encoding and no `..` segment, also
 * encoded or with backslashes. Most paths need no decoding at all.
 */
export function isSafePath (path: string): boolean {
  if (!/[.%\\]/.test(path)) return true
  let decoded: string
  try {
    decoded = decodeURIComponent(path)
  } catch {
    return false
  }
  return !decoded.replaceAll('\\', '/').split('/').includes('..')
}

/**
 * What happens to an upstream, for those who hold something of it: failed (a proxied request could
 * not reach it), exhausted (it served its maxRequests), draining (out of rotation: end long-lived
 * connections), retired (idle and about to stop: close the proxy's sockets to it).
 */
export type UpstreamEvent = 'failed' | 'exhausted' | 'draining' | 'retired'

/** What the supervisor offers through the registry (fastify.tqserver). */
export interface WorkerControl {
  report: () => HealthReport
  stopWorker: (name: string, reason: string) => Promise<void>
  restartWorker: (name: string, reason: string) => Promise<unknown>
  idle: () => Promise<void>
}

interface MutableEntry extends WorkerEntry {
  spec: WorkerSpec
  instances: Set<WorkerInstance>
  upstreams: string[]
  /** Round-robin start among equally busy upstreams. */
  cursor: number
}

export class Registry {
  readonly #byName = new Map<string, MutableEntry>()
  readonly #byRoute = new Map<string, MutableEntry>()
  /** Requests in flight, totals and latencies, per upstream origin. */
  readonly traffic = new UpstreamTraffic()
  /** What GET /metrics reports; the proxy and the supervisor record into it. */
  readonly metrics = new ServerMetrics(() => this.status())
  #closing = false
  #control: WorkerControl | undefined
  #reload: ((trigger: string) => Promise<ReloadSummary>) | undefined
  readonly #upstreamListeners = new Map<UpstreamEvent, Set<(origin: string) => void | Promise<void>>>()

  /** Called once by the supervisor plugin. */
  attach (control: WorkerControl): void {
    this.#control = control
  }

  /** The health report behind GET /health. */
  status (): HealthReport {
    return this.#controlled().report()
  }

  /** Drains and stops a worker and removes its route. */
  stop (name: string): Promise<void> {
    return this.#controlled().stopWorker(name, 'stopped through the registry')
  }

  /** Replaces a worker's instances with fresh ones of the same version, with the switch. */
  async restart (name: string): Promise<void> {
    await this.#controlled().restartWorker(name, 'restart requested')
  }

  /** Called once by the prod-reload plugin. */
  attachReload (reload: (trigger: string) => Promise<ReloadSummary>): void {
    this.#reload = reload
  }

  /**
   * Rescans workers/ and the configuration and switches what changed (what SIGHUP does under
   * `tqserver start`): new builds, worker.yaml edits, added and removed workers.
   */
  reload (trigger = 'fastify.tqserver.reload()'): Promise<ReloadSummary> {
    if (!this.#reload) throw new Error('tqserver: the prod-reload plugin is not registered')
    return this.#reload(trigger)
  }

  /** Resolves when no worker switch is running or queued. */
  idle (): Promise<void> {
    return this.#controlled().idle()
  }

  #controlled (): WorkerControl {
    if (!this.#control) throw new Error('tqserver: no supervisor is attached to the registry')
    return this.#control
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
    return entry
  }

  removeWorker (name: string): void {
    const entry = this.#byName.get(name)
    if (!entry) return
    this.#byName.delete(name)
    if (this.#byRoute.get(entry.spec.route) === entry) this.#byRoute.delete(entry.spec.route)
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
  }

  /**
   * Longest route prefix on a segment boundary: /api matches /api, /api/x and /api?q, never /apix.
   * `url` is the raw request target (path and query); the path is matched without decoding.
   */
  match (url: string): RouteMatch | undefined {
    const queryAt = url.indexOf('?')
    const path = queryAt === -1 ? url : url.slice(0, queryAt)
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

  inflight (origin: string): number {
    return this.traffic.inflight(origin)
  }

  /** Resolves true when no request is in flight to `origin`, or false after `timeoutMs`. */
  whenIdle (origin: string, timeoutMs: number): Promise<boolean> {
    return this.traffic.whenIdle(origin, timeoutMs)
  }

  onUpstream (event: UpstreamEvent, listener: (origin: string) => void | Promise<void>): void {
    const listeners = this.#upstreamListeners.get(event) ?? new Set()
    listeners.add(listener)
    this.#upstreamListeners.set(event, listeners)
  }

  /** Tells the listeners of `event`, and waits for them. */
  async emitUpstream (event: UpstreamEvent, origin: string): Promise<void> {
    await Promise.all([...this.#upstreamListeners.get(event) ?? []].map((listener) => listener(origin)))
    if (event === 'retired') this.traffic.forget(origin)
  }

  /** Set when the server begins to shut down: /readyz fails from then on. */
  markClosing (): void {
    this.#closing = true
  }

  get isClosing (): boolean {
    return this.#closing
  }
}
