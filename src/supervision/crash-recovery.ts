// What follows a crash (or a failed start when no version serves): the instance is started again
// in its slot after a growing delay (BACKOFF); a crash loop ends in FAILED, which is tried again
// after a cool-down (restart-policy.ts), so a worker that failed for a passing reason (a database
// down, memory short) comes back by itself.
import type { Logger } from '../logger.js'
import type { WorkerInstance } from '../process/worker-instance.js'
import type { EventLog } from '../report/event-log.js'
import type { ServerMetrics } from '../report/metrics.js'
import type { CrashHistory } from './restart-policy.js'

/** The worker's part in its recovery: its crash history, and where its last error is shown. */
export interface CrashingWorker {
  crashes: CrashHistory
  lastError: { message: string, at: number } | undefined
}

export interface CrashRecoveryOptions {
  crashWindow: number
  /** False once the worker is stopped or the server is stopping: nothing is restarted then. */
  active: (name: string) => boolean
  /** Traffic must follow: the instance serves again. */
  serving: (name: string) => void
  events: EventLog
  metrics: ServerMetrics
  log: Logger
}

export class CrashRecovery {
  readonly #options: CrashRecoveryOptions
  readonly #timers = new Map<WorkerInstance, NodeJS.Timeout>()

  constructor (options: CrashRecoveryOptions) {
    this.#options = options
  }

  /** The instance crashed (state CRASHED): schedules its restart, or marks a crash loop FAILED. */
  crashed (worker: CrashingWorker, instance: WorkerInstance): void {
    const { events, crashWindow } = this.#options
    const name = instance.spec.name
    if (!this.#options.active(name)) return
    const delay = worker.crashes.record()
    if (delay === undefined) {
      const retryIn = worker.crashes.loop()
      // The last cause too: a start that never got a process (no free port) is no crash of the worker's own.
      const reason = `crashed ${worker.crashes.count} times within ${crashWindow} ms; the last: ${instance.state.reason}` +
        (retryIn === undefined ? '' : `; retry in ${retryIn} ms`)
      instance.state.transition('FAILED', reason)
      events.record('failed', name, reason)
      if (retryIn !== undefined) this.#restartIn(worker, instance, retryIn, 'retry after a crash loop')
      return
    }
    events.record('crashed', name, `pid ${instance.pid ?? '?'}; restart in ${delay} ms`)
    instance.state.transition('BACKOFF', `restart in ${delay} ms`)
    this.#restartIn(worker, instance, delay, 'restart after crash')
  }

  /** The instance is being stopped or replaced: no restart is due any more. */
  cancel (instance: WorkerInstance): void {
    clearTimeout(this.#timers.get(instance))
    this.#timers.delete(instance)
  }

  #restartIn (worker: CrashingWorker, instance: WorkerInstance, delay: number, reason: string): void {
    const name = instance.spec.name
    const timer = setTimeout(() => {
      this.#timers.delete(instance)
      this.#options.metrics.restarted(name)
      instance.start(reason).then(
        () => this.#options.serving(name),
        (err: Error) => {
          worker.lastError = { message: err.message, at: Date.now() }
          this.#options.log.error({ worker: name, err }, 'worker failed to restart')
          if (instance.state.is('CRASHED')) this.crashed(worker, instance)
        })
    }, delay)
    timer.unref()
    this.#timers.set(instance, timer)
  }
}
