// The instance state machine: the states, the legal moves between them, and the one function
// that moves an instance. Nothing else assigns a state.
//
//   STOPPED -> STARTING                          started
//   STARTING -> HEALTHY | CRASHED                answered GET /health, or did not
//   HEALTHY <-> UNHEALTHY                        health checks
//   HEALTHY | UNHEALTHY -> DRAINING -> STOPPED   replaced or stopped
//   HEALTHY | UNHEALTHY -> CRASHED               the process exited by itself
//   CRASHED -> BACKOFF -> STARTING               restarted after a growing delay
//   CRASHED -> FAILED -> STARTING                a crash loop; retried after a cool-down, a save or a reload
//   STARTING | CRASHED | BACKOFF | FAILED -> STOPPED   stopped before serving
// A worker being built has no instance yet: builds are reported per worker (lastBuild in /health).
import type { Logger } from '../logger.js'
import { TQ_ERR_WORKER_ILLEGAL_TRANSITION } from '../errors.js'

export type WorkerState =
  | 'STOPPED' | 'STARTING' | 'HEALTHY' | 'UNHEALTHY' | 'DRAINING' | 'CRASHED' | 'BACKOFF' | 'FAILED'

export const TRANSITIONS: Readonly<Record<WorkerState, readonly WorkerState[]>> = {
  STOPPED: ['STARTING'],
  STARTING: ['HEALTHY', 'CRASHED', 'STOPPED'],
  HEALTHY: ['UNHEALTHY', 'DRAINING', 'CRASHED'],
  UNHEALTHY: ['HEALTHY', 'DRAINING', 'CRASHED'],
  DRAINING: ['STOPPED'],
  CRASHED: ['BACKOFF', 'FAILED', 'STOPPED'],
  BACKOFF: ['STARTING', 'STOPPED'],
  FAILED: ['STOPPED', 'STARTING']
}

export const STATES = Object.keys(TRANSITIONS) as WorkerState[]

/** Facts logged with every change: which worker, which process, which port. */
export interface StateFacts { worker: string, pid: number | undefined, port: number | undefined }

export class InstanceState {
  #state: WorkerState = 'STOPPED'
  #since = Date.now()
  #reason = 'created'
  readonly #log: Logger
  readonly #facts: () => StateFacts

  constructor (log: Logger, facts: () => StateFacts) {
    this.#log = log
    this.#facts = facts
  }

  get current (): WorkerState {
    return this.#state
  }

  /** When the current state was entered (epoch ms). */
  get since (): number {
    return this.#since
  }

  /** Why the current state was entered. */
  get reason (): string {
    return this.#reason
  }

  is (...states: WorkerState[]): boolean {
    return states.includes(this.#state)
  }

  /** Moves to `to`, logging the change once; an illegal move throws TQ_ERR_WORKER_ILLEGAL_TRANSITION. */
  transition (to: WorkerState, reason: string): void {
    const from = this.#state
    const facts = this.#facts()
    if (!TRANSITIONS[from].includes(to)) throw new TQ_ERR_WORKER_ILLEGAL_TRANSITION(facts.worker, from, to)
    this.#state = to
    this.#since = Date.now()
    this.#reason = reason
    const level = to === 'CRASHED' || to === 'FAILED' ? 'warn' : 'info'
    this.#log[level]({ ...facts, from, to, reason }, 'worker state changed')
  }
}
