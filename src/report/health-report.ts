// GET /health: its shape, the rule that turns worker states into one status, and the assembly
// of the report from what the supervisor, the proxy's counters and the health checker know.
import type { BuildErrorLocation, BuildMode, BuildResult } from '../build/builder.js'
import type { EventLog, ServerEvent } from './event-log.js'
import type { OutputLine } from '../process/log-capture.js'
import type { UpstreamTraffic } from '../routing/upstream-traffic.js'
import type { WorkerSpec } from '../config/worker-discovery.js'
import type { WorkerInstance } from '../process/worker-instance.js'
import type { WorkerState } from '../process/worker-state.js'
import type { TlsReport } from '../tls/server-tls.js'

export type OverallStatus = 'healthy' | 'degraded' | 'unhealthy'
export type WorkerStatus = 'healthy' | 'unhealthy' | 'disabled'

/** Output lines and events shown per report: enough to see why, small enough to send every second. */
const OUTPUT_LINES = 40
const EVENTS = 50

export interface InstanceReport {
  id: number
  pid: number | null
  port: number | null
  state: WorkerState
  /** When the instance entered its state (epoch ms). */
  since: number
  restarts: number
  uptimeMs: number | null
  rssBytes: number | null
  cpuPercent: number | null
  requests: number
  errors: number
  inflight: number
  latencyMs: { p50: number, p99: number } | null
  build: string
  lastCheck: number | null
  lastCheckError: string | null
}

export interface BuildReport {
  id: string | null
  /** prod (bin/current.json: minified, dependencies bundled) or dev (bin/dev.json). */
  mode: BuildMode | null
  builtAt: number | null
  durationMs: number | null
  error: { message: string, locations: BuildErrorLocation[], at: number } | null
}

export interface WorkerReport {
  status: WorkerStatus
  route: string
  /** The state of its most useful instance (HEALTHY first), or STOPPED when it has none. */
  state: WorkerState
  instances: InstanceReport[]
  lastBuild: BuildReport
  lastSwitch: { at: number, reason: string, build: string } | null
  lastError: { message: string, at: number } | null
  output: Array<Pick<OutputLine, 'time' | 'pid' | 'stream' | 'text'>>
}

export interface HealthReport {
  status: OverallStatus
  generatedAt: number
  workers: Record<string, WorkerReport>
  /** The last reload (SIGHUP, `tqserver reload`, fastify.tqserver.reload()), if any. */
  lastReload: ReloadSummary | null
  events: ServerEvent[]
  /** Worker ports: how many the range holds, how many are leased to instances. */
  ports: { size: number, leased: number }
  /** The processes serving the port, when there are several (`proxies`): the control plane first. */
  dataPlanes?: DataPlaneReport[]
  /** The certificate the port is served with, when tqserver terminates TLS (docs/tls.md). */
  tls?: TlsReport
}

/** One process that serves the public port: the control plane (the host) or a data plane. */
export interface DataPlaneReport {
  pid: number
  role: 'control' | 'data'
  /** Requests it proxied to workers since it started, and those in flight now. */
  requests: number
  inflight: number
  /** Over the last few seconds, as a percentage of one core; null before two samples, or off Linux. */
  cpuPercent: number | null
  memoryMb: number | null
  startedAt: number
  /** Data planes started in its place after one died. */
  restarts: number
}

/** What a production reload did (SIGHUP, `tqserver reload`, fastify.tqserver.reload()). */
export interface ReloadSummary {
  trigger: string
  at: number
  durationMs: number
  switched: string[]
  started: string[]
  stopped: string[]
  unchanged: string[]
  failed: Array<{ worker: string, reason: string }>
  /** Server settings that changed but take effect only when the server restarts. */
  needsRestart: string[]
  /** Set when the new configuration was invalid and nothing was changed. */
  error: string | null
}

/** One line for the event log: what a reload did, or why it did nothing. */
export function describeReload (summary: ReloadSummary): string {
  const parts = [['switched', summary.switched], ['started', summary.started], ['stopped', summary.stopped]] as const
  const done = parts.filter(([, names]) => names.length > 0).map(([label, names]) => `${label} ${names.join(', ')}`).join('; ')
  return summary.error ?? `${summary.trigger}: ${done || 'nothing changed'} in ${summary.durationMs} ms`
}

/** What the checker knows of one instance, for /health. */
export interface InstanceHealth {
  lastCheck: number | null
  lastError: string | null
  rssBytes: number | null
  cpuPercent: number | null
}

/** One worker as the supervisor knows it. */
export interface WorkerView {
  spec: WorkerSpec
  instances: WorkerInstance[]
  build: BuildResult | undefined
  buildError: BuildReport['error'] | undefined
  lastSwitch: WorkerReport['lastSwitch'] | undefined
  lastError: WorkerReport['lastError'] | undefined
  output: OutputLine[]
}

export interface ReportSources {
  workers: WorkerView[]
  traffic: UpstreamTraffic
  health: (instance: WorkerInstance) => InstanceHealth
  events: EventLog
  lastReload: ReloadSummary | undefined
  ports: HealthReport['ports']
}

const STATE_ORDER: WorkerState[] = ['HEALTHY', 'UNHEALTHY', 'STARTING', 'BACKOFF', 'DRAINING', 'CRASHED', 'FAILED', 'STOPPED']

export function buildHealthReport (sources: ReportSources): HealthReport {
  const now = Date.now()
  const workers: Record<string, WorkerReport> = {}
  for (const view of [...sources.workers].sort((a, b) => a.spec.name.localeCompare(b.spec.name))) {
    const states = view.instances.map((instance) => instance.state.current)
    workers[view.spec.name] = {
      status: workerStatus(view.spec.enabled, states),
      route: view.spec.route,
      state: STATE_ORDER.find((state) => states.includes(state)) ?? 'STOPPED',
      instances: view.instances.map((instance) => {
        const traffic = instance.origin ? sources.traffic.stats(instance.origin) : undefined
        const health = sources.health(instance)
        return {
          id: instance.id,
          pid: instance.pid ?? null,
          port: instance.port ?? null,
          state: instance.state.current,
          since: instance.state.since,
          restarts: instance.restarts,
          uptimeMs: instance.state.is('HEALTHY', 'UNHEALTHY') && instance.startedAt ? now - instance.startedAt : null,
          rssBytes: health.rssBytes,
          cpuPercent: health.cpuPercent,
          requests: traffic?.requests ?? 0,
          errors: traffic?.errors ?? 0,
          inflight: traffic?.inflight ?? 0,
          latencyMs: traffic?.latencyMs ?? null,
          build: instance.build.id,
          lastCheck: health.lastCheck,
          lastCheckError: health.lastError
        }
      }),
      lastBuild: {
        id: view.build?.id ?? null,
        mode: view.build?.mode ?? null,
        builtAt: view.build?.builtAt ?? null,
        durationMs: view.build?.durationMs ?? null,
        error: view.buildError ?? null
      },
      lastSwitch: view.lastSwitch ?? null,
      lastError: view.lastError ?? null,
      output: view.output.slice(-OUTPUT_LINES).map(({ time, pid, stream, text }) => ({ time, pid, stream, text }))
    }
  }
  return {
    status: overallStatus(Object.values(workers)),
    generatedAt: now,
    workers,
    lastReload: sources.lastReload ?? null,
    events: sources.events.recent(EVENTS),
    ports: sources.ports
  }
}

export function workerStatus (enabled: boolean, states: WorkerState[]): WorkerStatus {
  if (!enabled) return 'disabled'
  return states.includes('HEALTHY') ? 'healthy' : 'unhealthy'
}

/** healthy: every enabled worker has a healthy instance; unhealthy: none has; degraded: between. */
export function overallStatus (workers: Array<Pick<WorkerReport, 'status'>>): OverallStatus {
  const enabled = workers.filter((worker) => worker.status !== 'disabled')
  const healthy = enabled.filter((worker) => worker.status === 'healthy').length
  if (healthy === enabled.length) return 'healthy'
  return healthy === 0 ? 'unhealthy' : 'degraded'
}
