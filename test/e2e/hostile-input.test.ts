// Malformed and hostile HTTP against `tqserver start`: smuggling attempts and oversized headers
// are refused before any worker sees them, bodies over the limit get 413, a worker that is too
// slow gives 504, and slow clients are cut off without holding anyone else up.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { startCliServer } from '../helpers/cli.js'
import { clientFor } from '../helpers/host.js'
import { PORTS } from '../helpers/ports.js'
import { sendRaw } from '../helpers/raw-http.js'
import { useProject } from '../helpers/project.js'
import { within } from '../helpers/wait.js'

const statusLine = (response: string) => response.split('\r\n')[0]

test('hostile input', async (t) => {
  const root = await useProject(t, 'routing', {
    'config/server.yaml': 'headersTimeout: 1000\nrequestTimeout: 2000\nbodyLimit: 1000\n',
    'workers/api/worker.yaml': 'entry: ../../shared/echo.ts\nupstreamTimeout: 500\n'
  })
  const server = await startCliServer(t, 'start', root, PORTS.hostile)
  const fetch = clientFor(t, server.url)
  const served = async () => (await (await fetch('/api/__served')).body.json() as { served: number }).served

  await t.test('smuggling attempts and oversized headers never reach a worker', async () => {
    const before = await served()
    const cases: Array<[string, string]> = [
      ['POST /api/x HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n', 'HTTP/1.1 400 Bad Request'],
      ['POST /api/x HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde', 'HTTP/1.1 400 Bad Request'],
      ['POST /api/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n', 'HTTP/1.1 400 Bad Request'],
      [`GET /api/x HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`, 'HTTP/1.1 431 Request Header Fields Too Large']
    ]
    for (const [request, expected] of cases) assert.equal(statusLine(await sendRaw(t, server.url, [request])), expected, request.slice(0, 60))
    assert.equal(await served(), before, 'the worker saw none of them')
  })

  await t.test('a body over the limit gets 413, declared or chunked; one under it passes', async () => {
    const declared = await fetch('/api/upload', { method: 'POST', body: 'x'.repeat(2000) })
    assert.equal(declared.statusCode, 413)
    assert.equal((await declared.body.json() as { code: string }).code, 'TQ_ERR_PROXY_BODY_TOO_LARGE')
    const chunked = await sendRaw(t, server.url, [`POST /api/upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n7d0\r\n${'x'.repeat(2000)}\r\n0\r\n\r\n`])
    assert.equal(statusLine(chunked), 'HTTP/1.1 413 Payload Too Large')
    const small = await fetch('/api/upload', { method: 'POST', body: 'x'.repeat(500) })
    assert.equal((await small.body.json() as { bodyBytes: number }).bodyBytes, 500)
  })

  await t.test('a worker slower than upstreamTimeout gives 504', async () => {
    const slow = await fetch('/api/slow?ms=3000')
    assert.equal(slow.statusCode, 504)
    assert.equal((await slow.body.json() as { code: string }).code, 'TQ_ERR_PROXY_TIMEOUT')
  })

  await t.test('slow clients are cut off, and others are served meanwhile', async () => {
    // Time itself is under test here: a header line every 300 ms, for longer than headersTimeout.
    const slowloris = sendRaw(t, server.url, ['GET /api/x HTTP/1.1\r\nHost: x\r\n', ...Array.from({ length: 30 }, (_, i) => `X-Slow-${i}: y\r\n`)], 300)
    const trickle = sendRaw(t, server.url, ['POST /api/upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n', ...Array.from({ length: 60 }, () => 'x')], 300)
    for (let i = 0; i < 5; i++) assert.equal((await fetch('/api/meanwhile')).statusCode, 200)
    assert.match(statusLine(await within(6000, 'the slowloris client to be cut off', slowloris)) ?? '', /^(HTTP\/1.1 408 Request Timeout)?$/)
    assert.match(statusLine(await within(6000, 'the trickling client to be cut off', trickle)) ?? '', /^(HTTP\/1.1 408 Request Timeout)?$/)
  })
})
