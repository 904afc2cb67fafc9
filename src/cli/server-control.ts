// tqserver status and reload: find the server (src/cli/server-choice.ts), read its /health, make it
// reload: SIGHUP for a server of this root, POST /__tqserver/reload for one elsewhere.
import type { HealthReport } from '../report/health-report.js'
import { RELOAD_PATH } from '../url-paths.js'
import { chooseServer, type ChosenServer, type ServerChoice } from './server-choice.js'
import { formatStatus } from './status-table.js'
import {
  TQ_ERR_CLI_NO_CERTIFICATE, TQ_ERR_CLI_NOT_RUNNING, TQ_ERR_CLI_RELOAD_FAILED, TQ_ERR_CLI_RELOAD_TIMEOUT, TQ_ERR_CLI_USAGE
} from '../errors.js'

const RELOAD_POLL_MS = 100

export interface ControlOptions extends ServerChoice {
  token?: string | undefined
}

const authorization = (token: string | undefined): Record<string, string> => token ? { authorization: `Bearer ${token}` } : {}

/**
 * The server's own HTTPS port on this machine (a loopback address, or every address: 0.0.0.0, which
 * the server file names when the server listens there) is reached without checking its
 * certificate: it was issued for the server's public names, not 127.0.0.1, and the server file
 * naming the port is the server's own. A URL elsewhere is checked as usual.
 */
const LOOPBACK_TLS = /^https:\/\/(127\.[0-9.]+|\[::1\]|localhost|0\.0\.0\.0|\[::\])(:[0-9]+)?(\/|$)/

/** fetch, through undici's own (loaded only then: ~90 ms that every other command would pay) for the local HTTPS port. */
async function request (url: string, init: { method?: string, headers: Record<string, string> }): Promise<{ status: number, json: () => Promise<unknown> }> {
  if (!LOOPBACK_TLS.test(url)) return fetch(url, init)
  const { fetch: fetchVia, dispatcher } = await (loopbackTls ??= import('undici').then((undici) =>
    ({ fetch: undici.fetch, dispatcher: new undici.Agent({ connect: { rejectUnauthorized: false } }) })))
  return fetchVia(url, { ...init, dispatcher })
}
let loopbackTls: Promise<{ fetch: typeof import('undici').fetch, dispatcher: import('undici').Agent }> | undefined

/** The /health report as JSON (details: from this machine, or with the token). */
async function healthReport (url: string, token: string | undefined): Promise<HealthReport> {
  const res = await request(`${url}/health`, { headers: { accept: 'application/json', ...authorization(token) } })
  return await res.json() as HealthReport
}

/** The report with its details, or a usage error asking for the token. */
async function detailedReport (url: string, token: string | undefined): Promise<HealthReport> {
  const report = await healthReport(url, token)
  if (report.workers === undefined) throw new TQ_ERR_CLI_USAGE(`${url}/health shows only its status (${report.status}): pass --token`)
  return report
}

/** A coded error as it is; any other (a refused connection, a body that is not JSON) says the server does not answer. */
function notAnswering (root: string, server: string, err: Error & { code?: string }, what = 'does not answer'): Error {
  if (err.code?.startsWith('TQ_ERR_')) return err
  // A server that runs and serves no certificate (ACME's first one pending) fails the handshake.
  const cause = (err as { cause?: { code?: string } }).cause
  if (server.includes('https://') && cause?.code?.endsWith('HANDSHAKE_FAILURE')) return new TQ_ERR_CLI_NO_CERTIFICATE(server)
  return new TQ_ERR_CLI_NOT_RUNNING(root, `${server} ${what}: ${err.message}`)
}

/** Prints the running server's /health as a table (or JSON); exits 1 when it is unhealthy. */
export async function status (root: string, options: ControlOptions & { json?: boolean | undefined }): Promise<void> {
  const { url } = await chooseServer(root, options)
  const token = options.token ?? process.env.TQ_HEALTH_TOKEN
  const report = await detailedReport(url, token).catch((err: Error) => { throw notAnswering(root, url, err) })
  process.stdout.write(options.json ? `${JSON.stringify(report, null, 2)}\n` : formatStatus(report, url))
  if (report.status === 'unhealthy') process.exitCode = 1
}

/** Makes the server reload; with `wait`, follows /health until the reload is done. */
export async function reload (root: string, options: ControlOptions & { wait: boolean, timeoutMs: number }): Promise<void> {
  const server = await chooseServer(root, options)
  const token = options.token ?? process.env.TQ_HEALTH_TOKEN
  let since: number
  try {
    await healthReport(server.url, token)
    since = await askToReload(server, token)
  } catch (err) {
    throw notAnswering(root, `${server.pid === undefined ? '' : `pid ${server.pid} at `}${server.url}`, err as Error)
  }
  if (!options.wait) {
    process.stdout.write(server.pid === undefined ? `asked tqserver at ${server.url} to reload\n` : `signalled tqserver (pid ${server.pid}) to reload\n`)
    return
  }
  const deadline = Date.now() + options.timeoutMs
  while (Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, RELOAD_POLL_MS))
    const report = await detailedReport(server.url, token).catch((err: Error) => { throw notAnswering(root, server.url, err, 'stopped answering during the reload') })
    const summary = report.lastReload
    if (!summary || summary.at < since) continue
    // A refused configuration switched nothing: only the reason is worth a line.
    if (summary.error) throw new TQ_ERR_CLI_RELOAD_FAILED(summary.error)
    const list = (label: string, names: string[]) => names.length > 0 ? [`${label} ${names.join(', ')}`] : []
    process.stdout.write(`reloaded in ${summary.durationMs} ms: ${[
      ...list('switched', summary.switched), ...list('started', summary.started), ...list('stopped', summary.stopped),
      ...list('unchanged', summary.unchanged)
    ].join('; ') || 'nothing to do'}\n`)
    if (summary.needsRestart.length > 0) process.stdout.write(`changed settings that need a restart: ${summary.needsRestart.join(', ')}\n`)
    const problems = [
      ...summary.failed.map((failure) => `${failure.worker}: ${failure.reason}`),
      ...Object.entries(report.workers).filter(([, worker]) => worker.status === 'unhealthy').map(([name]) => `${name} has no healthy instance`)
    ]
    if (problems.length > 0) throw new TQ_ERR_CLI_RELOAD_FAILED(problems.join('; '))
    return
  }
  throw new TQ_ERR_CLI_RELOAD_TIMEOUT(options.timeoutMs)
}

/**
 * Starts the reload; resolves with the time from which a reload serves this command. Only a
 * reload begun after the request does: one already running read the files before this command
 * was run, and the server runs one more after it. A server elsewhere says the time on its own clock.
 */
async function askToReload (server: ChosenServer, token: string | undefined): Promise<number> {
  if (server.pid !== undefined) {
    // SIGHUP, as systemd's ExecReload sends: no token needed, and it works with any tqserver version.
    const since = Date.now()
    process.kill(server.pid, 'SIGHUP')
    return since
  }
  const res = await request(`${server.url}${RELOAD_PATH}`, { method: 'POST', headers: authorization(token) })
  const body = await res.json().catch(() => ({})) as { at?: number, message?: string }
  if (res.status === 202 && typeof body.at === 'number') return body.at
  if (res.status === 403) throw new TQ_ERR_CLI_USAGE(`${server.url} takes a reload only from its own machine or with its health.token: pass --token`)
  if (res.status === 404) throw new TQ_ERR_CLI_RELOAD_FAILED(`${server.url} has no ${RELOAD_PATH} (an older tqserver, or an app that embeds it without reloadOnSignal)`)
  throw new TQ_ERR_CLI_RELOAD_FAILED(`${server.url}${RELOAD_PATH} answered ${res.status}${body.message ? `: ${body.message}` : ''}`)
}
