// trustProxy (issue 13): behind a proxy the host trusts (here one on this machine, 127.0.0.1), the
// proxy's forwarding headers are kept and the peer appended; the client is whom that proxy names,
// for an SDK worker's req.ip, the access log, and the rule that keeps /health details and /metrics
// to this machine: a remote client relayed by a local proxy is not local. Every case runs on the
// default path and on the hand-off path (`handoff: true`), where the request under test is a later
// request on a connection whose first request the host handed off to the SDK worker.
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { startCliServer } from '../helpers/cli.js'
import { PORTS } from '../helpers/ports.js'
import { useProject } from '../helpers/project.js'
import { openRaw, rawRequest, type RawResponse } from '../helpers/raw-http.js'

interface Echo {
  ip: string
  protocol: string
  host: string
  headers: Record<string, string | undefined>
  /** The local port of the connection it came on: the host's public port when handed off. */
  servedOn: number
}

/** Worker ports of the hand-off run: the second half of edgeHandoff (edge-http has the first). */
const [HANDOFF_FROM, HANDOFF_TO] = PORTS.edgeHandoff.split('-').map(Number) as [number, number]
const HANDOFF_PORTS = `${HANDOFF_FROM + 15}-${HANDOFF_TO}`

/**
 * Sends one request with `Connection: close` added and resolves with its answer; with hand-off, as
 * the second request on a connection whose first the host handed off to the api worker.
 */
async function request (t: TestContext, url: string, handoff: boolean, method: string, path: string, headers: string[] = []): Promise<RawResponse> {
  if (!handoff) return await rawRequest(t, url, method, path, headers)
  const connection = await openRaw(t, url)
  connection.send('GET /api/first HTTP/1.1\r\nHost: tq.test\r\n\r\n')
  const first = JSON.parse((await connection.response(10_000, 'the answer to the first request')).body) as Echo
  assert.equal(first.servedOn, Number(new URL(url).port), `GET /api/first was not handed off: the worker got it on port ${first.servedOn}`)
  connection.send(`${method} ${path} HTTP/1.1\r\nHost: tq.test\r\n${[...headers, 'Connection: close'].map((line) => `${line}\r\n`).join('')}\r\n`)
  return await connection.response(10_000, `an answer to ${method} ${path} after a handed-off request`)
}

for (const handoff of [false, true]) {
  test(`behind a trusted proxy (--trust-proxy 127.0.0.1), ${handoff ? 'hand-off' : 'default path'}`, async (t) => {
    // The access log would turn hand-off off: only the default path logs requests.
    const root = await useProject(t, 'edge-http', { 'config/server.yaml': handoff ? 'handoff: true\n' : 'accessLog: true\n' }, ['ws'])
    const { url, logs } = await startCliServer(t, 'start', root, handoff ? HANDOFF_PORTS : PORTS.edgeForwarded, ['--trust-proxy', '127.0.0.1'])

    await t.test("the proxy's headers are kept, the peer appended, and the client is whom it names", async () => {
      const answer = await request(t, url, handoff, 'GET', '/api/who', [
        'X-Forwarded-For: 203.0.113.9', 'X-Real-IP: 203.0.113.9', 'Forwarded: for=203.0.113.9;proto=https', 'X-Forwarded-Proto: https',
        'X-Forwarded-Host: shop.example', 'X-Forwarded-Prefix: /shop'
      ])
      const seen = JSON.parse(answer.body) as Echo
      assert.deepEqual({
        for: seen.headers['x-forwarded-for'],
        realIp: seen.headers['x-real-ip'],
        forwarded: seen.headers.forwarded,
        proto: seen.headers['x-forwarded-proto'],
        host: seen.headers['x-forwarded-host'],
        prefix: seen.headers['x-forwarded-prefix']
      }, {
        for: '203.0.113.9, 127.0.0.1',
        realIp: '203.0.113.9',
        forwarded: 'for=203.0.113.9;proto=https, for=127.0.0.1;host="tq.test";proto=http',
        proto: 'https',
        host: 'shop.example',
        prefix: '/shop/api'
      })
      assert.deepEqual([seen.ip, seen.protocol, seen.host], ['203.0.113.9', 'https', 'shop.example'], "the SDK worker's req.ip, protocol and host")
      if (!handoff) {
        const logged = await logs.waitFor((line) => line.msg === 'request' && line.url === '/api/who', 10_000, 'the access log line')
        assert.equal(logged.client, '203.0.113.9')
      }
    })

    await t.test('an address the client wrote itself, before the trusted proxy, is not the client', async () => {
      const seen = JSON.parse((await request(t, url, handoff, 'GET', '/api/forged', ['X-Forwarded-For: 6.6.6.6, 203.0.113.9'])).body) as Echo
      assert.equal(seen.headers['x-forwarded-for'], '6.6.6.6, 203.0.113.9, 127.0.0.1')
      assert.deepEqual([seen.headers['x-real-ip'], seen.ip], ['203.0.113.9', '203.0.113.9'])
    })

    await t.test('/health details and /metrics: refused to a remote client relayed by the local proxy, given to a local one', async () => {
      const remote = ['X-Forwarded-For: 203.0.113.9', 'Accept: application/json']
      assert.deepEqual(Object.keys(JSON.parse((await request(t, url, handoff, 'GET', '/health', remote)).body) as object), ['status'])
      assert.equal((await request(t, url, handoff, 'GET', '/metrics', remote)).status, 403)
      for (const named of [['X-Real-IP: 203.0.113.9'], ['Forwarded: for="[2001:db8::9]:4711"'], ['X-Forwarded-For: unknown']]) {
        assert.equal((await request(t, url, handoff, 'GET', '/metrics', named)).status, 403, named[0])
      }

      const local = ['X-Forwarded-For: 127.0.0.1', 'Accept: application/json']
      assert.ok((JSON.parse((await request(t, url, handoff, 'GET', '/health', local)).body) as { workers?: unknown }).workers, 'details refused to a local client')
      assert.equal((await request(t, url, handoff, 'GET', '/metrics', local)).status, 200)
    })
  })
}
