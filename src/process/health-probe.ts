// GET /health against one worker process: how the host tells that a worker serves, at start-up
// (worker-process.ts) and afterwards (supervision/health-checker.ts).
import { request } from 'node:http'

export const HEALTH_PATH = '/health'

export interface ProbeResult {
  ok: boolean
  /** HTTP status, when the worker answered. */
  status?: number
  /** Why the probe failed, when it did. */
  error?: string
}

/**
 * One GET /health on its own connection (agent: false), so a probe never holds a keep-alive
 * socket that would delay the worker's exit.
 */
export function probeHealth (port: number, host: string, timeoutMs: number): Promise<ProbeResult> {
  return new Promise((resolve) => {
    let answered = false
    const req = request({ host, port, path: HEALTH_PATH, agent: false, timeout: timeoutMs }, (res) => {
      answered = true
      // The body is not read; a body cut off by the timeout below is no error of ours.
      res.on('error', () => {}).resume()
      const status = res.statusCode ?? 0
      resolve(status === 200 ? { ok: true, status } : { ok: false, status, error: `GET ${HEALTH_PATH} answered ${status}` })
    })
    // Timers run before I/O in each turn of the event loop: after a stall of the host's own loop,
    // an answer already received would lose to the timeout. Deciding in the check phase, after
    // the poll phase has read it, keeps "no answer" meaning that the worker gave none.
    req.once('timeout', () => setImmediate(() => req.destroy(answered ? undefined : new Error(`no answer within ${timeoutMs} ms`))))
    req.once('error', (err: NodeJS.ErrnoException) => resolve({ ok: false, error: err.code ?? err.message }))
    req.end()
  })
}
