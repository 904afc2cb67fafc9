// When to restart a crashed worker: exponential backoff, and a crash loop ends in FAILED, tried
// again after a cool-down that doubles with each loop. Crashes are counted in a sliding window
// whatever each run's uptime, so a worker that crashes after a long run still counts (PM2's
// min_uptime rule restarts such a worker forever).
export interface RestartSettings {
  restartDelay: number
  restartDelayMax: number
  crashLimit: number
  crashWindow: number
  failedRetryDelay: number
  failedRetryDelayMax: number
}

export class CrashHistory {
  readonly #settings: RestartSettings
  #times: number[] = []
  #loops = 0

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

  /** Records a crash loop: the cool-down before the worker is tried again, or undefined for never. */
  loop (): number | undefined {
    const { failedRetryDelay, failedRetryDelayMax } = this.#settings
    this.#loops++
    if (failedRetryDelay === 0) return undefined
    return Math.min(failedRetryDelay * 2 ** (this.#loops - 1), failedRetryDelayMax)
  }

  /** Crashes within the window. */
  get count (): number {
    return this.#times.length
  }

  /** Forgets past crashes (the worker's files changed, or it was reloaded). */
  reset (): void {
    this.#times = []
    this.#loops = 0
  }
}
