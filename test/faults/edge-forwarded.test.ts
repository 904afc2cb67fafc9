// trustProxy (issue 13): behind a proxy the host trusts (here one on this machine, 127.0.0.1), the
// proxy's forwarding headers are kept and the peer appended; the client is whom that proxy names,
// for an SDK worker's req.ip, the access log, and the rule that keeps /health details and /metrics
// to this machine: a remote client relayed by a local proxy is not local.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { startCliServer } from '../helpers/cli.js'
import { PORTS } from '../helpers/ports.js'
import { useProject } from '../helpers/project.js'
import { rawRequest } from '../helpers/raw-http.js'

interface Echo {
  ip: string
  protocol: string
  host: string
  headers: Record<string, string | undefined>
}

test('behind a trusted proxy (--trust-proxy 127.0.0.1)', async (t) => {
  const root = await useProject(t, 'edge-http', { 'config/server.yaml': 'accessLog: true\n' })
  const { url, logs } = await startCliServer(t, 'start', root, PORTS.edgeForwarded, ['--trust-proxy', '127.0.0.1'])

  await t.test("the proxy's headers are kept, the peer appended, and the client is whom it names", async () => {
    const answer = await rawRequest(t, url, 'GET', '/api/who', [
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
    const logged = await logs.waitFor((line) => line.msg === 'request' && line.url === '/api/who', 10_000, 'the access log line')
    assert.equal(logged.client, '203.0.113.9')
  })

  await t.test('an address the client wrote itself, before the trusted proxy, is not the client', async () => {
    const seen = JSON.parse((await rawRequest(t, url, 'GET', '/api/forged', ['X-Forwarded-For: 6.6.6.6, 203.0.113.9'])).body) as Echo
    assert.equal(seen.headers['x-forwarded-for'], '6.6.6.6, 203.0.113.9, 127.0.0.1')
    assert.deepEqual([seen.headers['x-real-ip'], seen.ip], ['203.0.113.9', '203.0.113.9'])
  })

  await t.test('/health details and /metrics: refused to a remote client relayed by the local proxy, given to a local one', async () => {
    const remote = ['X-Forwarded-For: 203.0.113.9', 'Accept: application/json']
    assert.deepEqual(Object.keys(JSON.parse((await rawRequest(t, url, 'GET', '/health', remote)).body) as object), ['status'])
    assert.equal((await rawRequest(t, url, 'GET', '/metrics', remote)).status, 403)
    for (const named of [['X-Real-IP: 203.0.113.9'], ['Forwarded: for="[2001:db8::9]:4711"'], ['X-Forwarded-For: unknown']]) {
      assert.equal((await rawRequest(t, url, 'GET', '/metrics', named)).status, 403, named[0])
    }

    const local = ['X-Forwarded-For: 127.0.0.1', 'Accept: application/json']
    assert.ok((JSON.parse((await rawRequest(t, url, 'GET', '/health', local)).body) as { workers?: unknown }).workers, 'details refused to a local client')
    assert.equal((await rawRequest(t, url, 'GET', '/metrics', local)).status, 200)
  })
})
