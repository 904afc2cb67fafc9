// Passive hang detection: an instance that has answered nothing for `hangAfter` while requests
// waited on it (upstream-traffic.ts keeps that time) is reported as quiet, and the health checker
// probes it at once; only that probe decides whether it hangs. A busy instance that answers other
// requests is never quiet, however slow one of them is; one whose only requests legitimately wait
// (a long poll) is reported once per `hangAfter` and costs a GET /health each time.
import type { WorkerInstance } from '../process/worker-instance.js'
import type { UpstreamTraffic } from '../routing/upstream-traffic.js'

/** Looks per `hangAfter`: an instance is reported at most a quarter of `hangAfter` late. */
const SWEEPS_PER_HANG_AFTER = 4
const MIN_SWEEP_MS = 10

export interface HangDetectorOptions {
  hangAfter: number
  /** The instances to watch (only those HEALTHY or UNHEALTHY are). */
  instances: () => Iterable<WorkerInstance>
  traffic: UpstreamTraffic
  /** `instance` has answered nothing for `quietMs` while requests waited on it. */
  onQuiet: (instance: WorkerInstance, quietMs: number) => void
}

export class HangDetector {
  readonly #options: HangDetectorOptions
  /** When each instance was last reported (performance.now()), so as to report it once per `hangAfter`. */
  readonly #reported = new WeakMap<WorkerInstance, number>()
  #hangAfter: number
  #timer: NodeJS.Timeout | undefined

  constructor (options: HangDetectorOptions) {
    this.#options = options
    this.#hangAfter = options.hangAfter
  }

  start (): void {
    clearInterval(this.#timer)
    this.#timer = setInterval(() => this.#sweep(), Math.max(MIN_SWEEP_MS, this.#hangAfter / SWEEPS_PER_HANG_AFTER))
    this.#timer.unref()
  }

  update (hangAfter: number): void {
    const restart = hangAfter !== this.#hangAfter && this.#timer !== undefined
    this.#hangAfter = hangAfter
    if (restart) this.start()
  }

  stop (): void {
    clearInterval(this.#timer)
    this.#timer = undefined
  }

  #sweep (): void {
    const now = performance.now()
    for (const instance of this.#options.instances()) {
      const { origin } = instance
      if (origin === undefined || !instance.state.is('HEALTHY', 'UNHEALTHY')) continue
      const quietMs = this.#options.traffic.quietFor(origin, now)
      if (quietMs < this.#hangAfter || now - (this.#reported.get(instance) ?? -Infinity) < this.#hangAfter) continue
      this.#reported.set(instance, now)
      this.#options.onQuiet(instance, Math.round(quietMs))
    }
  }
}
