// src/forwarded-headers.ts: the trustProxy forms, the headers a worker gets, and the trust the SDK
// gives a worker, which must find the same client as the host, through the host or on a handed-off
// connection. Requests here are their address and headers (all these functions read).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http'
import proxyAddr from '@fastify/proxy-addr'
import { clientAddress, compileTrust, forwardingHeaders, namedAddresses, trustText, workerTrust, type TrustProxy } from '../../src/forwarded-headers.js'

function request (peer: string, headers: IncomingHttpHeaders = {}): IncomingMessage {
  return { socket: { remoteAddress: peer }, headers } as unknown as IncomingMessage
}

/** Who Fastify takes the client to be with this trustProxy function (request.ip). */
function fastifyIp (req: IncomingMessage, trust: (address: string, hop: number) => boolean): string {
  return proxyAddr.all(req, trust).at(-1)!
}

test('trustProxy: booleans, hop counts and address lists, also as the strings of flags and the environment', () => {
  const cases: Array<[TrustProxy, string, number, boolean]> = [
    [true, '203.0.113.9', 5, true], ['true', '203.0.113.9', 0, true],
    [false, '127.0.0.1', 0, false], ['false', '127.0.0.1', 0, false], ['', '127.0.0.1', 0, false], [0, '127.0.0.1', 0, false],
    [2, '203.0.113.9', 1, true], ['2', '203.0.113.9', 2, false],
    ['127.0.0.1', '127.0.0.1', 3, true], ['127.0.0.1', '127.0.0.2', 0, false],
    ['10.0.0.0/8, 192.0.2.1', '10.1.2.3', 0, true], ['10.0.0.0/8, 192.0.2.1', '192.0.2.1', 0, true], ['10.0.0.0/8,192.0.2.1', '192.0.2.2', 0, false],
    [['loopback', '2001:db8::/32'], '::1', 0, true], [['loopback', '2001:db8::/32'], '2001:db8::5', 0, true], [['loopback'], '192.0.2.1', 0, false]
  ]
  for (const [setting, address, hop, trusted] of cases) {
    assert.equal(compileTrust(setting)(address, hop), trusted, `${JSON.stringify(setting)} trusts ${address} at hop ${hop}`)
  }
  assert.throws(() => compileTrust('nonsense'), /invalid IP address: nonsense/)
  assert.throws(() => compileTrust(['10.0.0.0/99']), /invalid range on address/)
  assert.deepEqual([trustText(['loopback', '10.0.0.0/8']), trustText(2), trustText(false)], ['loopback,10.0.0.0/8', '2', 'false'])
})

test("untrusted peer: the client's forwarding headers are replaced with what the host saw", () => {
  const req = request('192.0.2.7', { host: 'shop.example', 'x-forwarded-for': '6.6.6.6', 'x-forwarded-proto': 'https', 'x-forwarded-host': 'evil', 'x-forwarded-prefix': '/evil', forwarded: 'for=6.6.6.6' })
  assert.deepEqual(forwardingHeaders(req, '/api', 'http'), {
    'x-forwarded-for': '192.0.2.7',
    'x-forwarded-proto': 'http',
    'x-forwarded-host': 'shop.example',
    'x-real-ip': '192.0.2.7',
    forwarded: 'for=192.0.2.7;host="shop.example";proto=http',
    'x-forwarded-prefix': '/api'
  })
  assert.equal(forwardingHeaders(req, '/', 'http')['x-forwarded-prefix'], undefined, 'no prefix at the root route')
  assert.equal(clientAddress(req, compileTrust(false)), '192.0.2.7')
  assert.equal(forwardingHeaders(request('::1', {}), '/', 'http').forwarded, 'for="[::1]";proto=http', 'IPv6 quoted and bracketed, no host without a Host header')
})

test('trusted peer: appended to X-Forwarded-For and Forwarded, its proto, host and prefix kept', () => {
  const trust = compileTrust('10.0.0.0/8')
  const req = request('10.0.0.5', { host: 'tq.internal', 'x-forwarded-for': '6.6.6.6, 203.0.113.9', 'x-forwarded-proto': 'https', 'x-forwarded-host': 'shop.example', 'x-forwarded-prefix': '/shop/', forwarded: 'for=203.0.113.9' })
  assert.deepEqual(forwardingHeaders(req, '/api', 'http', trust), {
    'x-forwarded-for': '6.6.6.6, 203.0.113.9, 10.0.0.5',
    'x-forwarded-proto': 'https',
    'x-forwarded-host': 'shop.example',
    'x-real-ip': '203.0.113.9',
    forwarded: 'for=203.0.113.9, for=10.0.0.5;host="tq.internal";proto=http',
    'x-forwarded-prefix': '/shop/api'
  })
  assert.equal(clientAddress(req, trust), '203.0.113.9')
})

test('the trust an SDK worker gives finds the client the host found, through the host or on a handed-off connection', () => {
  const chains = ['', '203.0.113.9', '6.6.6.6, 203.0.113.9', '6.6.6.6, 203.0.113.9, 10.0.0.6']
  for (const setting of [false, true, 1, 2, '10.0.0.0/8', 'loopback'] as TrustProxy[]) {
    const host = compileTrust(setting)
    for (const peer of ['10.0.0.5', '127.0.0.1', '198.51.100.1']) {
      for (const chain of chains) {
        const client = request(peer, chain === '' ? {} : { 'x-forwarded-for': chain })
        const expected = clientAddress(client, host)
        const forwarded = forwardingHeaders(client, '/api', 'http', host)['x-forwarded-for'] as string
        const what = `trustProxy ${JSON.stringify(setting)}, peer ${peer}, X-Forwarded-For "${chain}"`
        // Through the host: the worker's peer is the host on loopback.
        assert.equal(fastifyIp(request('127.0.0.1', { 'x-forwarded-for': forwarded }), workerTrust(setting)), expected, `proxied: ${what}`)
        // Handed off: the worker's peer is the client's, and the headers were set the same way.
        assert.equal(fastifyIp(request(peer, { 'x-forwarded-for': forwarded }), workerTrust(setting)), expected, `handed off: ${what}`)
      }
    }
  }
})

test('the addresses a request names: peer, X-Forwarded-For, X-Real-IP and the for= of Forwarded', () => {
  const req = request('127.0.0.1', { 'x-forwarded-for': '10.0.0.1, 10.0.0.2', 'x-real-ip': '10.0.0.3', forwarded: 'for=10.0.0.4:80;proto=http, For="[::1]:4711", by=10.9.9.9;for=_hidden' })
  assert.deepEqual(namedAddresses(req), ['127.0.0.1', '10.0.0.1', '10.0.0.2', '10.0.0.3', '10.0.0.4', '::1', '_hidden'])
})
