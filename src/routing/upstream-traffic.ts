// Traffic per upstream origin: requests in flight (for the drain and the least-busy choice),
// request and error totals with recent latencies (for /health), and how long requests have waited
// on it without any answer coming back (for hang detection).
import { performance } from 'node:perf_hooks'

/** Latencies kept per upstream for p50/p99: the most recent ones. */
const LATENCY_SAMPLES = 512

interface Counters {
  inflight: number
  requests: number
  errors: number
  latencies: Float64Array
  next: number
  filled: number
  /** Requests sent that have no response headers yet. */
  waiting: number
  /** Since when no answer came back while requests waited: the later of the last answer and the first wait. */
  quietSince: number
}

export interface TrafficStats {
  inflight: number
  requests: number
  errors: number
  latencyMs: { p50: number, p99: number } | null
}

/** The p-quantile of sorted values by nearest rank (p99 of 200 values is the 198th); NaN for none. */
export function nearestRank (sorted: ArrayLike<number>, p: number): number {
  return sorted[Math.max(0, Math.ceil(sorted.length * p) - 1)] ?? NaN
}

export class UpstreamTraffic {
  readonly #byOrigin = new Map<string, Counters>()
  readonly #idleWaiters = new Map<string, Set<() => void>>()
  // The counters found last: a request looks its origin up six times, and a worker usually has
  // one instance, so most lookups hash no string (the proxy's hot path).
  #lastOrigin: string | undefined
  #last: Counters | undefined

  begin (origin: string): void {
    this.#counters(origin).inflight++
  }

  /**
   * Ends a request begun with begin(): `failed` for a 5xx or a request that did not complete.
   * Returns how many requests the upstream has now served.
   */
  end (origin: string, durationMs: number, failed: boolean): number {
    const counters = this.#counters(origin)
    counters.requests++
    if (failed) counters.errors++
    counters.latencies[counters.next] = durationMs
    counters.next = (counters.next + 1) % LATENCY_SAMPLES
    counters.filled = Math.min(counters.filled + 1, LATENCY_SAMPLES)
    this.leave(origin)
    return counters.requests
  }

  /** A request was sent to `origin` and waits for its answer (response headers). */
  awaitAnswer (origin: string): void {
    const counters = this.#counters(origin)
    if (counters.waiting++ === 0) counters.quietSince = performance.now()
  }

  /** A request ended its wait: `answered` when its response headers came, false when it gave up. */
  stopWaiting (origin: string, answered: boolean): void {
    const counters = this.#find(origin)
    if (!counters) return
    counters.waiting--
    if (answered) counters.quietSince = performance.now()
  }

  /**
   * How long `origin` has answered nothing while requests waited on it (ms at `now`, from
   * performance.now()); 0 while nothing waits. A busy instance that answers others is not quiet,
   * however long one slow request takes.
   */
  quietFor (origin: string, now: number): number {
    const counters = this.#find(origin)
    return counters && counters.waiting > 0 ? now - counters.quietSince : 0
  }

  /** Ends something begun with begin() that is not a request (a handed-off connection). */
  leave (origin: string): void {
    const counters = this.#counters(origin)
    counters.inflight--
    if (counters.inflight === 0) {
      const waiters = this.#idleWaiters.get(origin)
      this.#idleWaiters.delete(origin)
      for (const wake of waiters ?? []) wake()
    }
  }

  inflight (origin: string): number {
    return this.#find(origin)?.inflight ?? 0
  }

  /** Resolves true when no request is in flight to `origin`, or false after `timeoutMs`. */
  whenIdle (origin: string, timeoutMs: number): Promise<boolean> {
    if (this.inflight(origin) === 0) return Promise.resolve(true)
    return new Promise((resolve) => {
      const waiters = this.#idleWaiters.get(origin) ?? new Set()
      this.#idleWaiters.set(origin, waiters)
      const timer = setTimeout(() => {
        waiters.delete(wake)
        resolve(false)
      }, timeoutMs)
      function wake () {
        clearTimeout(timer)
        resolve(true)
      }
      waiters.add(wake)
    })
  }

  stats (origin: string): TrafficStats {
    const counters = this.#byOrigin.get(origin)
    if (!counters) return { inflight: 0, requests: 0, errors: 0, latencyMs: null }
    const sorted = counters.latencies.slice(0, counters.filled).sort()
    const at = (p: number) => Math.round(nearestRank(sorted, p) * 10) / 10
    return {
      inflight: counters.inflight,
      requests: counters.requests,
      errors: counters.errors,
      latencyMs: sorted.length > 0 ? { p50: at(0.5), p99: at(0.99) } : null
    }
  }

  /** Upstreams with counters (each one that served since it started and has not left service). */
  get size (): number {
    return this.#byOrigin.size
  }

  /** Drops an upstream that has left service (its port will serve another instance later). */
  forget (origin: string): void {
    if (this.inflight(origin) !== 0) return
    this.#byOrigin.delete(origin)
    if (origin === this.#lastOrigin) this.#lastOrigin = this.#last = undefined
  }

  #find (origin: string): Counters | undefined {
    if (origin === this.#lastOrigin) return this.#last
    const counters = this.#byOrigin.get(origin)
    if (counters) {
      this.#lastOrigin = origin
      this.#last = counters
    }
    return counters
  }

  #counters (origin: string): Counters {
    let counters = this.#find(origin)
    if (!counters) {
      counters = { inflight: 0, requests: 0, errors: 0, latencies: new Float64Array(LATENCY_SAMPLES), next: 0, filled: 0, waiting: 0, quietSince: 0 }
      this.#byOrigin.set(origin, counters)
    }
    return counters
  }
}
