// When to restart a crashed worker: exponential backoff, and a crash loop ends in FAILED. Crashes
// are counted in a sliding window whatever each run's uptime, so a worker that crashes after a
// long run still counts (PM2's min_uptime rule restarts such a worker forever).
export interface RestartSettings {
  restartDelay: number
  restartDelayMax: number
  crashLimit: number
  crashWindow: number
}

export class CrashHistory {
  readonly #settings: RestartSettings
  #times: number[] = []

  constructor (settings: RestartSettings) {
    this.#settings = settings
  }

  /** Records a crash: the delay before the next restart, or undefined for a crash loop. */
  record (now = Date.now()): number | undefined {
    const { restartDelay, restartDelayMax, crashLimit, crashWindow } = this.#settings
    this.#times = this.#times.filter((time) => now - time < crashWindow)
    this.#times.push(now)
    if (this.#times.length >= crashLimit) return undefined
    return Math.min(restartDelay * 2 ** (this.#times.length - 1), restartDelayMax)
  }

  /** Crashes within the window. */
  get count (): number {
    return this.#times.length
  }

  /** Forgets past crashes (the worker's files changed, or it was reloaded). */
  reset (): void {
    this.#times = []
  }
}
