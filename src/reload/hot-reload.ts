// Dev mode: turns file changes under workers/ into the right action for each worker. Source or
// worker.yaml changed: rebuild and switch; private/ changed: switch without a build; public/
// changed: rescan the host's file index; a worker folder appeared or went: start or stop it.
// A broken build or a broken worker.yaml keeps the running version serving.
import { join } from 'node:path'
import { CoalescingQueue } from '../coalescing-queue.js'
import type { ServerConfig } from '../config/schema.js'
import type { ReloadEvent } from './live-reload.js'
import type { EventStreamHub } from '../report/event-stream.js'
import type { Logger } from '../logger.js'
import type { Supervisor } from '../supervision/supervisor.js'
import { WorkerWatcher, type ChangeKind } from './watcher.js'
import { checkRoutes, readWorker, type WorkerSpec } from '../config/worker-discovery.js'

export interface HotReloadOptions {
  root: string
  config: ServerConfig
  supervisor: Supervisor
  log: Logger
  /** Told after every switch, so open pages reload. */
  liveReload?: EventStreamHub
}

export class HotReload {
  readonly #options: HotReloadOptions
  readonly #workersDir: string
  readonly #watcher: WorkerWatcher
  /** Per worker: changes seen while one is handled are handled together once it ends. */
  readonly #queues = new Map<string, CoalescingQueue<Set<ChangeKind>, void>>()

  constructor (options: HotReloadOptions) {
    this.#options = options
    this.#workersDir = join(options.root, options.config.workersDir)
    this.#watcher = new WorkerWatcher({
      workersDir: this.#workersDir,
      debounceMs: options.config.reloadDebounce,
      log: options.log,
      onChange: (worker, kinds) => this.#enqueue(worker, kinds)
    })
  }

  async start (): Promise<void> {
    await this.#watcher.start()
    // Files outside a worker's folder are known from its build, once the first start has built it.
    const { supervisor } = this.#options
    void supervisor.started().then(() => { for (const name of supervisor.workerNames()) this.#trackInputs(name) })
  }

  async close (): Promise<void> {
    await this.#watcher.close()
    await Promise.all([...this.#queues.values()].map((queue) => queue.idle()))
  }

  /** A save during a switch queues exactly one more switch, with every change seen meanwhile. */
  #enqueue (worker: string, kinds: Set<ChangeKind>): void {
    let queue = this.#queues.get(worker)
    if (!queue) {
      queue = new CoalescingQueue(
        (changes) => this.#handle(worker, changes).catch((err: unknown) => this.#options.log.error({ worker, err }, 'hot reload failed')),
        (waiting, next) => new Set([...waiting, ...next]))
      this.#queues.set(worker, queue)
    }
    void queue.push(kinds)
  }

  async #handle (worker: string, kinds: Set<ChangeKind>): Promise<void> {
    const { supervisor, log } = this.#options
    log.debug({ worker, changes: [...kinds] }, 'worker files changed')
    if (kinds.has('public') && supervisor.has(worker)) {
      await supervisor.routes.worker(worker)?.staticFiles.refresh()
      log.debug({ worker }, 'public files rescanned')
      this.#notify(worker, 'public files changed')
    }
    if (kinds.size === 1 && kinds.has('public')) return

    const spec = await this.#readSpec(worker)
    if (spec === null) return // invalid: reported, the running version stays
    if (spec === undefined) {
      if (supervisor.has(worker)) {
        await supervisor.stopWorker(worker, 'worker folder removed')
        this.#trackInputs(worker)
        this.#notify(worker, 'worker removed')
      }
      return
    }
    if (!supervisor.has(worker)) {
      const outcome = await supervisor.startWorker(spec)
      this.#trackInputs(worker)
      if (outcome === 'switched') this.#notify(worker, 'worker added')
      return
    }
    const outcome = await supervisor.switchWorker({
      spec,
      rebuild: kinds.has('source') || kinds.has('config') || kinds.has('folder'),
      restart: kinds.has('private') || kinds.has('config'),
      reason: `${[...kinds].filter((kind) => kind !== 'public').join(', ')} changed`
    })
    this.#trackInputs(worker)
    if (outcome === 'switched') this.#notify(worker, 'new version serving')
  }

  /** The worker's spec as its folder now says; undefined if it is no worker; null if invalid. */
  async #readSpec (worker: string): Promise<WorkerSpec | undefined | null> {
    const { root, config, supervisor, log } = this.#options
    try {
      const spec = await readWorker(root, join(this.#workersDir, worker), worker, config)
      if (spec) checkRoutes([...supervisor.routes.workers().map((entry) => entry.spec).filter((other) => other.name !== worker), spec])
      return spec
    } catch (err) {
      log.error({ worker, err }, 'worker configuration is invalid; the running version keeps serving')
      supervisor.recordError(worker, err as Error)
      return null
    }
  }

  #trackInputs (worker: string): void {
    this.#watcher.trackInputs(worker, this.#options.supervisor.buildInputs(worker))
  }

  #notify (worker: string, reason: string): void {
    this.#options.liveReload?.send('reload', { worker, reason } satisfies ReloadEvent)
  }
}
