// GET /metrics in Prometheus text format, every name prefixed tqserver_. Counters and histograms
// are updated where things happen (a request ends, a worker crashes, builds or switches, the
// server reloads); gauges (instances by state, requests in flight) are read from the health
// report when scraped. One prom-client registry per server, so two servers in a process (tests,
// an app that registers tqserver twice) never share a series. Data planes count their requests
// in registries of their own (RequestCounters); a scrape adds them up (prom-client's aggregator).
import { AggregatorRegistry, collectDefaultMetrics, Counter, Gauge, Histogram, Registry, type MetricObjectWithValues, type MetricValue } from 'prom-client'
import type { HealthReport, ReloadSummary } from './health-report.js'
import { STATES } from '../process/worker-state.js'
import { RequestCounts } from './request-counts.js'
import type { TlsReport } from '../tls/server-tls.js'
import { DAY_MS } from '../tls/certificate.js'

const PREFIX = 'tqserver_'
/** Seconds; a proxied request is usually well under 100 ms, a switch or build well over. */
const REQUEST_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]
const SLOW_BUCKETS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60]

/** One data plane's metrics, as a scrape gathers them. */
export type MetricsSnapshot = Array<MetricObjectWithValues<MetricValue<string>>>

/** What every data plane counts: requests by worker and status class, and their durations. */
export class RequestCounters {
  readonly registry = new Registry()
  /** tqserver_requests_total and tqserver_request_duration_seconds. */
  readonly #requests: RequestCounts
  /** Requests ended in this process, for the list of processes serving the port. */
  served = 0

  constructor () {
    this.#requests = new RequestCounts({ prefix: PREFIX, buckets: REQUEST_BUCKETS, registers: [this.registry] })
    collectDefaultMetrics({ register: this.registry, prefix: PREFIX })
  }

  /** A proxied request ended: `statusCode` 0 when it got no complete answer. */
  request (worker: string, statusCode: number, durationMs: number): void {
    this.served++
    this.#requests.record(worker, statusCode, durationMs)
  }
}

export class ServerMetrics extends RequestCounters {
  readonly #restarts: Counter<'worker'>
  readonly #switches: Counter<'worker' | 'outcome'>
  readonly #switchDuration: Histogram<'worker'>
  readonly #builds: Counter<'worker' | 'result'>
  readonly #buildDuration: Histogram<'worker'>
  readonly #reloads: Counter<'trigger' | 'result'>
  readonly #reloadDuration: Histogram

  /** The health report of the scrape in progress: three gauges read it, it is built once. */
  #scraped: HealthReport | undefined

  constructor (report: () => HealthReport) {
    super()
    const workers = () => Object.entries((this.#scraped ??= report()).workers)
    const registers = [this.registry]
    // Gauges register themselves on creation and are filled from the report when scraped.
    new Gauge({
      name: `${PREFIX}requests_in_flight`,
      help: 'Requests being proxied now',
      labelNames: ['worker'],
      registers,
      collect () {
        this.reset()
        for (const [worker, { instances }] of workers()) {
          this.set({ worker }, instances.reduce((sum, instance) => sum + instance.inflight, 0))
        }
      }
    })
    new Gauge({
      name: `${PREFIX}instances`,
      help: 'Worker instances by state',
      labelNames: ['worker', 'state'],
      registers,
      collect () {
        this.reset()
        for (const [worker, { instances }] of workers()) {
          for (const state of STATES) this.set({ worker, state }, instances.filter((instance) => instance.state === state).length)
        }
      }
    })
    new Gauge({
      name: `${PREFIX}worker_up`,
      help: '1 while a worker has a healthy instance, 0 otherwise (disabled workers are not listed)',
      labelNames: ['worker'],
      registers,
      collect () {
        this.reset()
        for (const [worker, { status }] of workers()) {
          if (status !== 'disabled') this.set({ worker }, status === 'healthy' ? 1 : 0)
        }
      }
    })
    this.#restarts = new Counter({
      name: `${PREFIX}restarts_total`,
      help: 'Instances restarted after a crash or a failed start',
      labelNames: ['worker'],
      registers
    })
    this.#switches = new Counter({
      name: `${PREFIX}switches_total`,
      help: 'Switches of a worker to a new version or new instances, by outcome',
      labelNames: ['worker', 'outcome'],
      registers
    })
    this.#switchDuration = new Histogram({
      name: `${PREFIX}switch_duration_seconds`,
      help: 'Time from a reload request to the old instances stopped (build, start, switch, drain)',
      labelNames: ['worker'],
      buckets: SLOW_BUCKETS,
      registers
    })
    this.#builds = new Counter({
      name: `${PREFIX}builds_total`,
      help: 'Worker builds, by result (ok, error)',
      labelNames: ['worker', 'result'],
      registers
    })
    this.#buildDuration = new Histogram({
      name: `${PREFIX}build_duration_seconds`,
      help: 'Time to build a worker',
      labelNames: ['worker'],
      buckets: SLOW_BUCKETS,
      registers
    })
    this.#reloads = new Counter({
      name: `${PREFIX}reloads_total`,
      help: 'Server reloads (SIGHUP, tqserver reload, fastify.tqserver.reload()), by trigger and result',
      labelNames: ['trigger', 'result'],
      registers
    })
    this.#reloadDuration = new Histogram({
      name: `${PREFIX}reload_duration_seconds`,
      help: 'Time from a reload trigger to every changed worker switched',
      buckets: SLOW_BUCKETS,
      registers
    })
  }

  restarted (worker: string): void {
    this.#restarts.inc({ worker })
  }

  switched (worker: string, outcome: string, durationMs: number): void {
    this.#switches.inc({ worker, outcome })
    if (outcome === 'switched') this.#switchDuration.observe({ worker }, durationMs / 1000)
  }

  built (worker: string, ok: boolean, durationMs: number): void {
    this.#builds.inc({ worker, result: ok ? 'ok' : 'error' })
    this.#buildDuration.observe({ worker }, durationMs / 1000)
  }

  reloaded (summary: ReloadSummary): void {
    this.#reloads.inc({ trigger: summary.trigger, result: summary.error || summary.failed.length > 0 ? 'error' : 'ok' })
    this.#reloadDuration.observe(summary.durationMs / 1000)
  }

  /** Gauges of the certificate the port is served with, when tqserver terminates TLS. */
  followTls (report: () => TlsReport): void {
    const registers = [this.registry]
    new Gauge({
      name: `${PREFIX}tls_certificate_expiry_days`,
      help: 'Days until the certificate served on the port expires (negative once it has)',
      registers,
      collect () {
        const certificate = report().certificate
        if (certificate) this.set((certificate.notAfter - Date.now()) / DAY_MS)
      }
    })
    new Gauge({
      name: `${PREFIX}tls_certificate_error`,
      help: '1 while the last certificate change, issuance or renewal has failed (the certificate before it is still served), else 0',
      registers,
      collect () { this.set(report().lastError ? 1 : 0) }
    })
  }

  /** The Prometheus text exposition, with what `others` gives (the other data planes' counts). */
  async text (): Promise<string> {
    try {
      const others = await this.others?.() ?? []
      if (others.length === 0) return await this.registry.metrics()
      return await AggregatorRegistry.aggregate([await this.registry.getMetricsAsJSON(), ...others]).metrics()
    } finally {
      this.#scraped = undefined
    }
  }

  /** Set while data planes run: their metrics, gathered at each scrape. */
  others: (() => Promise<MetricsSnapshot[]>) | undefined

  get contentType (): string {
    return this.registry.contentType
  }
}
