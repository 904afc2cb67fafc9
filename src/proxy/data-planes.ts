// The control plane's side of its data planes (src/proxy/data-plane.ts): forks them to serve its
// port (bound beside its own with SO_REUSEPORT, or on its listening socket), keeps their route tables in step with its own, restarts one that dies, asks
// them whether an upstream is idle before it is stopped, and gathers what they served. The
// control plane keeps serving the port itself: with `proxies: N` it forks N - 1 data planes.
//
// The switch across data planes: every route change is sent to every data plane with a sequence
// number and acknowledged once applied. Before an instance is drained (the 'draining' event, which
// the supervisor awaits), every data plane has acknowledged the change that took it out of
// rotation; the drain then waits until no data plane has a request in flight to it.
import { fork, type ChildProcess } from 'node:child_process'
import type { Server as HttpServer } from 'node:http'
import type { Server as NetServer } from 'node:net'
import { fileURLToPath } from 'node:url'
import { AggregatorRegistry } from 'prom-client'
import type { Logger } from '../logger.js'
import { groupReaper } from '../process/group-reaper.js'
import { cpuPercent, sampleProcess, type ProcessSample } from '../process/process-stats.js'
import type { DataPlaneReport } from '../report/health-report.js'
import type { MetricsSnapshot } from '../report/metrics.js'
import type { RouteTable } from '../routing/route-table.js'
import type { UpstreamEvents } from '../routing/upstream-events.js'
import type { RemoteTraffic } from '../routing/upstream-traffic.js'
import type { DataPlaneSettings, FromDataPlane, OriginStats, ReusePort, ToDataPlane } from './data-plane-protocol.js'
import { relayKey, RelayListener } from './relay.js'
import type { ServerTls } from '../tls/server-tls.js'

const PROGRAM = fileURLToPath(new URL('./data-plane.js', import.meta.url))
/** A data plane that acknowledges no route change within this is stuck: it is killed and replaced. */
const SYNC_TIMEOUT_MS = 5_000
/**
 * Nor may one be silent this long (it reports each second): its event loop is blocked, or it is
 * stopped, and the connections the kernel gives it wait.
 */
const SILENT_MS = 5_000
/** A scrape does not wait longer than this for a data plane's metrics. */
const METRICS_TIMEOUT_MS = 2_000
/** How often each data plane's CPU and memory are sampled (for the dashboard). */
const SAMPLE_INTERVAL_MS = 2_000
/** A data plane that ran this long before it died is restarted at once; sooner, after a backoff. */
const STABLE_MS = 10_000
const MAX_BACKOFF_MS = 5_000

export interface DataPlanesOptions {
  /** Data planes to fork, besides the control plane's own server. */
  count: number
  settings: Omit<DataPlaneSettings, 'relay'>
  routes: RouteTable
  upstreams: UpstreamEvents
  /** The control plane's HTTP server: relayed host paths and upgrades are served there. */
  target: HttpServer
  /** Requests the control plane itself has served. */
  served: () => number
  /** The TLS the port is served with, if tqserver terminates it: every data plane serves the same. */
  tls: ServerTls | undefined
  log: Logger
}

interface Plane {
  slot: number
  child: ChildProcess
  pid: number
  startedAt: number
  acked: number
  served: number
  /** From the last stats message, with when it came (performance.now()). */
  origins: Map<string, OriginStats>
  statsAt: number
  /** When it last sent anything (performance.now()). */
  heardAt: number
  /** Its metrics as it gave them last. */
  metrics: MetricsSnapshot | undefined
  /** Answers awaited from it, settled with undefined if it exits first. */
  replies: Map<number, (value: unknown) => void>
  sample: ProcessSample | null
  cpuPercent: number | null
}

interface Usage { sample: ProcessSample | null, cpuPercent: number | null }

export class DataPlanes implements RemoteTraffic {
  readonly #options: DataPlanesOptions
  readonly #planes = new Set<Plane>()
  readonly #restarts = new Map<number, number>()
  readonly #timers = new Set<NodeJS.Timeout>()
  readonly #syncWaiters = new Set<{ seq: number, resolve: () => void }>()
  readonly #own: Usage = { sample: null, cpuPercent: null }
  #listening: NetServer | undefined
  #reusePort: ReusePort | null = null
  #relay: { listener: RelayListener, port: number, key: string } | undefined
  #seq = 0
  #nextId = 0
  #closing = false
  #started: Promise<void> | undefined
  #exits = new Set<Promise<void>>()
  /** The counters and histograms of data planes that have exited. */
  #gone: MetricsSnapshot[] = []

  constructor (options: DataPlanesOptions) {
    this.#options = options
    const { routes, upstreams } = options
    routes.traffic.remote = this
    routes.onChange((name) => this.#broadcast((seq) => ({ type: 'worker', seq, name, worker: routes.snapshot(name) ?? null })))
    upstreams.on('draining', () => this.synced())
    upstreams.on('retired', (origin) => this.#broadcast((seq) => ({ type: 'upstream', seq, event: 'retired', origin })))
    upstreams.on('hung', (origin) => this.#broadcast((seq) => ({ type: 'upstream', seq, event: 'hung', origin })))
    options.tls?.onChange((material) => { for (const plane of this.#planes) this.#send(plane, { type: 'tls', material }) })
  }

  /**
   * Forks the data planes; resolves once each listens (or died). With `reusePort` (the control
   * plane bound its socket with SO_REUSEPORT) each binds its own there; otherwise each is given
   * `listening`, the control plane's socket.
   */
  start (listening: NetServer, reusePort: boolean): Promise<void> {
    this.#started ??= (async () => {
      this.#listening = listening
      const address = listening.address()
      if (reusePort && address !== null && typeof address !== 'string') this.#reusePort = { port: address.port, host: address.address }
      const key = relayKey()
      const listener = new RelayListener(this.#options.target, key)
      const port = await listener.listen()
      // Shut down meanwhile (a signal right after listen): no data plane is started.
      if (this.#closing) return listener.close()
      this.#relay = { listener, port, key }
      this.#timers.add(setInterval(() => void this.#sampleAll(), SAMPLE_INTERVAL_MS).unref())
      await Promise.all(Array.from({ length: this.#options.count }, (_, i) => this.#spawn(i + 1)))
    })()
    return this.#started
  }

  get pids (): number[] {
    return [...this.#planes].map((plane) => plane.pid)
  }

  /** Resolves once every data plane has applied every route change sent so far. */
  synced (): Promise<void> {
    const seq = this.#seq
    return new Promise((resolve) => {
      const waiter = { seq, resolve }
      this.#syncWaiters.add(waiter)
      this.#checkSync()
      if (!this.#syncWaiters.has(waiter)) return
      const timer = setTimeout(() => {
        for (const plane of this.#planes) if (plane.acked < seq) this.#replace(plane, 'did not apply a route change in time')
      }, SYNC_TIMEOUT_MS)
      this.#timers.add(timer)
      waiter.resolve = () => {
        clearTimeout(timer)
        this.#timers.delete(timer)
        resolve()
      }
    })
  }

  // --- RemoteTraffic: what the data planes carry to an upstream ---

  inflight (origin: string): number {
    let sum = 0
    for (const plane of this.#planes) sum += plane.origins.get(origin)?.inflight ?? 0
    return sum
  }

  quietFor (origin: string, now: number): number {
    let longest = 0
    for (const plane of this.#planes) {
      const quietMs = plane.origins.get(origin)?.quietMs ?? 0
      if (quietMs > 0) longest = Math.max(longest, quietMs + now - plane.statsAt)
    }
    return longest
  }

  async whenIdle (origin: string, timeoutMs: number): Promise<boolean> {
    // One that does not answer in time (stopped, stuck) counts as busy: the drain has timed out.
    const answers = await Promise.all([...this.#planes].map((plane) => this.#ask(plane, { type: 'idle?', origin, timeoutMs }, timeoutMs + SYNC_TIMEOUT_MS, false)))
    // A data plane that exited meanwhile has nothing in flight.
    return answers.every((idle) => idle !== false)
  }

  /** Every data plane's metrics, for a scrape. */
  /**
   * Every data plane's metrics, for a scrape: those it gave last when it does not answer in time,
   * and the counters and histograms of data planes gone, so that no total ever goes down (which
   * Prometheus would take for a reset, and count again).
   */
  async metrics (): Promise<MetricsSnapshot[]> {
    const answers = await Promise.all([...this.#planes].map(async (plane) => {
      plane.metrics = await this.#ask(plane, { type: 'metrics?' }, METRICS_TIMEOUT_MS) as MetricsSnapshot | undefined ?? plane.metrics
      return plane.metrics
    }))
    if (this.#gone.length > 1) this.#gone = [await AggregatorRegistry.aggregate(this.#gone).getMetricsAsJSON()]
    return [...answers.filter((metrics) => metrics !== undefined), ...this.#gone]
  }

  /** Resolves once every data plane has reported what it served up to now (or did not answer in time). */
  async refresh (): Promise<void> {
    await Promise.all([...this.#planes].map((plane) => this.#ask(plane, { type: 'stats?' }, METRICS_TIMEOUT_MS)))
  }

  /** The control plane and each data plane, for /health and the dashboard. */
  report (): DataPlaneReport[] {
    const { routes, served } = this.#options
    const row = (pid: number, role: DataPlaneReport['role'], requests: number, inflight: number, usage: Usage, startedAt: number, restarts: number): DataPlaneReport => ({
      pid, role, requests, inflight, cpuPercent: usage.cpuPercent, memoryMb: usage.sample ? Math.round(usage.sample.rssBytes / 1024 / 102.4) / 10 : null, startedAt, restarts
    })
    const sum = (values: Iterable<number>) => [...values].reduce((total, value) => total + value, 0)
    const ownInflight = sum(routes.instances().map((instance) => instance.origin ? routes.traffic.inflight(instance.origin) : 0))
    return [
      row(process.pid, 'control', served(), ownInflight, this.#own, Math.round(performance.timeOrigin), 0),
      ...[...this.#planes].sort((a, b) => a.slot - b.slot).map((plane) =>
        row(plane.pid, 'data', plane.served, sum([...plane.origins.values()].map((stats) => stats.inflight)), plane, plane.startedAt, this.#restarts.get(plane.slot) ?? 0))
    ]
  }

  /** Tells every data plane to stop accepting and to exit once its requests are answered; `cut`: now. */
  close (cut = false): void {
    this.#closing = true
    for (const timer of this.#timers) clearTimeout(timer)
    for (const plane of this.#planes) this.#send(plane, { type: 'close', cut })
  }

  /** Resolves once every data plane has exited; those still running after `timeoutMs` are killed. */
  async closed (timeoutMs: number): Promise<void> {
    this.close()
    const timer = setTimeout(() => {
      for (const plane of this.#planes) plane.child.kill('SIGKILL')
    }, timeoutMs)
    await Promise.all(this.#exits)
    clearTimeout(timer)
    this.#relay?.listener.close()
  }

  #spawn (slot: number): Promise<void> {
    if (this.#closing) return Promise.resolve()
    const { settings, routes, log } = this.#options
    // Its own process group (Ctrl-C reaches the control plane, which closes it), killed by the
    // reaper if the control plane dies, however it dies.
    const child = fork(PROGRAM, [], {
      detached: true,
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      execArgv: process.execArgv.filter((arg) => !arg.startsWith('--inspect'))
    })
    groupReaper().watch(child)
    const plane: Plane = {
      slot, child, pid: child.pid ?? 0, startedAt: Date.now(), acked: -1, served: 0,
      origins: new Map(), statsAt: 0, heardAt: performance.now(), metrics: undefined, replies: new Map(), sample: null, cpuPercent: null
    }
    this.#planes.add(plane)
    let listening!: () => void
    const ready = new Promise<void>((resolve) => { listening = resolve })
    child.on('message', (message: FromDataPlane) => {
      if (message.type === 'listening') listening()
      else this.#receive(plane, message)
    })
    child.on('error', (err) => {
      log.error({ err, dataPlane: plane.pid }, 'data plane error')
      // Not started at all (no 'exit' follows): as if it had exited.
      if (child.pid === undefined) {
        listening()
        this.#exited(plane, null, null)
      }
    })
    this.#exits.add(new Promise((resolve) => child.once('exit', (code, signal) => {
      listening()
      this.#exited(plane, code, signal)
      resolve()
    })))
    const workers = routes.workers().map((entry) => routes.snapshot(entry.spec.name)!)
    const relay = { port: this.#relay!.port, key: this.#relay!.key }
    const tls = this.#options.tls && { material: this.#options.tls.material, hsts: settings.hsts }
    const start: ToDataPlane = { type: 'start', seq: this.#seq, settings: { ...settings, relay }, tls, workers, reusePort: this.#reusePort }
    child.send(start, this.#reusePort ? undefined : this.#listening, {}, () => {})
    return ready
  }

  #receive (plane: Plane, message: FromDataPlane): void {
    plane.heardAt = performance.now()
    switch (message.type) {
      case 'ack':
        plane.acked = message.seq
        return this.#checkSync()
      case 'idle':
        return this.#reply(plane, message.id, message.idle)
      case 'metrics':
        return this.#reply(plane, message.id, message.metrics)
      case 'reported':
        return this.#reply(plane, message.id, true)
      case 'stats':
        plane.served = message.served
        plane.origins = new Map(message.origins.map((stats) => [stats.origin, stats]))
        plane.statsAt = performance.now()
        return this.#count(message.origins)
      case 'failed':
        void this.#options.upstreams.emit('failed', message.origin)
        return
      case 'log':
        for (const [level, fields, msg] of message.records) this.#options.log[level]({ ...fields, dataPlane: plane.pid }, msg)
    }
  }

  /** Adds what a data plane served to the control plane's totals; an instance past maxRequests is recycled. */
  #count (origins: OriginStats[]): void {
    const { routes, upstreams } = this.#options
    for (const stats of origins) {
      const instance = routes.instanceAt(stats.origin)
      if (!instance || stats.requests === 0) continue
      const served = routes.traffic.add(stats.origin, stats)
      const { maxRequests } = instance.spec
      if (maxRequests > 0 && served >= maxRequests && served - stats.requests < maxRequests) void upstreams.emit('exhausted', stats.origin)
    }
  }

  /** Takes a stuck data plane out at once (its requests are lost with it) and kills it; its exit starts another. */
  #replace (plane: Plane, reason: string): void {
    if (!this.#planes.has(plane)) return
    this.#options.log.error({ dataPlane: plane.pid }, `data plane ${reason}: replacing it`)
    plane.child.kill('SIGKILL')
    this.#forget(plane)
  }

  #forget (plane: Plane): void {
    if (!this.#planes.has(plane)) return
    if (plane.metrics) this.#gone.push(plane.metrics.filter((metric) => ['counter', 'histogram'].includes(String(metric.type))))
    this.#planes.delete(plane)
    for (const settle of plane.replies.values()) settle(undefined)
    this.#checkSync()
  }

  #exited (plane: Plane, code: number | null, signal: NodeJS.Signals | null): void {
    this.#forget(plane)
    for (const settle of plane.replies.values()) settle(undefined)
    this.#checkSync()
    if (this.#closing) return
    const restarts = (this.#restarts.get(plane.slot) ?? 0) + 1
    this.#restarts.set(plane.slot, restarts)
    const ranMs = Date.now() - plane.startedAt
    const delayMs = ranMs >= STABLE_MS ? 0 : Math.min(MAX_BACKOFF_MS, 100 * 2 ** Math.min(restarts, 6))
    this.#options.log.error({ dataPlane: plane.pid, code, signal, restartInMs: delayMs }, 'data plane exited; starting another')
    const timer = setTimeout(() => {
      this.#timers.delete(timer)
      if (!this.#closing) void this.#spawn(plane.slot)
    }, delayMs)
    this.#timers.add(timer)
  }

  /** Sends a route change to every data plane, numbered so that synced() can wait for it. */
  #broadcast (message: (seq: number) => ToDataPlane): void {
    if (this.#planes.size === 0) return
    const built = message(++this.#seq)
    for (const plane of this.#planes) this.#send(plane, built)
  }

  #checkSync (): void {
    for (const waiter of this.#syncWaiters) {
      if ([...this.#planes].every((plane) => plane.acked >= waiter.seq)) {
        this.#syncWaiters.delete(waiter)
        waiter.resolve()
      }
    }
  }

  /** Asks a data plane; `unanswered` after `timeoutMs`, undefined if it exits first. */
  #ask (plane: Plane, question: { type: 'idle?', origin: string, timeoutMs: number } | { type: 'metrics?' } | { type: 'stats?' }, timeoutMs: number, unanswered?: unknown): Promise<unknown> {
    const id = ++this.#nextId
    return new Promise((resolve) => {
      const timer = setTimeout(() => this.#reply(plane, id, unanswered), timeoutMs)
      plane.replies.set(id, (value) => {
        clearTimeout(timer)
        resolve(value)
      })
      this.#send(plane, { ...question, id })
    })
  }

  #reply (plane: Plane, id: number, value: unknown): void {
    const settle = plane.replies.get(id)
    plane.replies.delete(id)
    settle?.(value)
  }

  /** A data plane exiting (at shutdown, or after a crash) cannot take a message: its 'exit' tells the rest. */
  #send (plane: Plane, message: ToDataPlane): void {
    if (plane.child.connected) plane.child.send(message, undefined, {}, () => {})
  }

  /** Samples CPU and memory, and replaces a data plane that has gone silent. */
  async #sampleAll (): Promise<void> {
    const now = performance.now()
    for (const plane of this.#planes) if (now - plane.heardAt > SILENT_MS) this.#replace(plane, `sent nothing for ${SILENT_MS} ms`)
    const sample = async (usage: Usage, pid: number) => {
      const next = await sampleProcess(pid)
      usage.cpuPercent = usage.sample && next ? cpuPercent(usage.sample, next) : null
      usage.sample = next
    }
    await Promise.all([sample(this.#own, process.pid), ...[...this.#planes].map((plane) => sample(plane, plane.pid))])
  }
}
