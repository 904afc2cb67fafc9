// Traffic per upstream origin: requests in flight (for the drain and the least-busy choice),
// request and error totals with recent latencies (for /health), and how long requests have waited
// on it without any answer coming back (for hang detection). With several data planes, each
// counts its own requests; the control plane's counts take in the others' (`remote`, `add`).
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
  /** requests and errors as last reported by unreported(). */
  reportedRequests: number
  reportedErrors: number
}

/** The requests that other processes (data planes) have in flight to the same upstreams. */
export interface RemoteTraffic {
  inflight: (origin: string) => number
  quietFor: (origin: string, now: number) => number
  /** Resolves true once none of them has a request in flight to `origin`, false after `timeoutMs`. */
  whenIdle: (origin: string, timeoutMs: number) => Promise<boolean>
}

/** Requests ended since the last report, for the control plane's totals. */
export interface TrafficDelta {
  requests: number
  errors: number
  latencies: number[]
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
  /** Set in the control plane while data planes run. */
  remote: RemoteTraffic | undefined
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
    record(counters, durationMs)
    this.leave(origin)
    return counters.requests
  }

  /** Adds requests another data plane served; returns how many `origin` has served now. */
  add (origin: string, delta: TrafficDelta): number {
    const counters = this.#counters(origin)
    counters.requests += delta.requests
    counters.errors += delta.errors
    for (const durationMs of delta.latencies) record(counters, durationMs)
    return counters.requests
  }

  /**
   * What each origin served since the last call, for every origin that served or has requests in
   * flight (a data plane reports it to the control plane).
   */
  unreported (): Map<string, TrafficDelta> {
    const deltas = new Map<string, TrafficDelta>()
    for (const [origin, counters] of this.#byOrigin) {
      const requests = counters.requests - counters.reportedRequests
      if (requests === 0 && counters.inflight === 0) continue
      const latencies: number[] = []
      for (let i = Math.min(requests, counters.filled); i > 0; i--) latencies.push(counters.latencies[(counters.next - i + LATENCY_SAMPLES) % LATENCY_SAMPLES]!)
      deltas.set(origin, { requests, errors: counters.errors - counters.reportedErrors, latencies })
      counters.reportedRequests = counters.requests
      counters.reportedErrors = counters.errors
    }
    return deltas
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
    const local = counters && counters.waiting > 0 ? now - counters.quietSince : 0
    return this.remote ? Math.max(local, this.remote.quietFor(origin, now)) : local
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

  /** Requests this process has in flight to `origin`. */
  inflight (origin: string): number {
    return this.#find(origin)?.inflight ?? 0
  }

  /** Requests every data plane has in flight to `origin`. */
  inflightEverywhere (origin: string): number {
    return this.inflight(origin) + (this.remote?.inflight(origin) ?? 0)
  }

  /** Resolves true when no data plane has a request in flight to `origin`, or false after `timeoutMs`. */
  async whenIdle (origin: string, timeoutMs: number): Promise<boolean> {
    if (!this.remote) return this.#whenIdleHere(origin, timeoutMs)
    const idle = await Promise.all([this.#whenIdleHere(origin, timeoutMs), this.remote.whenIdle(origin, timeoutMs)])
    return idle.every(Boolean)
  }

  #whenIdleHere (origin: string, timeoutMs: number): Promise<boolean> {
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
    if (!counters) return { inflight: this.inflightEverywhere(origin), requests: 0, errors: 0, latencyMs: null }
    const sorted = counters.latencies.slice(0, counters.filled).sort()
    const at = (p: number) => Math.round(nearestRank(sorted, p) * 10) / 10
    return {
      inflight: this.inflightEverywhere(origin),
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
      counters = { inflight: 0, requests: 0, errors: 0, latencies: new Float64Array(LATENCY_SAMPLES), next: 0, filled: 0, waiting: 0, quietSince: 0, reportedRequests: 0, reportedErrors: 0 }
      this.#byOrigin.set(origin, counters)
    }
    return counters
  }
}

/** Keeps a latency among the most recent LATENCY_SAMPLES. */
function record (counters: Counters, durationMs: number): void {
  counters.latencies[counters.next] = durationMs
  counters.next = (counters.next + 1) % LATENCY_SAMPLES
  counters.filled = Math.min(counters.filled + 1, LATENCY_SAMPLES)
}
