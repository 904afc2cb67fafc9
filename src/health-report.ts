// The shape of GET /health and the rule that turns worker states into one status.
import type { ReloadSummary } from './prod-reload.js'
import type { WorkerState } from './worker-state.js'

export type OverallStatus = 'healthy' | 'degraded' | 'unhealthy'
export type WorkerStatus = 'healthy' | 'unhealthy' | 'disabled'

export interface InstanceReport {
  id: number
  pid: number | null
  port: number | null
  state: WorkerState
  restarts: number
  uptimeMs: number | null
  inflight: number
  build: string
}

export interface BuildReport {
  id: string | null
  builtAt: number | null
  durationMs: number | null
  error: { message: string, locations: Array<{ file: string, line: number, column: number, text: string }>, at: number } | null
}

export interface WorkerReport {
  status: WorkerStatus
  route: string
  instances: InstanceReport[]
  lastBuild: BuildReport
  lastError: { message: string, at: number } | null
}

export interface HealthReport {
  status: OverallStatus
  workers: Record<string, WorkerReport>
  /** The last reload (SIGHUP, `tqserver reload`, fastify.tqserver.reload()), if any. */
  lastReload: ReloadSummary | null
}

export function workerStatus (enabled: boolean, states: WorkerState[]): WorkerStatus {
  if (!enabled) return 'disabled'
  return states.includes('HEALTHY') ? 'healthy' : 'unhealthy'
}

/** healthy: every enabled worker has a healthy instance; unhealthy: none has; degraded: between. */
export function overallStatus (workers: WorkerReport[]): OverallStatus {
  const enabled = workers.filter((worker) => worker.status !== 'disabled')
  const healthy = enabled.filter((worker) => worker.status === 'healthy').length
  if (healthy === enabled.length) return 'healthy'
  return healthy === 0 ? 'unhealthy' : 'degraded'
}
