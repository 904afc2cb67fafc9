// HTTP at the edge (issue 13), against `tqserver start` with curl and hand-written requests, as an
// outside tester found it: `Expect: 100-continue` (curl's large uploads) is answered by the host
// and not forwarded, an Upgrade the host does not take (h2c) is ignored and the request served
// with its body, hop-by-hop headers stop at the host both ways, `OPTIONS *` and absolute-form
// targets are the host's business, a client's own forwarding headers are replaced, the health
// token's scheme is case-insensitive and /metrics takes it from the header only. None of it may
// make an instance suspect. Every case runs on the default path and on the hand-off path
// (`handoff: true`), where the request under test is a later request on a connection whose first
// request the host handed off to the SDK worker: the answers must be the same. The h2c, `OPTIONS *`
// and absolute-form cases run inside an embedding Fastify app too.
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { createHash } from 'node:crypto'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { startCliServer } from '../helpers/cli.js'
import { startHost } from '../helpers/host.js'
import { PORTS } from '../helpers/ports.js'
import { useProject } from '../helpers/project.js'
import type { LogRecorder } from '../helpers/logs.js'
import { openRaw, rawRequest, type RawConnection, type RawResponse } from '../helpers/raw-http.js'

/** What the echo worker (test/fixtures/edge-http/shared/echo.ts) saw of a request. */
interface Echo {
  worker: string
  method: string
  url: string
  ip: string
  protocol: string
  host: string
  headers: Record<string, string | undefined>
  bodyBytes: number
  bodySha256: string | null
  /** The local port of the connection it came on: the host's public port when handed off. */
  servedOn: number
}

const TWO_MB = 2 * 1024 * 1024
/** Above the api worker's bodyLimit (its worker.yaml). */
const OVER_API_LIMIT = 4_000_000
const SETTINGS = 'logLevel: debug\nhealth:\n  token: s3cret\n'
/** The first request on each connection of the hand-off runs, which the host hands to the api worker. */
const FIRST = 'GET /api/first HTTP/1.1\r\nHost: tq.test\r\n\r\n'
/** Worker ports of the hand-off run: the first half of edgeHandoff (edge-forwarded has the second). */
const [HANDOFF_FROM] = PORTS.edgeHandoff.split('-').map(Number) as [number]
const HANDOFF_PORTS = `${HANDOFF_FROM}-${HANDOFF_FROM + 14}`

const execFileAsync = promisify(execFile)

/** One `tqserver start` of the edge-http fixture, on the default path or with hand-off. */
interface EdgeServer {
  path: 'default path' | 'hand-off'
  url: string
  port: number
  root: string
  logs: LogRecorder
}

/** On the hand-off path, checks that the worker's answer came over the client's own connection. */
function assertHandedOff (server: EdgeServer, body: string, what: string): void {
  const seen = JSON.parse(body) as Echo
  assert.equal(seen.servedOn, server.port, `${what} was not handed off: the worker got it on port ${seen.servedOn}`)
}

/** A connection to the server; on the hand-off path its first request has been handed off. */
async function connect (t: TestContext, server: EdgeServer): Promise<RawConnection> {
  const connection = await openRaw(t, server.url)
  if (server.path === 'default path') return connection
  connection.send(FIRST)
  const first = await connection.response(10_000, 'the answer to the first request')
  assert.equal(first.status, 200, first.body)
  assertHandedOff(server, first.body, 'GET /api/first')
  return connection
}

/** Sends one request with `Connection: close` added (a later one with hand-off), and resolves with its answer. */
async function request (t: TestContext, server: EdgeServer, method: string, path: string, headers: string[] = []): Promise<RawResponse> {
  if (server.path === 'default path') return await rawRequest(t, server.url, method, path, headers)
  const connection = await connect(t, server)
  connection.send(`${method} ${path} HTTP/1.1\r\nHost: tq.test\r\n${[...headers, 'Connection: close'].map((line) => `${line}\r\n`).join('')}\r\n`)
  return await connection.response(10_000, `${server.path}: an answer to ${method} ${path}`, method === 'HEAD')
}

/**
 * curl as a user runs it (verbose: stderr shows what it sent); the answer's status and body. With
 * hand-off, curl first sends GET /api/first on the same connection (`--next` keeps it).
 */
async function curl (args: string[], server?: EdgeServer): Promise<{ status: number, body: string, trace: string }> {
  const firstFile = server && join(server.root, 'first.json')
  const first = server?.path === 'hand-off' ? ['--max-time', '30', '--output', firstFile!, `${server.url}/api/first`, '--next'] : []
  const { stdout, stderr } = await execFileAsync('curl', ['--silent', '--show-error', '--verbose', ...first, '--max-time', '30', '--write-out', '\n%{http_code}', ...args], { maxBuffer: 16 * 1024 * 1024 })
  if (first.length > 0) {
    assert.match(stderr, /Re-using existing connection/, 'curl opened a second connection')
    assertHandedOff(server!, await readFile(firstFile!, 'utf8'), "curl's GET /api/first")
  }
  const at = stdout.lastIndexOf('\n')
  return { status: Number(stdout.slice(at + 1)), body: stdout.slice(0, at), trace: stderr }
}

function sha256 (data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex')
}

async function startEdgeServer (t: TestContext, handoff: boolean): Promise<EdgeServer> {
  // The access log would turn hand-off off: the default path logs each request, the hand-off run none.
  const root = await useProject(t, 'edge-http', { 'config/server.yaml': handoff ? `handoff: true\n${SETTINGS}` : `accessLog: true\n${SETTINGS}` }, ['ws'])
  const { url, logs } = await startCliServer(t, 'start', root, handoff ? HANDOFF_PORTS : PORTS.edgeHttp)
  return { path: handoff ? 'hand-off' : 'default path', url, port: Number(new URL(url).port), root, logs }
}

for (const handoff of [false, true]) {
  test(`HTTP at the edge, through tqserver start (${handoff ? 'hand-off' : 'default path'})`, async (t) => {
    const server = await startEdgeServer(t, handoff)
    const { url, logs } = server
    const upload = Buffer.alloc(TWO_MB, 'tq')
    const file = join(server.root, 'upload.bin')
    await writeFile(file, upload)

    await t.test('curl uploads of 2 MB, sent with Expect: 100-continue, reach the worker whole', async () => {
      for (const args of [['--data-binary', `@${file}`, `${url}/api/upload`], ['-T', file, `${url}/api/put`]]) {
        const answer = await curl(args, server)
        assert.match(answer.trace, /^> Expect: 100-continue/mi, `curl ${args[0]} sent no Expect header`)
        assert.equal(answer.status, 200, `curl ${args[0]}: ${answer.body}`)
        const seen = JSON.parse(answer.body) as Echo
        assert.deepEqual([seen.bodyBytes, seen.bodySha256], [TWO_MB, sha256(upload)])
        assert.equal(seen.headers.expect, undefined, 'Expect reached the worker')
      }
    })

    await t.test('Expect: 100-continue gets 100 once the body is wanted; a refused request gets its answer instead; other expectations 417', async () => {
      // With hand-off, the index worker's request goes back to the host, which asks for the body.
      for (const [path, worker] of [['/api/continue', 'api'], ['/continue', 'index']]) {
        const client = await connect(t, server)
        client.send(`POST ${path} HTTP/1.1\r\nHost: tq.test\r\nContent-Type: text/plain\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n`)
        assert.equal((await client.response(10_000, `100 Continue for ${path}`)).status, 100)
        client.send('hello')
        const answer = await client.response(10_000, `the answer after the body of ${path}`)
        assert.equal(answer.status, 200, answer.body)
        assert.deepEqual([(JSON.parse(answer.body) as Echo).worker, (JSON.parse(answer.body) as Echo).bodyBytes], [worker, 5])
      }

      // Over the worker's bodyLimit: 413 at once, the 2 MB never asked for, and the connection
      // closed (the client may send its body now or never).
      const refused = await connect(t, server)
      const before = refused.received.length
      refused.send(`POST /api/too-big HTTP/1.1\r\nHost: tq.test\r\nContent-Length: ${OVER_API_LIMIT}\r\nExpect: 100-continue\r\n\r\n`)
      const tooLarge = await refused.response(10_000, 'the 413')
      assert.equal(tooLarge.status, 413)
      assert.equal(tooLarge.headers.connection, 'close')
      await refused.whenClosed(10_000)
      assert.doesNotMatch(refused.received.slice(before), /100 Continue/)

      const unknown = await request(t, server, 'POST', '/api/expect-other', ['Content-Length: 0', 'Expect: x-tq-test'])
      assert.equal(unknown.status, 417)
    })

    await t.test('an h2c upgrade offer (curl --http2) is ignored: GET and POST are served, the body intact', async () => {
      const get = await curl(['--http2', `${url}/api/h2c`], server)
      assert.match(get.trace, /^> Upgrade: h2c/mi, 'curl made no h2c offer')
      assert.equal(get.status, 200, get.body)
      const seen = JSON.parse(get.body) as Echo
      assert.equal(seen.url, '/h2c')
      for (const name of ['upgrade', 'http2-settings']) assert.equal(seen.headers[name], undefined, `${name} reached the worker`)

      const post = await curl(['--http2', '--data-binary', 'title=h2c', `${url}/api/h2c-post`], server)
      assert.equal(post.status, 200, post.body)
      assert.deepEqual([(JSON.parse(post.body) as Echo).bodyBytes, (JSON.parse(post.body) as Echo).bodySha256], [9, sha256('title=h2c')])
    })

    // With hand-off a chunked body goes back to the host (bodyLimit), one of declared length is
    // served by the worker itself: both are sent.
    await t.test('any other Upgrade offer on a POST keeps its body, chunked or not, and the connection serves on', async () => {
      for (const framing of ['Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n', 'Content-Length: 11\r\n\r\nhello world']) {
        const client = await connect(t, server)
        client.send(`POST /api/offer HTTP/1.1\r\nHost: tq.test\r\nConnection: Upgrade\r\nUpgrade: example/1\r\nContent-Type: text/plain\r\n${framing}`)
        const first = await client.response(10_000, 'the answer to the declined offer')
        assert.equal(first.status, 200, first.body)
        const seen = JSON.parse(first.body) as Echo
        assert.deepEqual([seen.url, seen.bodyBytes, seen.bodySha256, seen.headers.upgrade], ['/offer', 11, sha256('hello world'), undefined])
        client.send('GET /api/after-offer HTTP/1.1\r\nHost: tq.test\r\n\r\n')
        const second = await client.response(10_000, 'a second answer on the same connection')
        assert.equal((JSON.parse(second.body) as Echo).url, '/after-offer')
      }
    })

    await t.test('hop-by-hop headers, proxy credentials and Expect stop at the host, both ways', async () => {
      for (const framing of [['Transfer-Encoding: chunked', '', '5\r\nhello\r\n0\r\n\r\n'], ['Content-Length: 5', '', 'hello']]) {
        const client = await connect(t, server)
        client.send([
          'POST /api/hop HTTP/1.1', 'Host: tq.test', 'Connection: keep-alive, X-Named', 'X-Named: secret', 'Keep-Alive: timeout=5',
          'TE: trailers', 'Trailer: X-Sum', 'Upgrade: example/1', 'Proxy-Connection: keep-alive', 'Proxy-Authorization: Basic c2VjcmV0',
          'HTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA', 'X-End-To-End: kept', 'Content-Type: text/plain', ...framing
        ].join('\r\n'))
        const answer = await client.response(10_000, 'the answer')
        assert.equal(answer.status, 200, answer.body)
        const seen = JSON.parse(answer.body) as Echo
        for (const name of ['x-named', 'keep-alive', 'te', 'trailer', 'upgrade', 'proxy-connection', 'proxy-authorization', 'http2-settings']) {
          assert.equal(seen.headers[name], undefined, `${framing[0]}: ${name} reached the worker`)
        }
        assert.deepEqual([seen.headers['x-end-to-end'], seen.bodyBytes], ['kept', 5])
      }

      // HTTP/1.0 has no 100 Continue: Node leaves Expect alone, and the host must still not pass it on.
      const old = await connect(t, server)
      old.send('POST /api/expect-1.0 HTTP/1.0\r\nHost: tq.test\r\nContent-Type: text/plain\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\nhello')
      const oldAnswer = await old.response(10_000, 'the HTTP/1.0 answer')
      assert.equal(oldAnswer.status, 200, oldAnswer.body)
      assert.deepEqual([(JSON.parse(oldAnswer.body) as Echo).bodyBytes, (JSON.parse(oldAnswer.body) as Echo).headers.expect], [5, undefined])

      const challenge = await request(t, server, 'GET', '/api/proxy-auth')
      assert.equal(challenge.status, 401)
      assert.equal(challenge.headers['proxy-authenticate'], undefined, "the worker's Proxy-Authenticate reached the client")
    })

    await t.test('OPTIONS * is answered by the host; other targets without a path are refused', async () => {
      const options = await request(t, server, 'OPTIONS', '*')
      assert.equal(options.status, 200)
      assert.match(options.headers.allow ?? '', /\bGET\b.*\bPOST\b/)
      assert.equal(options.headers['content-length'], '0')
      assert.equal((await request(t, server, 'GET', '*')).status, 400)
    })

    await t.test('an absolute-form target, in any case, is routed by its path and its host', async () => {
      const upper = await request(t, server, 'GET', 'HTTP://EDGE.TEST/api/absolute?q=1')
      assert.equal(upper.status, 200, upper.body)
      const seen = JSON.parse(upper.body) as Echo
      assert.deepEqual([seen.worker, seen.url, seen.headers['x-forwarded-host']], ['api', '/absolute?q=1', 'EDGE.TEST'])
      const root = JSON.parse((await request(t, server, 'GET', 'http://edge.test')).body) as Echo
      assert.deepEqual([root.worker, root.url], ['index', '/'])
      const health = await request(t, server, 'GET', 'HTTP://EDGE.TEST/health')
      assert.equal(typeof (JSON.parse(health.body) as { status?: string }).status, 'string', "the host's own /health answers")
    })

    await t.test("a client's X-Forwarded-*, X-Real-IP and Forwarded are replaced, other client-IP headers dropped, and an SDK worker's req.ip is the client", async () => {
      const claims = ['X-Client-IP', 'True-Client-IP', 'CF-Connecting-IP', 'Fastly-Client-IP', 'X-Cluster-Client-IP']
      const answer = await request(t, server, 'GET', '/api/who', [
        'X-Forwarded-For: 6.6.6.6', 'X-Real-IP: 6.6.6.6', 'Forwarded: for=6.6.6.6;proto=https', 'X-Forwarded-Proto: https',
        'X-Forwarded-Host: evil.example', 'X-Forwarded-Prefix: /evil', ...claims.map((name) => `${name}: 6.6.6.6`)
      ])
      const seen = JSON.parse(answer.body) as Echo
      assert.deepEqual(
        [seen.headers['x-forwarded-for'], seen.headers['x-real-ip'], seen.headers.forwarded, seen.headers['x-forwarded-proto'], seen.headers['x-forwarded-host'], seen.headers['x-forwarded-prefix']],
        ['127.0.0.1', '127.0.0.1', 'for=127.0.0.1;host="tq.test";proto=http', 'http', 'tq.test', '/api'])
      assert.deepEqual([seen.ip, seen.protocol, seen.host], ['127.0.0.1', 'http', 'tq.test'])
      assert.deepEqual(claims.filter((name) => seen.headers[name.toLowerCase()] !== undefined), [], 'client-IP headers reached the worker')
    })

    await t.test('the health token: any case of Bearer; /metrics from the header only, /health (the dashboard) also as ?token=', async () => {
      const relayed = ['X-Forwarded-For: 203.0.113.9']
      const health = await request(t, server, 'GET', '/health', [...relayed, 'Authorization: bearer s3cret', 'Accept: application/json'])
      assert.ok((JSON.parse(health.body) as { workers?: unknown }).workers, 'details refused to a lower-case bearer')
      assert.equal((await request(t, server, 'GET', '/metrics', [...relayed, 'Authorization: BEARER s3cret'])).status, 200)
      assert.equal((await request(t, server, 'GET', '/metrics?token=s3cret', relayed)).status, 403)
      const dashboard = await request(t, server, 'GET', '/health?token=s3cret&format=json', relayed)
      assert.ok((JSON.parse(dashboard.body) as { workers?: unknown }).workers, '/health refused ?token=')
    })

    await t.test('none of it made an instance suspect or counted as its error', async () => {
      // Served after everything above: on the default path its access log line comes after theirs,
      // and after any "suspect" line one of them caused. The host logs that line before it answers
      // the request that failed, so with hand-off (no access log) the answers above come after it.
      await request(t, server, 'GET', '/api/last')
      if (!handoff) await logs.waitFor((line) => line.msg === 'request' && line.url === '/api/last', 10_000, 'the last request in the access log')
      assert.equal(logs.count((line) => String(line.msg).startsWith('instance suspect')), 0)
      const report = JSON.parse((await rawRequest(t, url, 'GET', '/health', ['Accept: application/json'])).body) as { workers: Record<string, { instances: Array<{ errors: number }> }> }
      for (const [name, worker] of Object.entries(report.workers)) {
        assert.deepEqual(worker.instances.map((instance) => instance.errors), worker.instances.map(() => 0), `errors of ${name}`)
      }
    })
  })
}

test('HTTP at the edge, inside an embedding Fastify app', async (t) => {
  const root = await useProject(t, 'edge-http', {}, ['ws'])
  const host = await startHost(t, { root, workerPorts: PORTS.edgeHttpEmbedded })
  const failed: string[] = []
  host.app.tqserver.upstreams.on('failed', (origin) => { failed.push(origin) })

  await t.test('an h2c offer on a POST is served with its body', async () => {
    const post = await curl(['--http2', '--data-binary', 'title=h2c', `${host.url}/api/h2c-post`])
    assert.equal(post.status, 200, post.body)
    const seen = JSON.parse(post.body) as Echo
    assert.deepEqual([seen.url, seen.bodyBytes, seen.headers.upgrade], ['/h2c-post', 9, undefined])
  })

  await t.test('OPTIONS * and an upper-case absolute-form target are answered, no worker blamed', async () => {
    const options = await rawRequest(t, host.url, 'OPTIONS', '*')
    assert.equal(options.status, 200)
    assert.match(options.headers.allow ?? '', /\bGET\b/)
    const upper = await rawRequest(t, host.url, 'GET', 'HTTP://EDGE.TEST/api/absolute')
    assert.equal(upper.status, 200, upper.body)
    assert.deepEqual([(JSON.parse(upper.body) as Echo).worker, (JSON.parse(upper.body) as Echo).url], ['api', '/absolute'])
    assert.deepEqual(failed, [])
  })
})
