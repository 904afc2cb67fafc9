// Recent events of the server, newest last, in a bounded ring: starts, switches, crashes, build
// errors, health changes, reloads. Shown by /health and the dashboard.
export type EventType =
  | 'started' | 'switched' | 'stopped' | 'build-failed' | 'start-failed' | 'crashed' | 'failed'
  | 'unhealthy' | 'recovered' | 'replaced' | 'reload'

export interface ServerEvent {
  at: number
  type: EventType
  worker: string | null
  message: string
}

const DEFAULT_CAPACITY = 200

export class EventLog {
  readonly #capacity: number
  #events: ServerEvent[] = []

  constructor (capacity = DEFAULT_CAPACITY) {
    this.#capacity = capacity
  }

  record (type: EventType, worker: string | null, message: string): void {
    this.#events.push({ at: Date.now(), type, worker, message })
    if (this.#events.length > this.#capacity) this.#events.splice(0, this.#events.length - this.#capacity)
  }

  /** The most recent `count` events, oldest first. */
  recent (count = this.#capacity): ServerEvent[] {
    return this.#events.slice(-count)
  }
}
