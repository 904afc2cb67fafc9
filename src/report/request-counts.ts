// What /metrics says about proxied requests (tqserver_requests_total, by worker and status class,
// and tqserver_request_duration_seconds, a histogram by worker), counted in plain arrays per
// worker: a request ends in a few increments, and prom-client reads the counts only when scraped.
// prom-client's own inc() and observe() check and hash their label objects on every call, about
// 1 µs of the proxy's CPU per request (docs/performance.md, Proxy overhead).
import { Counter, type Metric, type MetricObjectWithValues, type MetricValueWithName, type Registry } from 'prom-client'

/** The status class of a request by its status code / 100 - 1; the last one for no complete answer. */
const STATUS_CLASSES = ['1xx', '2xx', '3xx', '4xx', '5xx', 'failed']
const FAILED = STATUS_CLASSES.length - 1

interface WorkerCounts {
  byClass: Float64Array
  /** Requests per bucket, by the bucket's upper bound (not cumulative; above the last, none). */
  byBucket: Float64Array
  sum: number
  count: number
}

export interface RequestCountsOptions {
  prefix: string
  /** Histogram bucket upper bounds, in seconds, ascending. */
  buckets: readonly number[]
  registers: Registry[]
}

export class RequestCounts {
  readonly #byWorker = new Map<string, WorkerCounts>()
  readonly #buckets: readonly number[]

  constructor ({ prefix, buckets, registers }: RequestCountsOptions) {
    this.#buckets = buckets
    const byWorker = this.#byWorker
    new Counter({
      name: `${prefix}requests_total`,
      help: 'Requests proxied to workers, by status class ("failed": no complete answer)',
      labelNames: ['worker', 'status_class'],
      registers,
      collect () {
        this.reset()
        for (const [worker, { byClass }] of byWorker) {
          byClass.forEach((count, index) => { if (count > 0) this.inc({ worker, status_class: STATUS_CLASSES[index]! }, count) })
        }
      }
    })
    const histogram = new DurationHistogram(`${prefix}request_duration_seconds`, buckets, byWorker)
    for (const registry of registers) registry.registerMetric(histogram as unknown as Metric)
  }

  /** A proxied request ended: `statusCode` 0 when it got no complete answer. */
  record (worker: string, statusCode: number, durationMs: number): void {
    let counts = this.#byWorker.get(worker)
    if (counts === undefined) {
      counts = { byClass: new Float64Array(STATUS_CLASSES.length), byBucket: new Float64Array(this.#buckets.length), sum: 0, count: 0 }
      this.#byWorker.set(worker, counts)
    }
    const statusClass = Math.floor(statusCode / 100) - 1
    counts.byClass[statusClass >= 0 && statusClass < FAILED ? statusClass : FAILED]!++
    const seconds = durationMs / 1000
    // As prom-client's: a value on a bound counts in that bound's bucket.
    const buckets = this.#buckets
    for (let i = 0; i < buckets.length; i++) {
      if (seconds <= buckets[i]!) {
        counts.byBucket[i]!++
        break
      }
    }
    counts.sum += seconds
    counts.count++
  }
}

/**
 * The histogram as a prom-client metric (what its Histogram's get() gives: cumulative buckets with
 * `le`, then +Inf, _sum and _count, per worker), registered as one, read only when scraped.
 */
class DurationHistogram {
  readonly name: string
  readonly help = 'Time from a request reaching the host to the end of its answer'
  readonly type = 'histogram'
  readonly aggregator = 'sum'
  readonly #buckets: readonly number[]
  readonly #byWorker: ReadonlyMap<string, WorkerCounts>

  constructor (name: string, buckets: readonly number[], byWorker: ReadonlyMap<string, WorkerCounts>) {
    this.name = name
    this.#buckets = buckets
    this.#byWorker = byWorker
  }

  async get (): Promise<MetricObjectWithValues<MetricValueWithName<string>>> {
    const values: Array<MetricValueWithName<string>> = []
    const bucket = `${this.name}_bucket`
    for (const [worker, { byBucket, sum, count }] of this.#byWorker) {
      let below = 0
      this.#buckets.forEach((le, index) => {
        below += byBucket[index]!
        values.push({ metricName: bucket, labels: { le, worker }, value: below })
      })
      values.push({ metricName: bucket, labels: { le: '+Inf', worker }, value: count },
        { metricName: `${this.name}_sum`, labels: { worker }, value: sum },
        { metricName: `${this.name}_count`, labels: { worker }, value: count })
    }
    return { name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator } as unknown as MetricObjectWithValues<MetricValueWithName<string>>
  }

  /** The counts are the server's: a registry's reset leaves them. */
  reset (): void {}
}
