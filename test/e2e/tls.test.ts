// HTTPS on the port (`tls.cert` and `tls.key`), under `tqserver start` with a data plane beside the
// control plane: HTTP/2 and HTTP/1.1 serve every worker route, public/ files and /health, with
// X-Forwarded-Proto https and no HTTP/2 pseudo-header reaching a worker; ALPN offers h2 and
// http/1.1, TLS 1.2 and 1.3 only; the plain port redirects with 308; HSTS only when configured;
// WebSockets over HTTPS/1.1 and HTTP/2; a session resumes on whichever process takes the next connection (shared
// ticket keys); slow handshakes and headers are cut off; SIGTERM drains HTTP/2; a reload under HTTP/2 load drops nothing.
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { WebSocket } from 'ws'
import { makeCertificate } from '../helpers/certificates.js'
import { runCliToEnd, startCliServer } from '../helpers/cli.js'
import { startLoad } from '../helpers/load.js'
import { PORTS } from '../helpers/ports.js'
import { parsePortRange } from '../../src/config/server-config.js'
import { useProject } from '../helpers/project.js'
import { sendRaw } from '../helpers/raw-http.js'
import { h1Request, h2FirstBytes, h2Request, h2WebSocket, handshake } from '../helpers/tls-client.js'
import { defer } from '../helpers/cleanup.js'
import { until, within } from '../helpers/wait.js'
import { connect as connectHttp2 } from 'node:http2'
import { once } from 'node:events'
import { connect as netConnect } from 'node:net'
import { connect as tlsConnect } from 'node:tls'

const CERT = 'certs/server.crt'
const KEY = 'certs/server.key'
/** The plain-HTTP port: the last of this file's range, which worker instances never reach. */
const HTTP_PORT = parsePortRange(PORTS.tls).to
const PLAIN = `http://127.0.0.1:${HTTP_PORT}`
const WORKER_PORTS = `${parsePortRange(PORTS.tls).from}-${HTTP_PORT - 1}`

async function startTls (t: TestContext, extraArgs: string[] = [], files: Record<string, string> = {}) {
  const root = await useProject(t, 'tls', files, ['ws'])
  const { cert, serial } = await makeCertificate(join(root, CERT), join(root, KEY))
  const server = await startCliServer(t, 'start', root, WORKER_PORTS, ['--tls-cert', CERT, '--tls-key', KEY, '--proxies', '2', ...extraArgs])
  await server.logs.waitFor((line) => line.msg === 'data planes serving', 30_000, 'the data plane to serve')
  return { root, server, url: server.url, port: Number(new URL(server.url).port), ca: cert, serial }
}

/** Enough new connections that both processes serving the port take some (SO_REUSEPORT spreads them). */
const CONNECTIONS = 12

test('HTTP/2 and HTTP/1.1 over TLS serve every route, public files and /health, from every process', async (t) => {
  const { server, url, ca, serial } = await startTls(t)
  assert.match(url, /^https:\/\/127\.0\.0\.1:\d+$/)
  for (const [version, send] of [['2', h2Request], ['1.1', h1Request]] as const) {
    for (let i = 0; i < CONNECTIONS; i++) {
      const app = await send(url, '/app/where?i=1', ca)
      assert.equal(app.status, 200, `HTTP/${version}: ${app.body}`)
      const seen = JSON.parse(app.body) as { url: string, proto: string, host: string, httpVersion: string, pseudo: string[] }
      assert.deepEqual({ url: seen.url, proto: seen.proto, host: seen.host, httpVersion: seen.httpVersion, pseudo: seen.pseudo },
        { url: '/where?i=1', proto: 'https', host: new URL(url).host, httpVersion: '1.1', pseudo: [] }, `HTTP/${version}`)
    }
    const posted = await send(url, '/app/echo', ca, { method: 'POST', body: 'a body over TLS' })
    assert.equal((JSON.parse(posted.body) as { body: string }).body, 'a body over TLS')
    const index = await send(url, '/', ca)
    assert.equal(index.body, 'index /\n')
    const file = await send(url, '/app/hello.txt', ca)
    assert.equal(file.body, 'hello over TLS\n')
    const health = await send(url, '/health', ca)
    assert.equal(health.status, 200)
    const report = JSON.parse(health.body) as { tls: { source: string, certificate: { serialNumber: string, names: string[], daysLeft: number }, lastError: unknown } }
    assert.equal(report.tls.source, 'files')
    assert.equal(report.tls.certificate.serialNumber, serial)
    assert.deepEqual(report.tls.certificate.names, ['localhost', '127.0.0.1'])
    assert.ok(report.tls.certificate.daysLeft >= 29)
    assert.equal(report.tls.lastError, null)
    assert.equal(health.headers['strict-transport-security'], undefined, 'no HSTS unless configured')
  }
  // The dashboard's event stream, relayed by the data plane when it takes the connection.
  for (let i = 0; i < CONNECTIONS; i++) {
    const stream = await h2FirstBytes(url, '/__tqserver/health/stream', ca)
    assert.equal(stream.status, 200)
    assert.match(stream.text, /^: tqserver\n\n/)
  }
  assert.equal(server.logs.count((line) => line.msg === 'data plane exited; starting another'), 0, 'no process serving the port died')
  const metrics = await h2Request(url, '/metrics', ca)
  const days = Number(/^tqserver_tls_certificate_expiry_days (\S+)$/m.exec(metrics.body)?.[1])
  assert.ok(days > 29 && days <= 30, `days to expiry: ${days}`)
  assert.match(metrics.body, /^tqserver_tls_certificate_error 0$/m)
})

test('ALPN offers h2 and http/1.1; TLS 1.2 and 1.3 only; a session resumes on any process', async (t) => {
  const { port, ca } = await startTls(t)
  assert.equal((await handshake(port, { ca, ALPNProtocols: ['h2', 'http/1.1'] })).alpn, 'h2')
  assert.equal((await handshake(port, { ca, ALPNProtocols: ['http/1.1'] })).alpn, 'http/1.1')
  assert.equal((await handshake(port, { ca, minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2' })).protocol, 'TLSv1.2')
  assert.equal((await handshake(port, { ca })).protocol, 'TLSv1.3')
  await assert.rejects(handshake(port, { ca, minVersion: 'TLSv1', maxVersion: 'TLSv1.1' }), /protocol version|no protocols available/i)
  // A ticket from one process resumes the session on every connection, whichever process takes it.
  for (const version of ['TLSv1.3', 'TLSv1.2'] as const) {
    const first = await handshake(port, { ca, maxVersion: version })
    assert.ok(first.session, `a ${version} session ticket`)
    for (let i = 0; i < CONNECTIONS; i++) {
      assert.ok((await handshake(port, { ca, maxVersion: version, session: first.session })).reused, `${version} connection ${i} resumed`)
    }
  }
})

test('the plain port redirects to HTTPS with 308, keeps the path, and sends HSTS only when configured; hand-off is off; on 0.0.0.0 tqserver status reaches it', async (t) => {
  // On every address (0.0.0.0), as a server facing the internet listens: the server file names 0.0.0.0.
  const { root, server, port, ca } = await startTls(t, ['--tls-http-port', String(HTTP_PORT), '--host', '0.0.0.0'], { 'config/server.yaml': 'tls:\n  hsts: 600\nhandoff: true\n' })
  const url = `https://127.0.0.1:${port}`
  assert.ok(server.logs.lines.some((line) => /^handoff is off: connections are TLS/.test(String(line.msg))), 'hand-off is turned off, with a warning')
  assert.ok(server.logs.lines.some((line) => line.msg === `Server listening at https://127.0.0.1:${port}`), "Fastify's own line names https")
  const status = await runCliToEnd(t, ['status'], { cwd: root })
  assert.equal(status.code, 0, status.stderr)
  assert.match(status.stdout, /^HTTPS certificate for localhost, 127\.0\.0\.1: (29|30) days left \(files\)$/m)
  for (const method of ['GET', 'POST']) {
    const answer = await sendRaw(t, PLAIN, [`${method} /app/x?y=1 HTTP/1.1\r\nHost: example.test\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`])
    assert.match(answer, /^HTTP\/1\.1 308 /, method)
    assert.match(answer, new RegExp(`\\r\\nlocation: https://example\\.test:${port}/app/x\\?y=1\\r\\n`, 'i'), method)
  }
  assert.match(await sendRaw(t, PLAIN, ['GET /.well-known/acme-challenge/unknown HTTP/1.1\r\nHost: example.test\r\nConnection: close\r\n\r\n']), /^HTTP\/1\.1 404 /)
  assert.match(await sendRaw(t, PLAIN, ['GET /x HTTP/1.0\r\n\r\n']), /^HTTP\/1\.1 400 /)
  for (const path of ['/app/x', '/health', '/app/hello.txt']) {
    assert.equal((await h2Request(url, path, ca)).headers['strict-transport-security'], 'max-age=600', path)
    assert.equal((await h1Request(url, path, ca)).headers['strict-transport-security'], 'max-age=600', path)
  }
})

test('WebSockets work over HTTPS through every process, with X-Forwarded-Proto https', async (t) => {
  const { url, ca } = await startTls(t)
  for (let i = 0; i < CONNECTIONS; i++) {
    const socket = new WebSocket(`${url.replace('https', 'wss')}/app/ws`, { ca })
    defer(t, () => socket.terminate())
    const messages: string[] = []
    const greeted = new Promise<void>((resolve, reject) => {
      socket.on('message', (data) => {
        messages.push(data.toString())
        if (messages.length === 1) socket.send(`hello ${i}`)
        else resolve()
      })
      socket.once('error', reject)
    })
    await greeted
    assert.equal((JSON.parse(messages[0]!) as { proto: string }).proto, 'https')
    assert.equal(messages[1], `echo hello ${i}`)
    socket.close()
  }
})

test('WebSockets work over HTTP/2 (extended CONNECT) through every process; other answers pass through', async (t) => {
  const { url, ca } = await startTls(t)
  for (let i = 0; i < CONNECTIONS; i++) {
    const socket = await h2WebSocket(url, '/app/ws', ca)
    defer(t, () => socket.close())
    assert.equal(socket.status, 200)
    const greeting = JSON.parse(await socket.next()) as { version: number, proto: string }
    assert.deepEqual(greeting, { version: 1, proto: 'https' })
    socket.send(`hello ${i}`)
    assert.equal(await socket.next(), `echo hello ${i}`)
    socket.close()
  }
  const refused = await h2WebSocket(url, '/app/not-a-socket', ca)
  defer(t, () => refused.close())
  assert.equal(refused.status, 400, "the worker's own refusal")
  await until(5_000, 'the refusal counted as 4xx', async () => /^tqserver_requests_total\{worker="app",status_class="4xx"\} 1$/m.test((await h1Request(url, '/metrics', ca)).body))
  const unrouted = await h2WebSocket(url, '/nowhere/ws', ca)
  defer(t, () => unrouted.close())
  assert.equal(unrouted.status, 502, 'a worker that answers the handshake as a plain request (200) opened no WebSocket')
  // A WebSocket counts in flight until its connection closes: a refused one, at once.
  refused.close()
  unrouted.close()
  await until(5_000, 'no WebSocket in flight', async () => /^tqserver_requests_in_flight\{worker="app"\} 0$/m.test((await h1Request(url, '/metrics', ca)).body))
})

test('over TLS, a client that never finishes its handshake or its headers is cut off (headersTimeout)', async (t) => {
  const { port, ca } = await startTls(t, [], { 'config/server.yaml': 'headersTimeout: 1000\n' })
  const silent = netConnect(port, '127.0.0.1')
  defer(t, () => silent.destroy())
  const trickle = tlsConnect({ port, host: '127.0.0.1', servername: 'localhost', ca, ALPNProtocols: ['http/1.1'] }, () => trickle.write('GET /app/x HTTP/1.1\r\nHost: localhost\r\n'))
  defer(t, () => trickle.destroy())
  let answer = ''
  trickle.on('data', (chunk: Buffer) => { answer += chunk.toString() })
  await within(10_000, 'both connections to be closed by the server', Promise.all([once(silent, 'close'), once(trickle, 'close')]))
  assert.match(answer, /^HTTP\/1\.1 408 /)
})

test('SIGTERM with an HTTP/2 request in flight answers it, closes idle HTTP/2 connections and a never-ending upload, and exits 0', async (t) => {
  const { server, url, ca } = await startTls(t)
  const idle = connectHttp2(url, { ca })
  idle.on('error', () => {})
  defer(t, () => idle.destroy())
  await once(idle, 'connect')
  const slow = h2Request(url, '/app/slow?ms=1500', ca)
  await until(5_000, 'the slow request to be in flight', async () =>
    /^tqserver_requests_in_flight\{worker="app"\} 1$/m.test((await h1Request(url, '/metrics', ca)).body))
  // An upload whose client never ends it: it must not hold the server open at shutdown.
  const uploader = connectHttp2(url, { ca })
  uploader.on('error', () => {})
  defer(t, () => uploader.destroy())
  const upload = uploader.request({ ':path': '/app/echo', ':method': 'POST' })
  upload.on('error', () => {})
  const trickle = setInterval(() => upload.write('x'), 100)
  defer(t, () => clearInterval(trickle))
  const idleClosed = once(idle, 'close')
  server.child.kill('SIGTERM')
  const answer = await slow
  assert.deepEqual([answer.status, answer.body], [200, '{"slow":true}'])
  await within(10_000, 'the idle HTTP/2 connection to be closed by the server', idleClosed)
  assert.deepEqual(await within(20_000, 'the server to exit', server.exited), { code: 0, signal: null })
})

test('a reload under HTTP/2 load drops no request', async (t) => {
  const { root, url, ca } = await startTls(t)
  const load = startLoad(url, '/app', 8, { http2: { ca } })
  defer(t, () => load.stop())
  await load.reached(1, 10_000)
  await writeFile(join(root, 'workers/app/src/version.ts'), 'export const VERSION = 2\n')
  assert.equal((await runCliToEnd(t, ['build', 'app'], { cwd: root })).code, 0)
  assert.match((await runCliToEnd(t, ['reload'], { cwd: root })).stdout, /switched app/)
  await load.reached(2, 10_000)
  const result = await load.stop()
  assert.deepEqual(result.failures, [])
  assert.ok(result.ok > 0)
})
