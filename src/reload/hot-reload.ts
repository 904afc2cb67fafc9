// Dev mode: turns file changes under workers/ into the right action for each worker. Source or
// worker.yaml changed: rebuild and switch; private/ changed: switch without a build; public/
// changed: rescan the host's file index; a worker folder appeared or went: start or stop it.
// A broken build or a broken worker.yaml keeps the running version serving.
import { join } from 'node:path'
import type { ServerConfig } from '../config/schema.js'
import type { ReloadEvent } from './live-reload.js'
import type { EventStreamHub } from '../report/event-stream.js'
import type { Logger } from '../logger.js'
import type { Registry } from '../routing/route-table.js'
import type { Supervisor } from '../supervision/supervisor.js'
import { WorkerWatcher, type ChangeKind } from './watcher.js'
import { readWorker, type WorkerSpec } from '../config/worker-discovery.js'
import { TQ_ERR_CONFIG_DUPLICATE_ROUTE } from '../errors.js'

export interface HotReloadOptions {
  root: string
  config: ServerConfig
  supervisor: Supervisor
  registry: Registry
  log: Logger
  /** Told after every switch, so open pages reload. */
  liveReload?: EventStreamHub
}

export class HotReload {
  readonly #options: HotReloadOptions
  readonly #workersDir: string
  readonly #watcher: WorkerWatcher
  /**
   * Per worker: the handling in progress, and the changes seen meanwhile. Those are handled
   * together once it ends: a save during a switch queues exactly one more switch.
   */
  readonly #busy = new Map<string, { done: Promise<void>, waiting: Set<ChangeKind> | undefined }>()

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
    for (const entry of this.#options.registry.workers()) this.#trackInputs(entry.spec.name)
  }

  /** Resolves once every change seen so far has been handled. */
  async settled (): Promise<void> {
    while (this.#busy.size > 0) await Promise.all([...this.#busy.values()].map((busy) => busy.done))
  }

  async close (): Promise<void> {
    await this.#watcher.close()
    await this.settled()
  }

  #enqueue (worker: string, kinds: Set<ChangeKind>): void {
    const busy = this.#busy.get(worker)
    if (busy) {
      busy.waiting = new Set([...busy.waiting ?? [], ...kinds])
      return
    }
    const state: { done: Promise<void>, waiting: Set<ChangeKind> | undefined } = { done: Promise.resolve(), waiting: undefined }
    state.done = (async () => {
      let next: Set<ChangeKind> | undefined = kinds
      while (next) {
        await this.#handle(worker, next).catch((err: unknown) => this.#options.log.error({ worker, err }, 'hot reload failed'))
        next = state.waiting
        state.waiting = undefined
      }
      this.#busy.delete(worker)
    })()
    this.#busy.set(worker, state)
  }

  async #handle (worker: string, kinds: Set<ChangeKind>): Promise<void> {
    const { supervisor, log } = this.#options
    log.debug({ worker, changes: [...kinds] }, 'worker files changed')
    if (kinds.has('public') && supervisor.has(worker)) {
      await supervisor.refreshStatic(worker)
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
    const outcome = await supervisor.reload({
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
    const { root, config, registry, supervisor, log } = this.#options
    try {
      const spec = await readWorker(root, join(this.#workersDir, worker), worker, config)
      const clash = spec?.enabled && registry.workers().find((entry) =>
        entry.spec.name !== worker && entry.spec.enabled && entry.spec.route === spec.route)
      if (clash) throw new TQ_ERR_CONFIG_DUPLICATE_ROUTE(spec.route, clash.spec.source, spec.source)
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
