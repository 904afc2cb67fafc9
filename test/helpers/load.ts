// Concurrent keep-alive load against a host: GET and POST in turn, every answer checked. Used by
// the tests and by the benchmarks that count failed requests. Over HTTP/1.1 (undici), or over
// HTTP/2 with TLS: one session per client, its requests one after the other on it.
import { connect, type ClientHttp2Session } from 'node:http2'
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
export function startLoad (url: string, prefixes: string | string[], clients: number, { newConnections = false, http2 }: { newConnections?: boolean, http2?: { ca: string } } = {}): Load {
  const routes = typeof prefixes === 'string' ? [prefixes] : prefixes
  const agent = new Agent({ connections: clients, keepAliveTimeout: 30_000, connect: http2 && { ca: http2.ca } })
  const sessions: ClientHttp2Session[] = []
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
        const path = `${prefix}${post ? '/echo' : '/version'}`
        const body = post ? JSON.stringify({ client, i, pad: 'x'.repeat(512) }) : undefined
        const res = http2
          ? await h2Request(sessions[client] = sessionFor(sessions[client], url, http2.ca), path, post ? 'POST' : 'GET', body)
          : await agent.request({
            origin: url,
            path,
            method: post ? 'POST' : 'GET',
            headers: { ...post && { 'content-type': 'application/json' }, ...newConnections && { connection: 'close' } },
            body
          }).then(async (answer) => ({ statusCode: answer.statusCode, text: await answer.body.text() }))
        const { text } = res
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
      stopped ??= Promise.all(loops).then(() => {
        for (const session of sessions) session.close()
        return agent.close()
      }).then(() => result)
      return stopped
    }
  }
}

/** The client's session, or a new one once the server has closed it (GOAWAY, idle timeout). */
function sessionFor (session: ClientHttp2Session | undefined, url: string, ca: string): ClientHttp2Session {
  if (session && !session.closed && !session.destroyed) return session
  const fresh = connect(url, { ca })
  fresh.on('error', () => {}) // each request sees its own stream's error
  return fresh
}

function h2Request (session: ClientHttp2Session, path: string, method: string, body: string | undefined): Promise<{ statusCode: number, text: string }> {
  return new Promise((resolve, reject) => {
    const stream = session.request({ ':path': path, ':method': method, ...body !== undefined && { 'content-type': 'application/json' } })
    let statusCode = 0
    let text = ''
    stream.setEncoding('utf8')
    stream.on('response', (headers) => { statusCode = Number(headers[':status']) })
    stream.on('data', (chunk: string) => { text += chunk })
    stream.on('end', () => resolve({ statusCode, text }))
    stream.on('error', reject)
    stream.end(body)
  })
}
