// Starts, restarts and stops the workers. Owns each worker's build, its instances' lives and its
// crash history; tells the registry which instances serve.
import { Builder, type BuildErrorLocation, type BuildMode, type BuildResult } from './builder.js'
import { parsePortRange } from './config/server-config.js'
import type { ServerConfig } from './config/schema.js'
import { overallStatus, workerStatus, type HealthReport, type WorkerReport } from './health-report.js'
import { OutputBuffer } from './log-capture.js'
import type { Logger } from './logger.js'
import { PortPool } from './port-pool.js'
import type { Registry } from './registry.js'
import { CrashHistory } from './restart-policy.js'
import { StaticFiles } from './static-files.js'
import { discoverWorkers, type WorkerSpec } from './worker-discovery.js'
import { WorkerInstance, WORKER_HOST } from './worker-instance.js'
import { TQ_ERR_WORKER_NOT_FOUND } from './errors.js'

export interface SupervisorOptions {
  root: string
  config: ServerConfig
  mode: BuildMode
  registry: Registry
  log: Logger
}

/** What the supervisor keeps per worker, beside what the registry holds. */
interface WorkerRuntime {
  spec: WorkerSpec
  output: OutputBuffer
  crashes: CrashHistory
  build: BuildResult | undefined
  buildError: { message: string, locations: BuildErrorLocation[], at: number } | undefined
  lastError: { message: string, at: number } | undefined
  restartTimers: Set<NodeJS.Timeout>
}

export class Supervisor {
  readonly pool: PortPool
  readonly builder: Builder
  readonly #options: SupervisorOptions
  readonly #log: Logger
  readonly #workers = new Map<string, WorkerRuntime>()
  #stopping: Promise<void> | undefined

  constructor (options: SupervisorOptions) {
    this.#options = options
    this.#log = options.log
    this.pool = new PortPool(parsePortRange(options.config.workerPorts), WORKER_HOST)
    this.builder = new Builder(options.mode, options.log)
  }

  /**
   * Finds the workers and starts them all, waiting until each is serving or has failed. Invalid
   * configuration throws; a worker that fails to build or start is reported and does not.
   */
  async start (): Promise<void> {
    const specs = await discoverWorkers(this.#options.root, this.#options.config)
    await Promise.all(specs.map((spec) => this.startWorker(spec)))
  }

  /** Builds (when needed) and starts one worker, and routes its prefix to it. */
  async startWorker (spec: WorkerSpec): Promise<void> {
    const { registry, mode } = this.#options
    const staticFiles = new StaticFiles(spec.publicDir)
    await staticFiles.refresh()
    registry.setWorker(spec, staticFiles)
    const runtime: WorkerRuntime = {
      spec,
      output: this.#workers.get(spec.name)?.output ?? new OutputBuffer(this.#options.config.outputLines),
      crashes: new CrashHistory(this.#options.config),
      build: undefined,
      buildError: undefined,
      lastError: undefined,
      restartTimers: new Set()
    }
    this.#workers.set(spec.name, runtime)
    if (!spec.enabled) {
      this.#log.info({ worker: spec.name, route: spec.route }, 'worker disabled')
      return
    }
    const build = mode === 'prod' ? await this.builder.current(spec) ?? await this.#build(runtime) : await this.#build(runtime)
    if (!build) return
    runtime.build = build
    await Promise.all(Array.from({ length: spec.instances }, () => this.#launch(runtime, build)))
  }

  /** Drains and stops every instance of a worker and removes its route. */
  async stopWorker (name: string, reason: string): Promise<void> {
    const runtime = this.#workers.get(name)
    const entry = this.#options.registry.worker(name)
    if (!runtime || !entry) throw new TQ_ERR_WORKER_NOT_FOUND(name)
    for (const timer of runtime.restartTimers) clearTimeout(timer)
    runtime.restartTimers.clear()
    await Promise.all([...entry.instances].map((instance) => this.retire(instance, reason)))
    this.#options.registry.removeWorker(name)
    this.#workers.delete(name)
    await this.builder.forget(name)
  }

  /**
   * Takes an instance out of rotation, waits for its in-flight requests (up to drainTimeout),
   * then stops its process (SIGTERM, SIGKILL after killTimeout).
   */
  async retire (instance: WorkerInstance, reason: string): Promise<void> {
    const { registry } = this.#options
    const name = instance.spec.name
    const origin = instance.origin
    if (instance.state.is('HEALTHY', 'UNHEALTHY')) {
      instance.beginDrain(reason)
      registry.publish(name)
    }
    if (origin && instance.state.is('DRAINING')) {
      const { drainTimeout } = instance.spec.timeouts
      if (!await registry.whenIdle(origin, drainTimeout)) {
        this.#log.warn({ worker: name, pid: instance.pid, inflight: registry.inflight(origin), drainTimeout }, 'drain timed out; stopping with requests in flight')
      }
    }
    await instance.stop(reason)
    registry.removeInstance(name, instance)
  }

  /** Stops every worker (graceful drain, then SIGTERM). Idempotent. */
  stop (): Promise<void> {
    this.#stopping ??= (async () => {
      await Promise.all([...this.#workers.keys()].map((name) => this.stopWorker(name, 'server shutting down')))
      await this.builder.dispose()
    })()
    return this.#stopping
  }

  report (): HealthReport {
    const { registry } = this.#options
    const workers: Record<string, WorkerReport> = {}
    for (const [name, runtime] of this.#workers) {
      const instances = [...registry.worker(name)?.instances ?? []]
      const now = Date.now()
      workers[name] = {
        status: workerStatus(runtime.spec.enabled, instances.map((instance) => instance.state.current)),
        route: runtime.spec.route,
        instances: instances.map((instance) => ({
          id: instance.id,
          pid: instance.pid ?? null,
          port: instance.port ?? null,
          state: instance.state.current,
          restarts: instance.restarts,
          uptimeMs: instance.state.is('HEALTHY', 'UNHEALTHY') && instance.startedAt ? now - instance.startedAt : null,
          inflight: instance.origin ? registry.inflight(instance.origin) : 0,
          build: instance.build.id
        })),
        lastBuild: {
          id: runtime.build?.id ?? null,
          builtAt: runtime.build?.builtAt ?? null,
          durationMs: runtime.build?.durationMs ?? null,
          error: runtime.buildError ?? null
        },
        lastError: runtime.lastError ?? null
      }
    }
    return { status: overallStatus(Object.values(workers)), workers }
  }

  /** The last output lines of a worker, oldest first. */
  output (name: string): OutputBuffer | undefined {
    return this.#workers.get(name)?.output
  }

  async #build (runtime: WorkerRuntime): Promise<BuildResult | undefined> {
    const { spec } = runtime
    try {
      const build = await this.builder.build(spec, this.#buildsInUse(spec.name))
      runtime.buildError = undefined
      return build
    } catch (err) {
      const error = err as Error & { locations?: BuildErrorLocation[] }
      runtime.buildError = { message: error.message, locations: error.locations ?? [], at: Date.now() }
      this.#log.error({ worker: spec.name, err: error }, 'worker build failed')
      return undefined
    }
  }

  #buildsInUse (name: string): string[] {
    return [...this.#options.registry.worker(name)?.instances ?? []].map((instance) => instance.build.id)
  }

  async #launch (runtime: WorkerRuntime, build: BuildResult): Promise<WorkerInstance> {
    const instance = new WorkerInstance({
      spec: runtime.spec,
      build,
      mode: this.#options.mode,
      pool: this.pool,
      log: this.#log,
      output: runtime.output,
      onCrash: (crashed) => {
        this.#options.registry.publish(crashed.spec.name)
        this.#afterCrash(runtime, crashed)
      }
    })
    this.#options.registry.addInstance(runtime.spec.name, instance)
    await this.#boot(runtime, instance, 'worker started')
    return instance
  }

  /** Starts an instance; a failure counts as a crash. Resolves either way. */
  async #boot (runtime: WorkerRuntime, instance: WorkerInstance, reason: string): Promise<boolean> {
    try {
      await instance.start(reason)
      this.#options.registry.publish(runtime.spec.name)
      return instance.state.is('HEALTHY')
    } catch (err) {
      runtime.lastError = { message: (err as Error).message, at: Date.now() }
      this.#log.error({ worker: runtime.spec.name, err }, 'worker failed to start')
      if (instance.state.is('CRASHED')) this.#afterCrash(runtime, instance)
      return false
    }
  }

  #afterCrash (runtime: WorkerRuntime, instance: WorkerInstance): void {
    if (this.#stopping) return
    const delay = runtime.crashes.record()
    if (delay === undefined) {
      instance.state.transition('FAILED', `crashed ${runtime.crashes.count} times within ${this.#options.config.crashWindow} ms`)
      return
    }
    instance.state.transition('BACKOFF', `restart in ${delay} ms`)
    const timer = setTimeout(() => {
      runtime.restartTimers.delete(timer)
      void this.#boot(runtime, instance, 'restart after crash')
    }, delay)
    timer.unref()
    runtime.restartTimers.add(timer)
  }
}
