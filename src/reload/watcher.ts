// Watches workers/ (and source files a worker imports from outside its folder) and reports, per
// worker, what kind of files changed. A burst of saves is reported once, after `debounceMs` of
// quiet. Editors' atomic saves (write a temp file, rename it over) arrive as changes.
import { stat } from 'node:fs/promises'
import { relative, sep } from 'node:path'
import { watch, type FSWatcher } from 'chokidar'
import type { Logger } from '../logger.js'

/**
 * source: code to build (src/, or any build input); config: worker.yaml; private: files the worker
 * reads (restart, no build); public: files the host serves (nothing to restart); folder: the
 * worker folder itself appeared or disappeared.
 */
export type ChangeKind = 'source' | 'config' | 'private' | 'public' | 'folder'

export interface WatcherOptions {
  workersDir: string
  debounceMs: number
  log: Logger
  onChange: (worker: string, kinds: Set<ChangeKind>) => void
}

/** Editor and system leftovers that are never a change worth a rebuild. */
const IGNORED_NAME = /(^\.|~$|\.sw[a-p]$|^4913$|\.tmp$)/
/**
 * chokidar drops every further 'change' of a file for 50 ms after one (its throttle has no
 * trailing event), so a second save within 50 ms would be lost. A file is looked at again after
 * that window, and reported if it was written after the last report (whose build read the files
 * then) and since chokidar looked at it. Not "since the event" alone: a save is a truncate and a
 * write, and a stat between the two would make every save look changed again, and build twice.
 * Not "after the report" alone: with reloadDebounce 0 a save is reported within the slack below,
 * and every save would be reported twice.
 */
const CHOKIDAR_THROTTLE_MS = 50
/** File times come from the kernel's coarse clock, a few ms behind Date.now(). */
const MTIME_SLACK_MS = 10

export class WorkerWatcher {
  readonly #options: WatcherOptions
  readonly #pending = new Map<string, { kinds: Set<ChangeKind>, timer: NodeJS.Timeout }>()
  /** Build inputs outside workers/, and the workers that import them. */
  readonly #outside = new Map<string, Set<string>>()
  readonly #rechecks = new Set<NodeJS.Timeout>()
  /** When changes were last reported (Date.now()): builds read the files after this. */
  #reportedAt = 0
  #watcher: FSWatcher | undefined
  #closed = false

  constructor (options: WatcherOptions) {
    this.#options = options
  }

  async start (): Promise<void> {
    const { workersDir } = this.#options
    this.#watcher = watch(workersDir, {
      ignoreInitial: true,
      alwaysStat: true,
      ignored: (path) => {
        const rel = relative(workersDir, path)
        if (rel.startsWith('..')) return false // a tracked input outside workers/
        const parts = rel.split(sep)
        return parts.some((part) => part === 'node_modules' || IGNORED_NAME.test(part)) || parts[1] === 'bin'
      }
    })
    this.#watcher.on('all', (event, path, stats) => {
      this.#onEvent(event, path)
      if (event === 'change') this.#recheck(path, stats?.mtimeMs ?? 0)
    })
    this.#watcher.on('error', (err) => this.#options.log.error({ err }, 'file watcher error'))
    await new Promise<void>((resolve) => this.#watcher!.once('ready', () => resolve()))
  }

  /**
   * Also watches the files a worker's build read from outside workers/ (a shared folder), but not
   * installed packages: node_modules changes only with an install, which needs a restart anyway.
   */
  trackInputs (worker: string, files: string[]): void {
    if (this.#closed) return
    for (const [file, workers] of this.#outside) {
      if (workers.delete(worker) && workers.size === 0) {
        this.#outside.delete(file)
        this.#watcher?.unwatch(file)
      }
    }
    for (const file of files) {
      if (!relative(this.#options.workersDir, file).startsWith('..') || file.split(sep).includes('node_modules')) continue
      const workers = this.#outside.get(file) ?? new Set()
      if (workers.size === 0) this.#watcher?.add(file)
      workers.add(worker)
      this.#outside.set(file, workers)
    }
  }

  async close (): Promise<void> {
    this.#closed = true
    for (const { timer } of this.#pending.values()) clearTimeout(timer)
    this.#pending.clear()
    for (const timer of this.#rechecks) clearTimeout(timer)
    this.#rechecks.clear()
    await this.#watcher?.close()
  }

  #onEvent (event: string, path: string): void {
    const rel = relative(this.#options.workersDir, path)
    if (rel.startsWith('..')) {
      for (const worker of this.#outside.get(path) ?? []) this.#queue(worker, 'source')
      return
    }
    const [worker, area, ...rest] = rel.split(sep)
    if (!worker) return
    if (area === undefined) {
      if (event === 'addDir' || event === 'unlinkDir') this.#queue(worker, 'folder')
      return
    }
    if (area === 'public') return this.#queue(worker, 'public')
    if (area === 'private') return this.#queue(worker, 'private')
    if (area === 'worker.yaml' && rest.length === 0) return this.#queue(worker, 'config')
    if (event === 'addDir' || event === 'unlinkDir') return
    this.#queue(worker, 'source')
  }

  /** Looks at a changed file again once chokidar's window is over; `seenMtimeMs`: its time at the event. */
  #recheck (path: string, seenMtimeMs: number): void {
    const timer = setTimeout(() => {
      this.#rechecks.delete(timer)
      stat(path).then((now) => {
        if (!this.#closed && now.mtimeMs > seenMtimeMs && now.mtimeMs > this.#reportedAt - MTIME_SLACK_MS) this.#onEvent('change', path)
      }, () => {})
    }, CHOKIDAR_THROTTLE_MS + 10)
    timer.unref()
    this.#rechecks.add(timer)
  }

  #queue (worker: string, kind: ChangeKind): void {
    const pending = this.#pending.get(worker)
    if (pending) clearTimeout(pending.timer)
    const kinds = pending?.kinds ?? new Set<ChangeKind>()
    kinds.add(kind)
    const timer = setTimeout(() => {
      this.#pending.delete(worker)
      this.#reportedAt = Date.now()
      this.#options.onChange(worker, kinds)
    }, this.#options.debounceMs)
    timer.unref()
    this.#pending.set(worker, { kinds, timer })
  }
}
