// Production reload (SIGHUP or `tqserver reload`): rescans workers/ and the configuration, then
// switches exactly the workers whose production build (bin/current.json, never a dev build),
// worker.yaml or worker-relevant server settings changed, starts new workers and drains removed
// ones. Every other worker keeps its processes. A source change without a new build changes
// nothing: production runs builds.
// An invalid configuration keeps the running one. Each reload ends with one summary log line.
import { availableParallelism } from 'node:os'
import { CoalescingQueue } from '../coalescing-queue.js'
import type { ResolvedServerConfig } from '../config/server-config.js'
import type { ServerConfig } from '../config/schema.js'
import type { Logger } from '../logger.js'
import type { ReloadSummary } from '../report/health-report.js'
import type { Supervisor } from '../supervision/supervisor.js'
import { discoverWorkers, type WorkerSpec } from '../config/worker-discovery.js'

/** Server keys a reload applies: the timeouts reach workers through their specs. */
const LIVE_KEYS = new Set<keyof ServerConfig>(['startTimeout', 'drainTimeout', 'killTimeout', 'logLevel', 'health'])

export interface ProdReloadOptions {
  /** Resolves the configuration again, from the same flags, environment and file as at start. */
  loadConfig: () => Promise<ResolvedServerConfig>
  config: ServerConfig
  supervisor: Supervisor
  log: Logger
}

export class ProdReload {
  readonly #options: ProdReloadOptions
  #config: ServerConfig
  /** What the server started with: settings that need a restart keep these values until then. */
  readonly #started: ServerConfig
  /** A reload asked for while one runs is served by exactly one more after it. */
  readonly #queue = new CoalescingQueue<string, ReloadSummary>((trigger) => this.#reload(trigger), (waiting) => waiting)

  constructor (options: ProdReloadOptions) {
    this.#options = options
    this.#config = options.config
    this.#started = options.config
  }

  /** Rescans and switches what changed; `trigger` says who asked (SIGHUP, the API). */
  reload (trigger: string): Promise<ReloadSummary> {
    return this.#queue.push(trigger)
  }

  async #reload (trigger: string): Promise<ReloadSummary> {
    const { supervisor, log } = this.#options
    const started = performance.now()
    const summary: ReloadSummary = {
      trigger, at: Date.now(), durationMs: 0, switched: [], started: [], stopped: [], unchanged: [], failed: [], needsRestart: [], error: null
    }
    try {
      const { root, config } = await this.#options.loadConfig()
      const specs = await discoverWorkers(root, config)
      summary.needsRestart = this.#applyServerSettings(config)
      const names = new Set(specs.map((spec) => spec.name))
      await inParallel([
        ...specs.map((spec) => () => this.#apply(spec, summary)),
        ...supervisor.workerNames().filter((name) => !names.has(name)).map((name) => async () => {
          await supervisor.stopWorker(name, 'removed by a reload')
          summary.stopped.push(name)
        })
      ])
    } catch (err) {
      summary.error = (err as Error).message
    }
    summary.durationMs = Math.round(performance.now() - started)
    for (const list of [summary.switched, summary.started, summary.stopped, summary.unchanged]) list.sort()
    supervisor.recordReload(summary)
    const level = summary.error || summary.failed.length > 0 ? 'error' : 'info'
    log[level](summary, summary.error ? 'reload refused: the configuration is invalid; the running one stays' : 'reload finished')
    return summary
  }

  async #apply (spec: WorkerSpec, summary: ReloadSummary): Promise<void> {
    const { supervisor } = this.#options
    const name = spec.name
    try {
      if (!supervisor.has(name)) {
        const outcome = await supervisor.startWorker(spec)
        if (outcome === 'build-failed' || outcome === 'start-failed') throw new Error(outcome)
        summary.started.push(name)
        return
      }
      // public/ as deployed now: new files are served, and the scan sees links swapped in.
      await supervisor.routes.worker(name)?.staticFiles.refresh()
      const current = supervisor.current(name)!
      const build = spec.enabled ? await supervisor.builder.current(spec) : current.build
      // A worker left FAILED by a crash loop gets another chance with every reload.
      const failed = spec.enabled && ![...supervisor.routes.worker(name)?.instances ?? []].some((instance) => instance.state.is('HEALTHY'))
      const changes = [
        ...(sameSpec(spec, current.spec) ? [] : ['worker settings']),
        ...(spec.enabled && build?.id !== current.build?.id ? ['build'] : []),
        ...(failed ? ['health (no healthy instance)'] : [])
      ]
      if (changes.length === 0) {
        summary.unchanged.push(name)
        return
      }
      const outcome = await supervisor.switchWorker({ spec, build, rebuild: spec.enabled && !build, restart: true, reason: `reload: ${changes.join(' and ')} changed` })
      if (outcome === 'build-failed' || outcome === 'start-failed') throw new Error(outcome === 'build-failed' ? 'the build failed' : 'the new version failed to start')
      // 'unchanged': nothing was switched after all (the server began to stop meanwhile).
      summary[outcome === 'switched' ? 'switched' : 'unchanged'].push(name)
    } catch (err) {
      summary.failed.push({ worker: name, reason: (err as Error).message })
    }
  }

  /** Applies what can change while running; returns the keys that differ from what runs until a restart. */
  #applyServerSettings (config: ServerConfig): string[] {
    const previous = this.#config
    this.#config = config
    if (config.logLevel !== previous.logLevel) this.#options.log.level = config.logLevel
    this.#options.supervisor.updateHealthSettings(config.health)
    const changed = (Object.keys(config) as Array<keyof ServerConfig>)
      .filter((key) => !LIVE_KEYS.has(key) && JSON.stringify(config[key]) !== JSON.stringify(this.#started[key]))
    // The health settings apply live, but for the token, which the routes were given at start.
    return config.health.token === this.#started.health.token ? changed : [...changed, 'health.token']
  }
}

/** The parts of a spec that reach the worker process or its supervision. */
function sameSpec (a: WorkerSpec, b: WorkerSpec): boolean {
  const relevant = (spec: WorkerSpec) => JSON.stringify([
    spec.route, spec.enabled, spec.instances, spec.entry, spec.command, spec.build, spec.external, spec.env, spec.timeouts,
    spec.maxRequests, spec.maxMemoryMb, spec.bodyLimit
  ])
  return relevant(a) === relevant(b)
}

/** Runs the tasks with at most as many at once as the machine has cores: each starts processes. */
async function inParallel (tasks: Array<() => Promise<void>>): Promise<void> {
  const queue = [...tasks]
  const runners = Array.from({ length: Math.min(queue.length, availableParallelism() * 2) }, async () => {
    for (let task = queue.shift(); task; task = queue.shift()) await task()
  })
  await Promise.all(runners)
}
