// tqserver status and reload: find the server running in a root, read its /health, signal it.
import type { HealthReport } from '../report/health-report.js'
import { readServerFile } from '../server-file.js'
import { formatStatus } from './status-table.js'
import {
  TQ_ERR_CLI_NOT_RUNNING, TQ_ERR_CLI_RELOAD_FAILED, TQ_ERR_CLI_RELOAD_TIMEOUT, TQ_ERR_CLI_USAGE
} from '../errors.js'

const RELOAD_POLL_MS = 100

/** The /health report as JSON (details: from this machine, or with the token). */
async function healthReport (url: string, token?: string): Promise<HealthReport> {
  const res = await fetch(`${url}/health`, { headers: { accept: 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) } })
  return await res.json() as HealthReport
}

/** Prints the running server's /health as a table (or JSON); exits 1 when it is unhealthy. */
export async function status (root: string, options: { url?: string, token?: string, json?: boolean }): Promise<void> {
  const url = options.url ?? (await readServerFile(root))?.url
  if (url === undefined) throw new TQ_ERR_CLI_NOT_RUNNING(root, 'no .tqserver/server.json (or pass --url)')
  const token = options.token ?? process.env.TQ_HEALTH_TOKEN
  let report: HealthReport
  try {
    report = await healthReport(url, token)
  } catch (err) {
    throw new TQ_ERR_CLI_NOT_RUNNING(root, `${url} does not answer: ${(err as Error).message}`)
  }
  if (report.workers === undefined) throw new TQ_ERR_CLI_USAGE(`${url}/health shows only its status (${report.status}): pass --token`)
  process.stdout.write(options.json ? `${JSON.stringify(report, null, 2)}\n` : formatStatus(report, url))
  if (report.status === 'unhealthy') process.exitCode = 1
}

/** Signals the server in `root` to reload; with `wait`, follows /health until the reload is done. */
export async function reload (root: string, wait: boolean, timeoutMs: number): Promise<void> {
  const server = await readServerFile(root)
  if (!server) throw new TQ_ERR_CLI_NOT_RUNNING(root, 'no .tqserver/server.json')
  let signalledAt: number
  try {
    await healthReport(server.url)
    // Only a reload begun after the signal serves this command: one already running when it
    // arrives read the files before this command was run, and the server runs one more after it.
    signalledAt = Date.now()
    process.kill(server.pid, 'SIGHUP')
  } catch (err) {
    throw new TQ_ERR_CLI_NOT_RUNNING(root, `pid ${server.pid} at ${server.url} does not answer: ${(err as Error).message}`)
  }
  if (!wait) {
    process.stdout.write(`signalled tqserver (pid ${server.pid}) to reload\n`)
    return
  }
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, RELOAD_POLL_MS))
    const report = await healthReport(server.url)
    const summary = report.lastReload
    if (!summary || summary.at < signalledAt) continue
    const list = (label: string, names: string[]) => names.length > 0 ? [`${label} ${names.join(', ')}`] : []
    process.stdout.write(`reloaded in ${summary.durationMs} ms: ${[
      ...list('switched', summary.switched), ...list('started', summary.started), ...list('stopped', summary.stopped),
      ...list('unchanged', summary.unchanged)
    ].join('; ') || 'nothing to do'}\n`)
    if (summary.needsRestart.length > 0) process.stdout.write(`changed settings that need a restart: ${summary.needsRestart.join(', ')}\n`)
    const problems = [
      ...(summary.error ? [summary.error] : []),
      ...summary.failed.map((failure) => `${failure.worker}: ${failure.reason}`),
      ...Object.entries(report.workers).filter(([, worker]) => worker.status === 'unhealthy').map(([name]) => `${name} has no healthy instance`)
    ]
    if (problems.length > 0) throw new TQ_ERR_CLI_RELOAD_FAILED(problems.join('; '))
    return
  }
  throw new TQ_ERR_CLI_RELOAD_TIMEOUT(timeoutMs)
}
