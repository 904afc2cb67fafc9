// Probes worker instances with GET /health: once when they start, then every `interval`, all at
// once (a slow worker never delays another's check). `fall` failures in a row make an instance
// UNHEALTHY (out of rotation while another is healthy), `rise` successes HEALTHY again, and one
// UNHEALTHY for longer than `grace` is handed over to be replaced. A proxied request that could
// not reach an instance makes it suspect: it is probed at once, and one more failure suffices.
// An instance that answers nothing while requests wait on it (hang-detector.ts) is probed at once
// with `hangAfter` as the timeout: no answer at all means it hangs, and it is handed over to be
// replaced at once, not after `grace`. Each round also samples the processes' memory and CPU.
import type { Logger } from '../logger.js'
import { cpuPercent, sampleProcess, type ProcessSample } from '../process/process-stats.js'
import { probeHealth } from '../process/health-probe.js'
import type { WorkerInstance } from '../process/worker-instance.js'
import type { InstanceHealth } from '../report/health-report.js'
import type { RouteTable } from '../routing/route-table.js'
import type { UpstreamEvents } from '../routing/upstream-events.js'
import { HangDetector } from './hang-detector.js'

export interface HealthSettings {
  interval: number
  timeout: number
  fall: number
  rise: number
  grace: number
  hangAfter: number
}

interface Tracking {
  failures: number
  successes: number
  probing: boolean
  /** Why the next probe result counts double: a request failed, or the instance was quiet. */
  suspect: false | 'request' | 'quiet'
  /** How long it was quiet, when it was. */
  quietMs: number
  replaced: boolean
  lastCheck: number | null
  lastError: string | null
  sample: ProcessSample | null
  cpuPercent: number | null
}

export interface HealthCheckerOptions {
  settings: HealthSettings
  /** The instances to check (those not HEALTHY or UNHEALTHY are skipped), and the requests to them. */
  routes: RouteTable
  /** A proxied request that could not reach an upstream ('failed') makes its instance suspect. */
  upstreams: UpstreamEvents
  /** An instance moved between HEALTHY and UNHEALTHY (traffic already follows: the route table is told). */
  onChange: (instance: WorkerInstance, healthy: boolean, reason: string) => void
  /** An instance stayed UNHEALTHY past `grace`: replace it. Called once per instance. */
  onStuck: (instance: WorkerInstance) => void
  /** An instance hangs (quiet, and its probe got no answer): replace it now. Called once per instance. */
  onHung: (instance: WorkerInstance, reason: string) => void
  /** Each memory sample of a serving instance (for maxMemoryMb). */
  onSample: (instance: WorkerInstance, rssBytes: number) => void
  log: Logger
}

export class HealthChecker {
  readonly #options: HealthCheckerOptions
  readonly #tracking = new WeakMap<WorkerInstance, Tracking>()
  readonly #hangs: HangDetector
  #settings: HealthSettings
  #timer: NodeJS.Timeout | undefined

  constructor (options: HealthCheckerOptions) {
    this.#options = options
    this.#settings = options.settings
    const { routes } = options
    this.#hangs = new HangDetector({
      hangAfter: options.settings.hangAfter,
      instances: () => routes.instances(),
      traffic: routes.traffic,
      onQuiet: (instance, quietMs) => this.suspect(instance, quietMs)
    })
    options.upstreams.on('failed', (origin) => {
      const instance = routes.instanceAt(origin)
      if (instance) this.suspect(instance)
    })
  }

  start (): void {
    clearInterval(this.#timer)
    this.#timer = setInterval(() => this.checkAll(), this.#settings.interval)
    this.#timer.unref()
    this.#hangs.start()
  }

  /** New settings from a reload; the interval restarts if it changed. */
  update (settings: HealthSettings): void {
    const restart = settings.interval !== this.#settings.interval && this.#timer !== undefined
    this.#settings = settings
    this.#hangs.update(settings.hangAfter)
    if (restart) this.start()
  }

  stop (): void {
    clearInterval(this.#timer)
    this.#timer = undefined
    this.#hangs.stop()
  }

  /** Probes every serving instance now, without waiting for one another. */
  checkAll (): void {
    for (const instance of this.#options.routes.instances()) {
      if (instance.state.is('HEALTHY', 'UNHEALTHY')) void this.#check(instance)
    }
  }

  /**
   * A request could not reach `instance`, or (given `quietMs`) it has answered nothing for that
   * long while requests waited: probe it at once. A probe already running decides instead.
   */
  suspect (instance: WorkerInstance, quietMs?: number): void {
    if (!instance.state.is('HEALTHY', 'UNHEALTHY')) return
    const tracking = this.#track(instance)
    if (quietMs !== undefined) {
      tracking.suspect = 'quiet'
      tracking.quietMs = quietMs
      this.#options.log.debug({ worker: instance.spec.name, pid: instance.pid, quietMs }, 'instance suspect: requests wait and it answers nothing; probing now')
    } else {
      tracking.suspect ||= 'request'
      this.#options.log.debug({ worker: instance.spec.name, pid: instance.pid }, 'instance suspect after a failed request; probing now')
    }
    void this.#check(instance, quietMs === undefined ? this.#settings.timeout : this.#settings.hangAfter)
  }

  health (instance: WorkerInstance): InstanceHealth {
    const tracking = this.#tracking.get(instance)
    return {
      lastCheck: tracking?.lastCheck ?? null,
      lastError: tracking?.lastError ?? null,
      rssBytes: tracking?.sample?.rssBytes ?? null,
      cpuPercent: tracking?.cpuPercent ?? null
    }
  }

  async #check (instance: WorkerInstance, timeout = this.#settings.timeout): Promise<void> {
    const tracking = this.#track(instance)
    if (tracking.probing || instance.port === undefined || instance.pid === undefined) return
    tracking.probing = true
    const [result, sample] = await Promise.all([
      probeHealth(instance.port, '127.0.0.1', timeout),
      sampleProcess(instance.measuredPid ?? instance.pid)
    ])
    tracking.probing = false
    if (sample) {
      if (tracking.sample) tracking.cpuPercent = cpuPercent(tracking.sample, sample)
      tracking.sample = sample
    }
    tracking.lastCheck = Date.now()
    if (!instance.state.is('HEALTHY', 'UNHEALTHY')) return
    if (sample) this.#options.onSample(instance, sample.rssBytes)
    const { fall, rise, grace } = this.#settings
    if (result.ok) {
      this.#options.log.trace({ worker: instance.spec.name, pid: instance.pid }, 'health check passed')
      tracking.failures = 0
      tracking.successes++
      tracking.lastError = null
      tracking.suspect = false
      if (instance.state.is('UNHEALTHY') && tracking.successes >= rise) {
        instance.state.transition('HEALTHY', `${rise} health checks passed`)
        tracking.replaced = false
        this.#options.routes.publish(instance.spec.name)
        this.#options.onChange(instance, true, `${rise} health checks passed`)
      }
      return
    }
    tracking.successes = 0
    tracking.failures++
    tracking.lastError = result.error ?? 'failed'
    this.#options.log.debug({ worker: instance.spec.name, pid: instance.pid, failures: tracking.failures, error: tracking.lastError }, 'health check failed')
    // Quiet, and no answer at all to the probe either (a 503 is an answer: the worker runs).
    const hung = tracking.suspect === 'quiet' && result.status === undefined
    const reason = hung
      ? `hung: no answer for ${tracking.quietMs} ms to the requests waiting on it, nor to GET /health: ${tracking.lastError}`
      : tracking.suspect === 'quiet'
        ? `no answer for ${tracking.quietMs} ms to the requests waiting on it, and the health check failed: ${tracking.lastError}`
        : tracking.suspect
          ? `a request failed and the health check too: ${tracking.lastError}`
          : `${tracking.failures} health checks failed: ${tracking.lastError}`
    if (instance.state.is('HEALTHY') && (tracking.failures >= fall || tracking.suspect)) {
      instance.state.transition('UNHEALTHY', reason)
      this.#options.routes.publish(instance.spec.name)
      this.#options.onChange(instance, false, reason)
    }
    tracking.suspect = false
    if (hung && !tracking.replaced) {
      tracking.replaced = true
      this.#options.onHung(instance, reason)
      return
    }
    if (instance.state.is('UNHEALTHY') && !tracking.replaced && Date.now() - instance.state.since > grace) {
      tracking.replaced = true
      this.#options.onStuck(instance)
    }
  }

  #track (instance: WorkerInstance): Tracking {
    let tracking = this.#tracking.get(instance)
    if (!tracking) {
      tracking = { failures: 0, successes: 0, probing: false, suspect: false, quietMs: 0, replaced: false, lastCheck: null, lastError: null, sample: null, cpuPercent: null }
      this.#tracking.set(instance, tracking)
    }
    return tracking
  }
}
