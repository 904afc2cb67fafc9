// Starts, restarts and stops the workers. Owns each worker's current version (spec and build), its
// instances' lives and its crash history; every version change goes through the switch
// (worker-switch.ts); tells the route table which instances serve.
import { Builder, type BuildErrorLocation, type BuildMode, type BuildResult } from '../build/builder.js'
import { parsePortRange } from '../config/server-config.js'
import type { ServerConfig } from '../config/schema.js'
import { EventLog } from '../report/event-log.js'
import { HealthChecker, type HealthSettings } from './health-checker.js'
import { buildHealthReport, describeReload, type HealthReport, type ReloadSummary, type WorkerReport } from '../report/health-report.js'
import { OutputBuffer } from '../process/log-capture.js'
import type { Logger } from '../logger.js'
import { PortPool } from '../process/port-pool.js'
import type { ServerMetrics } from '../report/metrics.js'
import type { RouteTable } from '../routing/route-table.js'
import type { UpstreamEvents } from '../routing/upstream-events.js'
import { WorkerSwitch, type SwitchOutcome, type SwitchPlan, type SwitchHost } from './worker-switch.js'
import { CrashHistory } from './restart-policy.js'
import { CrashRecovery } from './crash-recovery.js'
import { StaticFiles } from '../routing/static-files.js'
import { discoverWorkers, type WorkerSpec } from '../config/worker-discovery.js'
import { StandbyPool } from '../process/standby-pool.js'
import { baseEnv, WorkerInstance, WORKER_HOST } from '../process/worker-instance.js'
import { WorkerProcess, type SpawnOptions } from '../process/worker-process.js'
import { TQ_ERR_WORKER_NOT_FOUND } from '../errors.js'

export interface SupervisorOptions {
  root: string
  config: ServerConfig
  mode: BuildMode
  routes: RouteTable
  upstreams: UpstreamEvents
  /** Builds, switches, restarts and reloads are counted here. */
  metrics: ServerMetrics
  log: Logger
}

/** What the supervisor keeps per worker, beside what the route table holds. */
interface WorkerRuntime {
  spec: WorkerSpec
  output: OutputBuffer
  crashes: CrashHistory
  build: BuildResult | undefined
  buildError: { message: string, locations: BuildErrorLocation[], at: number } | undefined
  lastError: { message: string, at: number } | undefined
  lastSwitch: WorkerReport['lastSwitch'] | undefined
}

export class Supervisor implements SwitchHost {
  readonly pool: PortPool
  readonly builder: Builder
  readonly routes: RouteTable
  readonly log: Logger
  readonly #options: SupervisorOptions
  readonly #upstreams: UpstreamEvents
  readonly #metrics: ServerMetrics
  readonly #switch: WorkerSwitch
  readonly #workers = new Map<string, WorkerRuntime>()
  /** Dev only: warm processes that take a new version faster than a fresh spawn. */
  readonly #standbys: StandbyPool | undefined
  readonly #events = new EventLog()
  /** Instances already being replaced (unhealthy too long, or recycled), so as to replace them once. */
  readonly #recycling = new WeakSet<WorkerInstance>()
  readonly #health: HealthChecker
  readonly #recovery: CrashRecovery
  #lastReload: ReloadSummary | undefined
  #stopping: Promise<void> | undefined
  #markStarted!: () => void
  readonly #started = new Promise<void>((resolve) => { this.#markStarted = resolve })

  constructor (options: SupervisorOptions) {
    this.#options = options
    this.routes = options.routes
    this.#upstreams = options.upstreams
    this.#metrics = options.metrics
    this.log = options.log
    this.pool = new PortPool(parsePortRange(options.config.workerPorts), WORKER_HOST)
    this.builder = new Builder(options.mode, options.log)
    this.#switch = new WorkerSwitch(this)
    if (options.mode === 'dev' && options.config.standbys > 0) {
      this.#standbys = new StandbyPool({ size: options.config.standbys, cwd: options.root, env: baseEnv('dev'), log: options.log })
    }
    this.#health = new HealthChecker({
      settings: options.config.health,
      routes: this.routes,
      upstreams: this.#upstreams,
      onChange: (instance, healthy, reason) => this.#events.record(healthy ? 'recovered' : 'unhealthy', instance.spec.name, `pid ${instance.pid}: ${reason}`),
      onStuck: (instance) => this.#recycle(instance.origin!, 'unhealthy for too long'),
      onHung: (instance, reason) => this.#recycle(instance.origin!, 'replaces a hung instance', reason),
      onSample: (instance, rssBytes) => {
        const { maxMemoryMb } = instance.spec
        if (maxMemoryMb > 0 && rssBytes > maxMemoryMb * 1024 * 1024) this.#recycle(instance.origin!, `uses more than ${maxMemoryMb} MB`)
      },
      log: options.log
    })
    this.#recovery = new CrashRecovery({
      crashWindow: options.config.crashWindow,
      active: (name) => !this.#stopping && this.#workers.has(name),
      serving: (name) => this.routes.publish(name),
      events: this.#events,
      metrics: this.#metrics,
      log: options.log
    })
    this.#upstreams.on('exhausted', (origin) => this.#recycle(origin, 'served its maxRequests'))
  }

  /**
   * Finds the workers, routes each prefix and begins to start them, without waiting: a worker
   * still starting answers 503 until it serves, so one slow or broken worker never holds up the
   * others (`started` settles when every first start has ended). Invalid configuration throws.
   */
  async start (): Promise<void> {
    const specs = await discoverWorkers(this.#options.root, this.#options.config)
    const registered = await Promise.all(specs.map((spec) => this.#register(spec)))
    this.#health.start()
    void Promise.all(registered.map((spec) => this.#firstStart(spec))).then((outcomes) => {
      if (this.#stopping) return this.#markStarted()
      // After the first start, so that warming standbys do not slow it down.
      this.#standbys?.fill()
      const notServing = registered.filter((spec, i) => spec.enabled && outcomes[i] !== 'switched').map((spec) => spec.name)
      if (notServing.length > 0) this.log.warn({ notServing }, 'workers started; some are not serving (see /health)')
      else this.log.info({}, 'workers started')
      this.#markStarted()
    })
  }

  /** Settles when every worker found at start has been started once (serving or not). */
  started (): Promise<void> {
    return this.#started
  }

  /** Health check settings from a reload. */
  updateHealthSettings (settings: HealthSettings): void {
    this.#health.update(settings)
  }

  has (name: string): boolean {
    return this.#workers.has(name)
  }

  workerNames (): string[] {
    return [...this.#workers.keys()]
  }

  /** Routes a new worker's prefix to it, then builds (when needed) and starts it. */
  async startWorker (spec: WorkerSpec): Promise<SwitchOutcome | undefined> {
    return this.#firstStart(await this.#register(spec))
  }

  /** The worker's route and runtime, before any process runs. */
  async #register (spec: WorkerSpec): Promise<WorkerSpec> {
    const staticFiles = new StaticFiles(spec.publicDir)
    await staticFiles.refresh()
    this.routes.setWorker(spec, staticFiles)
    this.#workers.set(spec.name, {
      spec,
      output: new OutputBuffer(this.#options.config.outputLines),
      crashes: new CrashHistory(this.#options.config),
      // Production runs the existing build; only a worker without one is built.
      build: this.#options.mode === 'prod' ? await this.builder.current(spec) : undefined,
      buildError: undefined,
      lastError: undefined,
      lastSwitch: undefined
    })
    return spec
  }

  async #firstStart (spec: WorkerSpec): Promise<SwitchOutcome | undefined> {
    if (!spec.enabled) {
      this.log.info({ worker: spec.name, route: spec.route }, 'worker disabled')
      return undefined
    }
    if (this.#stopping) return undefined
    return this.#switch.run({ spec, rebuild: this.#options.mode === 'dev', restart: true, reason: 'worker started' })
  }

  /** Resolves when no switch is running or queued. */
  idle (): Promise<void> {
    return this.#switch.idle()
  }

  /** Switches a running worker to a new version (see worker-switch.ts). */
  switchWorker (plan: SwitchPlan): Promise<SwitchOutcome> {
    if (!this.#workers.has(plan.spec.name)) throw new TQ_ERR_WORKER_NOT_FOUND(plan.spec.name)
    // The workers are being stopped (the drain runs beside the server's close): start nothing.
    if (this.#stopping) return Promise.resolve('unchanged')
    return this.#switch.run(plan)
  }

  /** Replaces a worker's instances with fresh ones of its current version. */
  restartWorker (name: string, reason: string): Promise<SwitchOutcome> {
    return this.switchWorker({ spec: this.#runtime(name).spec, rebuild: false, restart: true, reason })
  }

  /** Drains and stops every instance of a worker and removes its route. */
  async stopWorker (name: string, reason: string): Promise<void> {
    const runtime = this.#workers.get(name)
    const entry = this.routes.worker(name)
    if (!runtime || !entry) throw new TQ_ERR_WORKER_NOT_FOUND(name)
    this.#workers.delete(name)
    await Promise.all([...entry.instances].map((instance) => this.retire(instance, reason)))
    this.routes.removeWorker(name)
    await this.builder.forget(name)
    this.#events.record('stopped', name, reason)
  }

  /** Stops every worker (graceful drain, then SIGTERM). Idempotent. */
  stop (): Promise<void> {
    this.#stopping ??= (async () => {
      this.#health.stop()
      // A start in progress is given up (waiting for it could take startTimeout), so is a build:
      // command; a switch past its start step finishes its drain, bounded by drainTimeout.
      this.builder.abort()
      for (const instance of this.routes.instances()) {
        if (instance.state.is('STARTING')) void instance.stop('server shutting down')
      }
      await this.#switch.idle()
      await Promise.all([
        ...[...this.#workers.keys()].map((name) => this.stopWorker(name, 'server shutting down')),
        this.#standbys?.close()
      ])
      await this.builder.dispose()
    })()
    return this.#stopping
  }

  // --- SwitchHost: the switch's view of the supervisor ---

  get stopping (): boolean {
    return this.#stopping !== undefined
  }

  current (name: string): { spec: WorkerSpec, build: BuildResult | undefined } | undefined {
    return this.#workers.get(name)
  }

  async build (spec: WorkerSpec): Promise<BuildResult | undefined> {
    const runtime = this.#runtime(spec.name)
    const inUse = [...this.routes.worker(spec.name)?.instances ?? []].map((instance) => instance.build.id)
    const started = performance.now()
    try {
      const build = await this.builder.build(spec, inUse)
      runtime.buildError = undefined
      this.#metrics.built(spec.name, true, build.durationMs)
      return build
    } catch (err) {
      this.#metrics.built(spec.name, false, performance.now() - started)
      const error = err as Error & { locations?: BuildErrorLocation[] }
      runtime.buildError = { message: error.message, locations: error.locations ?? [], at: Date.now() }
      this.#events.record('build-failed', spec.name, error.message.split('\n').slice(1, 2).join('') || error.message)
      this.log.error({ worker: spec.name, err: error }, 'worker build failed; the running version keeps serving')
      return undefined
    }
  }

  createInstance (spec: WorkerSpec, build: BuildResult): WorkerInstance {
    const runtime = this.#runtime(spec.name)
    const instance = new WorkerInstance({
      spec,
      build,
      mode: this.#options.mode,
      trustProxy: this.#options.config.trustProxy,
      pool: this.pool,
      log: this.log,
      output: runtime.output,
      onCrash: (crashed) => {
        this.routes.publish(spec.name)
        this.#recovery.crashed(runtime, crashed)
      },
      launch: (options) => this.#launch(options)
    })
    this.routes.addInstance(spec.name, instance)
    return instance
  }

  /**
   * Takes an instance out of rotation, waits for its in-flight requests (up to drainTimeout), has
   * the proxy close its idle sockets to it, then stops its process (SIGTERM, SIGKILL later).
   */
  async retire (instance: WorkerInstance, reason: string): Promise<void> {
    const name = instance.spec.name
    const origin = instance.origin
    this.#recovery.cancel(instance)
    if (instance.state.is('HEALTHY', 'UNHEALTHY')) {
      instance.beginDrain(reason)
      this.routes.publish(name)
    }
    if (origin && instance.state.is('DRAINING')) {
      const { drainTimeout } = instance.spec.timeouts
      await this.#upstreams.emit('draining', origin)
      if (!await this.routes.traffic.whenIdle(origin, drainTimeout)) {
        this.log.warn({ worker: name, pid: instance.pid, inflight: this.routes.traffic.inflightEverywhere(origin), drainTimeout }, 'drain timed out; stopping with requests in flight')
      }
      await this.#upstreams.emit('retired', origin)
      this.routes.traffic.forget(origin)
    }
    await instance.stop(reason)
    this.routes.removeInstance(name, instance)
  }

  committed (spec: WorkerSpec, build: BuildResult, healthy: boolean, reason: string): void {
    const runtime = this.#runtime(spec.name)
    const first = runtime.lastSwitch === undefined
    runtime.spec = spec
    runtime.build = build
    this.#standbys?.fill()
    if (!healthy) return
    runtime.lastSwitch = { at: Date.now(), reason, build: build.id }
    this.#events.record(first ? 'started' : 'switched', spec.name, `${reason} (build ${build.id})`)
    runtime.crashes.reset()
    runtime.lastError = undefined
  }

  finished (name: string, outcome: SwitchOutcome, durationMs: number): void {
    this.#metrics.switched(name, outcome, durationMs)
  }

  async startFailed (instance: WorkerInstance, error: Error, retry: boolean): Promise<void> {
    const runtime = this.#runtime(instance.spec.name)
    runtime.lastError = { message: error.message, at: Date.now() }
    this.#events.record('start-failed', instance.spec.name, error.message.split('\n')[0]!)
    if (retry) {
      this.log.error({ worker: instance.spec.name, err: error }, 'worker failed to start')
      this.#recovery.crashed(runtime, instance)
      return
    }
    this.log.error({ worker: instance.spec.name, err: error }, 'new instance failed to start; the running version keeps serving')
    await instance.stop('failed to start')
    this.routes.removeInstance(instance.spec.name, instance)
  }

  // --- reporting ---

  report (): HealthReport {
    return buildHealthReport({
      workers: [...this.#workers.values()].map((runtime) => ({
        spec: runtime.spec,
        instances: [...this.routes.worker(runtime.spec.name)?.instances ?? []],
        build: runtime.build,
        buildError: runtime.buildError,
        lastSwitch: runtime.lastSwitch,
        lastError: runtime.lastError,
        output: runtime.output.last()
      })),
      traffic: this.routes.traffic,
      health: (instance) => this.#health.health(instance),
      events: this.#events,
      lastReload: this.#lastReload,
      ports: { size: this.pool.size, leased: this.pool.leased }
    })
  }

  /** Keeps the last production reload's summary for /health. */
  recordReload (summary: ReloadSummary): void {
    this.#lastReload = summary
    this.#metrics.reloaded(summary)
    this.#events.record('reload', null, describeReload(summary))
  }

  /** Records an error against a worker (shown in /health), e.g. an invalid worker.yaml in dev. */
  recordError (name: string, error: Error): void {
    const runtime = this.#workers.get(name)
    if (runtime) runtime.lastError = { message: error.message, at: Date.now() }
  }

  /** Source files of a worker's current build. */
  buildInputs (name: string): string[] {
    return this.#workers.get(name)?.build?.inputs ?? []
  }

  /**
   * Replaces the instance serving `origin` with a fresh one of the same version, once. A hung one
   * (`hung` says how) leaves the rotation and fails what waits on it now, then stays until replaced.
   */
  #recycle (origin: string, reason: string, hung?: string): void {
    const instance = this.routes.instanceAt(origin)
    if (!instance || this.#stopping || this.#recycling.has(instance) || !instance.state.is('HEALTHY', 'UNHEALTHY')) return
    this.#recycling.add(instance)
    this.#events.record('replaced', instance.spec.name, `pid ${instance.pid} ${hung ?? reason}`)
    if (hung !== undefined) {
      instance.beginDrain(hung)
      this.routes.publish(instance.spec.name)
      void this.#upstreams.emit('hung', origin)
    }
    void this.#switch.run({ spec: instance.spec, rebuild: false, restart: true, reason, replace: instance })
  }

  /** A warm standby takes the new process when one is ready (dev); otherwise a fresh spawn. */
  #launch (options: SpawnOptions): WorkerProcess {
    const standby = options.command === undefined ? this.#standbys?.take() : undefined
    return standby ? WorkerProcess.adopt(standby.child, standby.sink, options) : WorkerProcess.spawn(options)
  }

  #runtime (name: string): WorkerRuntime {
    const runtime = this.#workers.get(name)
    if (!runtime) throw new TQ_ERR_WORKER_NOT_FOUND(name)
    return runtime
  }
}
