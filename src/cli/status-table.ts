// `tqserver status`: the /health report as a plain-text table, one row per instance, for a
// terminal or a shell script (`tqserver status --json` prints the report itself).
import type { HealthReport, InstanceReport } from '../report/health-report.js'

const COLUMNS = ['WORKER', 'ROUTE', 'STATUS', 'STATE', 'PID', 'PORT', 'UPTIME', 'RSS', 'CPU', 'REQS', 'ERRS', 'P99', 'RESTARTS', 'BUILD'] as const

export function formatStatus (report: HealthReport, url: string): string {
  const rows: string[][] = []
  for (const [name, worker] of Object.entries(report.workers)) {
    const instances: Array<InstanceReport | undefined> = worker.instances.length > 0 ? worker.instances : [undefined]
    for (const instance of instances) {
      rows.push([
        name, worker.route, worker.status, instance?.state ?? worker.state,
        text(instance?.pid), text(instance?.port), duration(instance?.uptimeMs), megabytes(instance?.rssBytes),
        instance?.cpuPercent == null ? '-' : `${instance.cpuPercent.toFixed(0)}%`,
        text(instance?.requests), text(instance?.errors),
        instance?.latencyMs == null ? '-' : `${instance.latencyMs.p99.toFixed(1)}ms`, text(instance?.restarts),
        // A server serves builds of its own mode only: the worker's mode is each instance's.
        instance ? `${instance.build} ${worker.lastBuild.mode ?? ''}`.trimEnd() : '-'
      ])
    }
  }
  const lines = [`tqserver at ${url}: ${report.status}, ${report.ports.leased} of ${report.ports.size} worker ports leased`, '', ...table([[...COLUMNS], ...rows])]
  for (const [name, worker] of Object.entries(report.workers)) {
    const error = worker.lastBuild.error?.message ?? worker.lastError?.message
    if (!error) continue
    // An error older than every running instance was fixed by the version that now runs.
    const since = Math.min(...worker.instances.map((instance) => instance.since))
    const fixed = worker.lastBuild.error === null && worker.lastError !== null && worker.status === 'healthy' && worker.lastError.at < since
    const [first = '', ...more] = error.split('\n')
    lines.push('', `${name}: ${fixed ? '(fixed since) ' : ''}${first}`, ...more.slice(-ERROR_LINES).map((line) => `  ${line}`))
  }
  if (report.dataPlanes) {
    const planes = report.dataPlanes.map((plane) => `${plane.pid} (${plane.role === 'control' ? 'control plane' : 'data plane'}, ${plane.requests} requests${plane.memoryMb === null ? '' : `, ${plane.memoryMb.toFixed(0)}MB`})`)
    lines.push('', `served by ${planes.length} processes: ${planes.join(', ')}`)
  }
  const certificate = report.tls?.certificate
  if (report.tls) {
    lines.push('', certificate
      ? `HTTPS certificate for ${certificate.names.join(', ')}: ${certificate.daysLeft} days left (${report.tls.source})`
      : `HTTPS certificate: none yet (${report.tls.source})`)
    if (report.tls.lastError) lines.push(`  last failure: ${report.tls.lastError.message}`)
  }
  const reload = report.lastReload
  if (reload) lines.push('', `last reload ${new Date(reload.at).toISOString()}: ${reload.durationMs} ms, switched ${reload.switched.join(', ') || 'nothing'}`)
  return `${lines.join('\n')}\n`
}

/** Lines of an error's output shown under the table (the rest: tqserver status --json, or the log). */
const ERROR_LINES = 8

/** Left-aligned columns, two spaces apart. */
function table (rows: string[][]): string[] {
  const widths = rows[0]!.map((_, column) => Math.max(...rows.map((row) => row[column]!.length)))
  return rows.map((row) => row.map((cell, column) => cell.padEnd(widths[column]!)).join('  ').trimEnd())
}

function text (value: number | null | undefined): string {
  return value == null ? '-' : String(value)
}

function duration (ms: number | null | undefined): string {
  if (ms == null) return '-'
  const seconds = Math.floor(ms / 1000)
  if (seconds < 60) return `${seconds}s`
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m${seconds % 60}s`
  if (seconds < 86_400) return `${Math.floor(seconds / 3600)}h${Math.floor(seconds / 60) % 60}m`
  return `${Math.floor(seconds / 86_400)}d${Math.floor(seconds / 3600) % 24}h`
}

function megabytes (bytes: number | null | undefined): string {
  return bytes == null ? '-' : `${(bytes / 1024 / 1024).toFixed(0)}MB`
}
