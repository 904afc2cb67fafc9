// Concurrent keep-alive load against a host: GET and POST in turn, every answer checked. Used by
// the tests and by the benchmarks that count failed requests.
import { Agent } from 'undici'

export interface LoadResult {
  ok: number
  failures: string[]
  /** When each failure ended (epoch ms, as in log lines), in the order of `failures`. */
  failedAt: number[]
  /** The longest any request took, answered or failed (ms). */
  slowestMs: number
}

export interface Load {
  /** Highest version any answer carried so far. */
  readonly maxVersion: number
  /** Resolves once an answer carries `version` or a later one. */
  reached: (version: number, ms: number) => Promise<void>
  /** The counts so far, while the load runs (bench/leaks.ts leaves its warm-up out with it). */
  tally: () => LoadResult
  stop: () => Promise<LoadResult>
}

/**
 * Runs `clients` loops against prefix + /version (GET) and prefix + /echo (POST) until stopped;
 * with several prefixes (workers), each loop takes them in turn. `newConnections`: each request on
 * a connection of its own (Connection: close), so that every process serving the port gets some.
 */
export function startLoad (url: string, prefixes: string | string[], clients: number, { newConnections = false } = {}): Load {
  const routes = typeof prefixes === 'string' ? [prefixes] : prefixes
  const agent = new Agent({ connections: clients, keepAliveTimeout: 30_000 })
  const result: LoadResult = { ok: 0, failures: [], failedAt: [], slowestMs: 0 }
  const fail = (failure: string) => {
    result.failures.push(failure)
    result.failedAt.push(Date.now())
  }
  let running = true
  let maxVersion = -1
  const waiters = new Set<{ version: number, resolve: () => void }>()

  const see = (version: number) => {
    if (version <= maxVersion) return
    maxVersion = version
    for (const waiter of waiters) {
      if (waiter.version <= version) {
        waiters.delete(waiter)
        waiter.resolve()
      }
    }
  }

  async function loop (client: number): Promise<void> {
    for (let i = 0; running; i++) {
      const post = (i + client) % 2 === 1
      const prefix = routes[(i + client) % routes.length]!
      const started = performance.now()
      try {
        const res = await agent.request({
          origin: url,
          path: `${prefix}${post ? '/echo' : '/version'}`,
          method: post ? 'POST' : 'GET',
          headers: { ...post && { 'content-type': 'application/json' }, ...newConnections && { connection: 'close' } },
          body: post ? JSON.stringify({ client, i, pad: 'x'.repeat(512) }) : undefined
        })
        const text = await res.body.text()
        if (res.statusCode !== 200) {
          fail(`${post ? 'POST' : 'GET'} ${res.statusCode} ${text.slice(0, 200)}`)
          continue
        }
        result.ok++
        see((JSON.parse(text) as { version: number }).version)
      } catch (err) {
        fail(`${post ? 'POST' : 'GET'} ${(err as Error & { code?: string }).code ?? ''} ${(err as Error).message}`)
      } finally {
        result.slowestMs = Math.max(result.slowestMs, performance.now() - started)
      }
    }
  }

  const loops = Array.from({ length: clients }, (_, client) => loop(client))
  let stopped: Promise<LoadResult> | undefined
  return {
    get maxVersion () { return maxVersion },
    reached: (version, ms) => new Promise<void>((resolve, reject) => {
      if (maxVersion >= version) return resolve()
      const waiter = {
        version,
        resolve: () => {
          clearTimeout(timer)
          resolve()
        }
      }
      const timer = setTimeout(() => {
        waiters.delete(waiter)
        reject(new Error(`timed out after ${ms} ms: version ${version} served (last seen ${maxVersion})`))
      }, ms)
      waiters.add(waiter)
    }),
    tally: () => ({ ok: result.ok, failures: [...result.failures], failedAt: [...result.failedAt], slowestMs: result.slowestMs }),
    stop: () => {
      running = false
      stopped ??= Promise.all(loops).then(() => agent.close()).then(() => result)
      return stopped
    }
  }
}
