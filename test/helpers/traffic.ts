// A simple keep-alive load on one path, recording every status and transport error, for the
// tests that break workers on purpose.
import { Agent } from 'undici'
import { within } from './wait.js'

export interface TrafficResult {
  statuses: Record<number, number>
  /** Transport errors (resets, hangs cut by the timeout): never acceptable. */
  errors: string[]
  pids: Set<number>
}

export interface Traffic {
  /** Resolves once `count` more answers have arrived, or an answer matching `from` does. */
  answered: (count: number, ms: number, from?: (pid: number) => boolean) => Promise<void>
  stop: () => Promise<TrafficResult>
}

export function startTraffic (url: string, path: string, clients: number): Traffic {
  const agent = new Agent({ connections: clients, headersTimeout: 10_000, bodyTimeout: 10_000 })
  const result: TrafficResult = { statuses: {}, errors: [], pids: new Set() }
  const waiters = new Set<(pid: number | undefined) => void>()
  let running = true
  const loops = Array.from({ length: clients }, async () => {
    while (running) {
      let pid: number | undefined
      try {
        const res = await agent.request({ origin: url, path, method: 'GET' })
        const body = await res.body.text()
        result.statuses[res.statusCode] = (result.statuses[res.statusCode] ?? 0) + 1
        if (res.statusCode === 200) pid = (JSON.parse(body) as { pid?: number }).pid
        if (pid) result.pids.add(pid)
      } catch (err) {
        result.errors.push(`${(err as Error & { code?: string }).code ?? ''} ${(err as Error).message}`)
      }
      for (const waiter of waiters) waiter(pid)
    }
  })
  let stopped: Promise<TrafficResult> | undefined
  return {
    answered: (count, ms, from) => within(ms, from ? 'an answer from the expected instance' : `${count} answers`, new Promise<void>((resolve) => {
      let left = count
      const waiter = (pid: number | undefined) => {
        if (from ? pid === undefined || !from(pid) : --left > 0) return
        waiters.delete(waiter)
        resolve()
      }
      waiters.add(waiter)
    })),
    stop: () => {
      running = false
      stopped ??= Promise.all(loops).then(() => agent.close()).then(() => result)
      return stopped
    }
  }
}
