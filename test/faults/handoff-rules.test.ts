// A handed-off connection keeps the rules the host applies on the default path (issue 13, item 5).
// One table of cases runs against two `tqserver start` servers at once, one without hand-off and
// one with it. Each case opens a keep-alive connection from an address of this machine that is not
// loopback (a remote client, as far as the host can tell), sends a first request (with hand-off,
// that hands the connection to the worker), then the request under test: a body over bodyLimit,
// a path that climbs out of its route, /health and /metrics, forwarding headers (also for another
// route), slow clients, a WebSocket upgrade, a relay line sent by a client. Both servers must
// answer each the same way. Where the host cannot keep a rule on a handed-off connection (a worker
// recycled after maxRequests, the access log), it does not hand the connection off.
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { networkInterfaces } from 'node:os'
import { WebSocket } from 'ws'
import { runCliToEnd, startCliServer, type CliProcess } from '../helpers/cli.js'
import { clientFor } from '../helpers/host.js'
import { PORTS } from '../helpers/ports.js'
import { useProject } from '../helpers/project.js'
import { openRaw, rawRequest, type RawConnection } from '../helpers/raw-http.js'
import { defer } from '../helpers/cleanup.js'
import { within } from '../helpers/wait.js'

const BODY_LIMIT = 100
const HEADERS_TIMEOUT_MS = 1500
const REQUEST_TIMEOUT_MS = 3000
/** How often Node looks for clients past those timeouts, on the host's server and on a worker's. */
const SLOW_CLIENT_CHECK_MS = 1000
/** In the slow cases time itself is under test: the client sends a byte this often. */
const TRICKLE_MS = 300

/** An address of this machine that is not loopback: a client there is remote to the host. */
const REMOTE = Object.values(networkInterfaces()).flat().find((entry) => entry?.family === 'IPv4' && !entry.internal)?.address

interface Server {
  path: 'default path' | 'hand-off'
  cli: CliProcess
  /** The server as the remote client reaches it. */
  url: string
  /** The server from loopback, which sees /health details. */
  local: string
}

interface Case {
  name: string
  /** Runs the case on one server and checks its answers; what it returns must be the same on both. */
  check: (t: TestContext, server: Server) => Promise<unknown>
}

const head = (method: string, path: string, headers: string[] = []) =>
  `${method} ${path} HTTP/1.1\r\nHost: tq.test\r\n${headers.map((line) => `${line}\r\n`).join('')}\r\n`

/** A keep-alive connection from the remote client, its first request (`first`) answered. */
async function keepAlive (t: TestContext, server: Server, first = '/app/first'): Promise<RawConnection> {
  const connection = await openRaw(t, server.url)
  connection.send(head('GET', first))
  const answer = await connection.response(10_000, `${server.path}: the answer to GET ${first}`)
  assert.equal(answer.status, 200, `${server.path}: GET ${first}`)
  return connection
}

/** The connection is still open after an answer from the host, and still served. */
async function checkStillServes (connection: RawConnection, server: Server): Promise<void> {
  connection.send(head('GET', '/app/after'))
  const answer = await connection.response(10_000, `${server.path}: an answer on the same connection afterwards`)
  assert.equal(answer.status, 200, server.path)
}

let markers = 0
/** The paths a worker has printed: once a new request's line is logged, every earlier one is too. */
async function seenBy (t: TestContext, server: Server, worker: 'app'): Promise<string[]> {
  const marker = `/marker-${++markers}`
  const logged = server.cli.logs.waitFor((line) => line.worker === worker && line.msg === `saw ${marker}`, 10_000, `${worker} to see ${marker}`)
  assert.equal((await rawRequest(t, server.url, 'GET', `/${worker}${marker}`)).status, 200)
  await logged
  return server.cli.logs.lines.filter((line) => line.worker === worker && String(line.msg).startsWith('saw ')).map((line) => String(line.msg).slice(4))
}

/**
 * Sends `start` a byte at a time, then more bytes that never end the request, until the server
 * closes the connection; checks it did so after `timeoutMs` (and Node's next check), counted from
 * now, with no answer but a 408.
 */
async function checkCutOff (server: Server, connection: RawConnection, start: string, timeoutMs: number, what: string): Promise<void> {
  const before = connection.received.length
  const startedAt = Date.now()
  const deadline = startedAt + timeoutMs + SLOW_CLIENT_CHECK_MS + 3000
  for (let sent = 0; !connection.isClosed && Date.now() < deadline; sent++) {
    connection.send(start[sent] ?? 'a')
    await new Promise((resolve) => setTimeout(resolve, TRICKLE_MS))
  }
  assert.ok(connection.isClosed, `${server.path}: ${what} still open ${Date.now() - startedAt} ms after its first byte`)
  const closedAfter = await connection.closed - startedAt
  assert.ok(closedAfter >= timeoutMs - 100, `${server.path}: ${what} cut off after ${closedAfter} ms, before the timeout`)
  assert.ok(closedAfter <= timeoutMs + SLOW_CLIENT_CHECK_MS + 1000, `${server.path}: ${what} cut off only after ${closedAfter} ms`)
  assert.match(connection.received.slice(before), /^(HTTP\/1\.1 408 [^]*)?$/, `${server.path}: ${what} got no answer but a 408`)
}

const CASES: Case[] = [
  {
    name: 'a body over bodyLimit with Content-Length gets the host\'s 413, and the worker never sees it',
    async check (t, server) {
      const connection = await keepAlive(t, server)
      connection.send(head('POST', '/app/declared', ['Content-Type: text/plain', `Content-Length: ${BODY_LIMIT + 62}`]) + 'x'.repeat(BODY_LIMIT + 62))
      const answer = await connection.response(10_000, `${server.path}: the answer to a body over the limit`)
      assert.equal(answer.status, 413, `${server.path}: ${answer.body}`)
      const body = JSON.parse(answer.body) as { code: string }
      assert.equal(body.code, 'TQ_ERR_PROXY_BODY_TOO_LARGE')
      assert.ok(!(await seenBy(t, server, 'app')).includes('/declared'), `${server.path}: the worker saw the request`)
      return body
    }
  },
  {
    name: 'a chunked body over bodyLimit gets the host\'s 413, and the worker\'s handler never sees it',
    async check (t, server) {
      const connection = await keepAlive(t, server)
      const size = BODY_LIMIT + 62
      connection.send(head('POST', '/app/chunked', ['Content-Type: text/plain', 'Transfer-Encoding: chunked']) + `${size.toString(16)}\r\n${'x'.repeat(size)}\r\n0\r\n\r\n`)
      const answer = await connection.response(10_000, `${server.path}: the answer to a chunked body over the limit`)
      assert.equal(answer.status, 413, `${server.path}: ${answer.body}`)
      const body = JSON.parse(answer.body) as { code: string }
      assert.equal(body.code, 'TQ_ERR_PROXY_BODY_TOO_LARGE')
      assert.ok(!(await seenBy(t, server, 'app')).includes('/chunked'), `${server.path}: the worker's handler saw the request`)
      return body
    }
  },
  {
    name: 'a path that climbs out of its route gets the host\'s 400, and never reaches the worker',
    async check (t, server) {
      const connection = await keepAlive(t, server)
      connection.send(head('GET', '/app/../../x'))
      const answer = await connection.response(10_000, `${server.path}: the answer to GET /app/../../x`)
      assert.equal(answer.status, 400, `${server.path}: ${answer.body}`)
      const body = JSON.parse(answer.body) as { code: string }
      assert.equal(body.code, 'TQ_ERR_PROXY_BAD_PATH')
      await checkStillServes(connection, server)
      assert.deepEqual((await seenBy(t, server, 'app')).filter((path) => path.includes('..')), [])
      return body
    }
  },
  {
    name: '/health shows a remote client the status only',
    async check (t, server) {
      const connection = await keepAlive(t, server)
      connection.send(head('GET', '/health', ['Accept: application/json']))
      const answer = await connection.response(10_000, `${server.path}: the answer to GET /health`)
      assert.equal(answer.status, 200)
      const keys = Object.keys(JSON.parse(answer.body) as object)
      assert.deepEqual(keys, ['status'], `${server.path}: a remote client was shown ${answer.body.slice(0, 200)}`)
      await checkStillServes(connection, server)
      return keys
    }
  },
  {
    name: '/metrics is refused to a remote client, also on a connection the root worker serves',
    async check (t, server) {
      const statuses: number[] = []
      for (const first of ['/app/first', '/first']) {
        const connection = await keepAlive(t, server, first)
        connection.send(head('GET', '/metrics'))
        const answer = await connection.response(10_000, `${server.path}: the answer to GET /metrics after GET ${first}`)
        assert.equal(answer.status, 403, `${server.path}, after GET ${first}: ${answer.body.slice(0, 200)}`)
        statuses.push(answer.status)
      }
      return statuses
    }
  },
  {
    name: 'forwarding headers are the host\'s, for the route and for another route on the same connection',
    async check (t, server) {
      const connection = await keepAlive(t, server)
      const sent = ['X-Forwarded-For: 203.0.113.7', 'X-Forwarded-Host: evil.test', 'X-Forwarded-Proto: https', 'X-Forwarded-Prefix: /evil', 'X-Real-IP: 203.0.113.8', 'Forwarded: for=203.0.113.9']
      const seen: Record<string, Record<string, unknown>> = {}
      for (const [path, route] of [['/app/whoami', '/app'], ['/other/whoami', '/other']] as const) {
        connection.send(head('GET', path, sent))
        const answer = await connection.response(10_000, `${server.path}: the answer to GET ${path}`)
        assert.equal(answer.status, 200)
        const { worker, headers } = JSON.parse(answer.body) as { worker: string, headers: Record<string, string> }
        const forwarding = Object.fromEntries(Object.entries(headers).filter(([name]) => /^(x-forwarded-|x-real-ip$|forwarded$)/.test(name)))
        assert.equal(forwarding['x-forwarded-prefix'], route, `${server.path}: ${path}`)
        assert.match(forwarding['x-forwarded-for'] ?? '', new RegExp(`(^|, )${REMOTE!.replaceAll('.', '\\.')}$`), `${server.path}: ${path} names the client last`)
        seen[path] = { worker, ...forwarding }
      }
      await checkStillServes(connection, server)
      return seen
    }
  },
  {
    name: 'a WebSocket upgrade takes the host\'s proxy, with the prefix removed',
    async check (t, server) {
      const socket = new WebSocket(`${server.url.replace('http', 'ws')}/app/ws`)
      defer(t, () => socket.terminate())
      const [greeting] = await within(10_000, `${server.path}: a WebSocket greeting`, once(socket, 'message')) as [Buffer]
      const { worker, url, headers } = JSON.parse(greeting.toString()) as { worker: string, url: string, headers: Record<string, string> }
      assert.deepEqual([worker, url, headers['x-forwarded-prefix']], ['app', '/ws', '/app'], server.path)
      return [worker, url, headers['x-forwarded-prefix']]
    }
  },
  {
    name: 'a relay line sent by a client is a bad request, not a way to pass for loopback',
    async check (t, server) {
      const connection = await openRaw(t, server.url)
      connection.send(`TQ-RELAY ${randomBytes(24).toString('base64url')} 127.0.0.1 1\r\n${head('GET', '/health', ['Accept: application/json'])}`)
      const answer = await connection.response(10_000, `${server.path}: the answer to a relay line`)
      assert.equal(answer.status, 400, `${server.path}: ${answer.body.slice(0, 200)}`)
      return answer.status
    }
  },
  {
    name: 'a later request line trickled a byte at a time is cut off after headersTimeout',
    async check (t, server) {
      await checkCutOff(server, await keepAlive(t, server), 'GET /app/', HEADERS_TIMEOUT_MS, 'the trickled request line')
    }
  },
  {
    name: 'a first request whose headers are trickled is cut off after headersTimeout',
    async check (t, server) {
      const connection = await openRaw(t, server.url)
      connection.send('GET /app/slow-headers HTTP/1.1\r\n')
      await checkCutOff(server, connection, 'Host: tq.test\r\nX-Slow: ', HEADERS_TIMEOUT_MS, 'the trickled headers')
    }
  },
  {
    name: 'a later request whose body is trickled is cut off after requestTimeout',
    async check (t, server) {
      const connection = await keepAlive(t, server)
      // The head at once, so that only requestTimeout can end it.
      connection.send(head('POST', '/app/slow-body', ['Content-Type: text/plain', `Content-Length: ${BODY_LIMIT - 1}`]))
      await checkCutOff(server, connection, '', REQUEST_TIMEOUT_MS, 'the trickled body')
    }
  }
]

async function startServer (t: TestContext, handoff: boolean, workerPorts: string, settings: string[] = []): Promise<Server> {
  const root = await useProject(t, 'handoff-rules', {
    'config/server.yaml': [
      `handoff: ${handoff}`,
      `bodyLimit: ${BODY_LIMIT}`,
      `headersTimeout: ${HEADERS_TIMEOUT_MS}`,
      `requestTimeout: ${REQUEST_TIMEOUT_MS}`,
      ...settings,
      ''
    ].join('\n')
  }, ['ws'])
  assert.equal((await runCliToEnd(t, ['build'], { cwd: root })).code, 0)
  // Every interface, so that the client can come from an address that is not loopback.
  const cli = await startCliServer(t, 'start', root, workerPorts, ['--host', '0.0.0.0'])
  const { port } = new URL(cli.url)
  return { path: handoff ? 'hand-off' : 'default path', cli, url: `http://${REMOTE}:${port}`, local: `http://127.0.0.1:${port}` }
}

/** Requests the host proxied to a worker's instance: none on a handed-off connection. */
async function proxiedBy (t: TestContext, server: Server, worker: string): Promise<number> {
  const health = await (await clientFor(t, server.local)('/health')).body.json() as { workers: Record<string, { instances: Array<{ requests: number }> }> }
  return health.workers[worker]!.instances[0]!.requests
}

// Each server on its own part of this file's worker ports (three workers each).
const [FROM, TO] = PORTS.handoffRules.split('-').map(Number) as [number, number]

test('a handed-off connection keeps the host\'s rules', { skip: REMOTE === undefined && 'this machine has no address but loopback' }, async (t) => {
  const servers = await Promise.all([startServer(t, false, `${FROM}-${FROM + 6}`), startServer(t, true, `${FROM + 7}-${FROM + 13}`)])

  await t.test('the first request on a connection is proxied on the default path, handed off with hand-off', async () => {
    for (const server of servers) {
      await keepAlive(t, server)
      const proxied = await proxiedBy(t, server, 'app')
      assert.equal(proxied > 0, server.path === 'default path', `${server.path}: ${proxied} requests proxied`)
    }
  })

  await t.test('a worker recycled after maxRequests is not handed off: the host counts each request', async () => {
    for (const server of servers) {
      await keepAlive(t, server, '/other/first')
      assert.ok(await proxiedBy(t, server, 'other') > 0, `${server.path}: the request was not counted`)
    }
  })

  for (const { name, check } of CASES) {
    await t.test(name, async (t) => {
      const [plain, handedOff] = await Promise.all(servers.map((server) => check(t, server)))
      assert.deepEqual(handedOff, plain, 'the same on both paths')
    })
  }
})

test('with the access log on, no connection is handed off: every request is logged', { skip: REMOTE === undefined && 'this machine has no address but loopback' }, async (t) => {
  const server = await startServer(t, true, `${FROM + 14}-${TO}`, ['accessLog: true'])
  const connection = await keepAlive(t, server)
  connection.send(head('GET', '/app/second'))
  assert.equal((await connection.response(10_000, 'the second answer')).status, 200)
  // Logged once the answer is written, which the client may see first.
  await server.cli.logs.waitFor((line) => line.msg === 'request' && line.url === '/app/second', 10_000, 'the second request to be logged')
  const logged = server.cli.logs.lines.filter((line) => line.msg === 'request' && line.worker === 'app').map((line) => line.url)
  assert.deepEqual(logged, ['/app/first', '/app/second'])
  assert.equal(server.cli.logs.count((line) => String(line.msg).startsWith('no connection is handed off')), 1)
})
