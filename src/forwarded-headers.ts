// Who sent a request, the forwarding headers a worker gets about it, and the headers that stop at
// the host, Upgrade offers it does not take included: the same for the host's proxy and for a
// worker serving a handed-off connection. Which peers may speak for a client is the trustProxy
// setting; by default none may, and a client's own X-Forwarded-*, X-Real-IP and Forwarded headers
// are replaced with what the host saw.
import type { IncomingHttpHeaders, IncomingMessage, Server } from 'node:http'
import type { Duplex } from 'node:stream'
import proxyAddr from '@fastify/proxy-addr'

/**
 * trustProxy as configured: true (every peer), false (none), a hop count (the nearest N peers,
 * whatever their address), or addresses and CIDR ranges (a list, or one string with commas; also
 * proxy-addr's names loopback, linklocal and uniquelocal). Strings 'true', 'false' and '2' are the
 * same as the values (the environment and flags give strings).
 */
export type TrustProxy = boolean | number | string | readonly string[]

/** Whether the address at `hop` (0: the peer of the connection, 1: the address it names...) is trusted. */
export type TrustFunction = (address: string, hop: number) => boolean

export const TRUST_NONE: TrustFunction = () => false

/**
 * Hop-by-hop headers (RFC 9110 7.6.1): they describe one connection and are never forwarded, either
 * way. Transfer-Encoding too: undici frames the body it sends itself.
 */
const HOP_BY_HOP = ['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade']
/**
 * Request headers that stop at the host as well: Expect is answered there (100 Continue, or 417
 * from Node's server), an Upgrade offer is declined so HTTP2-Settings means nothing, and
 * Proxy-Authorization holds credentials for a proxy (RFC 9110 11.7.4), never for a worker. The
 * client's Host is replaced by the worker's (X-Forwarded-Host keeps it).
 */
/**
 * Headers other proxies and CDNs use to name the client (nginx's realip, Cloudflare, Fastly,
 * Akamai): a worker's library may read them first, so a client's own are dropped unless its peer
 * is trusted.
 */
export const CLIENT_CLAIMS: ReadonlySet<string> = new Set(['x-client-ip', 'true-client-ip', 'cf-connecting-ip', 'fastly-client-ip', 'x-cluster-client-ip'])

export const REQUEST_ONLY: ReadonlySet<string> = new Set([...HOP_BY_HOP, 'host', 'expect', 'http2-settings', 'proxy-authorization', 'x-forwarded-prefix'])
/** Proxy-Authenticate challenges the next client on the way back (RFC 9110 11.7.1): the host, not the client. */
export const RESPONSE_ONLY: ReadonlySet<string> = new Set([...HOP_BY_HOP, 'proxy-authenticate'])

const NONE: readonly string[] = []
const KEEP_ALIVE: readonly string[] = ['keep-alive']
const CLOSE: readonly string[] = ['close']

/** The headers a Connection header names: hop-by-hop too, on this one connection. */
export function namedByConnection (connection: string | string[] | number | undefined): readonly string[] {
  // The common values without splitting, one shared array each (the proxy's hot path: every
  // worker answer says keep-alive); compared as strings, a Map would hash each new one.
  switch (connection) {
    case undefined: return NONE
    case 'keep-alive': case 'Keep-Alive': return KEEP_ALIVE
    case 'close': case 'Close': return CLOSE
    default: return String(connection).toLowerCase().split(',').map((name) => name.trim())
  }
}

const LOOPBACK = /^(127\.\d+\.\d+\.\d+|::1|::ffff:127\.\d+\.\d+\.\d+)$/

export function isLoopback (address: string): boolean {
  return LOOPBACK.test(address)
}

/** The trust function of a setting; throws a TypeError naming an address it cannot read. */
export function compileTrust (setting: TrustProxy): TrustFunction {
  if (setting === true || setting === 'true') return () => true
  if (setting === false || setting === 'false' || setting === 0 || setting === '0' || setting === '') return TRUST_NONE
  if (typeof setting === 'number' || /^[0-9]+$/.test(String(setting))) {
    const hops = Number(setting)
    return (_address, hop) => hop < hops
  }
  const list = typeof setting === 'string' ? setting.split(',') : [...setting]
  return proxyAddr.compile(list.map((entry) => entry.trim()).filter((entry) => entry !== ''))
}

/** The setting as one string, as a worker is told it (TQ_HOST_TRUST_PROXY). */
export function trustText (setting: TrustProxy): string {
  return typeof setting === 'object' ? setting.join(',') : String(setting)
}

/**
 * The trust a worker behind the host gives (the SDK's Fastify trustProxy): the host itself on
 * loopback, then, one hop further, whom the host trusts. A handed-off connection has no host in
 * between: its peer is trusted as the host would trust it, and the host's own entry in
 * X-Forwarded-For (the same peer again) keeps the hop counts equal.
 */
export function workerTrust (hostSetting: TrustProxy): TrustFunction {
  const host = compileTrust(hostSetting)
  return (address, hop) => (hop === 0 && isLoopback(address)) || host(address, Math.max(0, hop - 1))
}

/** The client's address: the peer, or with trusted peers the first address they name that is not trusted. */
export function clientAddress (req: IncomingMessage, trust: TrustFunction): string {
  const peer = req.socket.remoteAddress ?? ''
  return trust(peer, 0) ? proxyAddr(req, trust) : peer
}

/**
 * X-Forwarded-For, -Proto, -Host, -Prefix, X-Real-IP and Forwarded, as the worker gets them; the
 * caller sets them over the client's headers and drops the client's X-Forwarded-Prefix.
 * - The peer not trusted (the default): what the host saw replaces the client's headers.
 * - A trusted peer (a proxy in front): it is appended to X-Forwarded-For and Forwarded, its
 *   X-Forwarded-Proto and -Host are kept, and its X-Forwarded-Prefix goes before the route's.
 * X-Real-IP is the client as `trust` finds it. X-Forwarded-Prefix is the route (none for '/').
 */
export function forwardingHeaders (req: IncomingMessage, route: string, protocol: string, trust: TrustFunction = TRUST_NONE): IncomingHttpHeaders {
  return setForwardingHeaders({}, req, route, protocol, trust)
}

/** Sets forwardingHeaders() into `headers` (the proxy's hot path: no object of their own); returns `headers`. */
export function setForwardingHeaders (headers: IncomingHttpHeaders, req: IncomingMessage, route: string, protocol: string, trust: TrustFunction): IncomingHttpHeaders {
  const peer = req.socket.remoteAddress ?? ''
  const prior = req.headers
  // HTTP/2 names the host in :authority (RFC 9113 8.3.1); a Host header, if sent, must agree.
  const host = prior.host ?? prior[':authority'] as string | undefined
  const element = `for=${forwardedNode(peer)}${host ? `;host=${quoted(host)}` : ''};proto=${protocol}`
  if (!trust(peer, 0)) {
    headers['x-forwarded-for'] = peer
    headers['x-forwarded-proto'] = protocol
    headers['x-forwarded-host'] = host ?? ''
    headers['x-real-ip'] = peer
    headers.forwarded = element
    if (route !== '/') headers['x-forwarded-prefix'] = route
    return headers
  }
  headers['x-forwarded-for'] = prior['x-forwarded-for'] ? `${String(prior['x-forwarded-for'])}, ${peer}` : peer
  headers['x-forwarded-proto'] = prior['x-forwarded-proto'] || protocol
  headers['x-forwarded-host'] = prior['x-forwarded-host'] || host || ''
  headers['x-real-ip'] = proxyAddr(req, trust)
  headers.forwarded = prior.forwarded ? `${prior.forwarded}, ${element}` : element
  const outer = String(prior['x-forwarded-prefix'] ?? '').replace(/\/+$/, '')
  const prefix = `${outer}${route === '/' ? '' : route}`
  if (prefix !== '') headers['x-forwarded-prefix'] = prefix
  return headers
}

/**
 * Every address a request names as its origin: the peer, X-Forwarded-For, X-Real-IP and the `for`
 * of Forwarded (unquoted, without brackets or port). Anything that is not an address stays as it
 * is (`unknown`, `_hidden`), so that it never passes for loopback.
 */
export function namedAddresses (req: { socket: { remoteAddress?: string | undefined }, headers: IncomingHttpHeaders }): string[] {
  const { headers } = req
  const addresses = [req.socket.remoteAddress ?? '']
  const list = (value: string | string[] | undefined) => value === undefined ? [] : String(value).split(',').map((entry) => entry.trim())
  addresses.push(...list(headers['x-forwarded-for']), ...list(headers['x-real-ip']))
  for (const element of list(headers.forwarded)) {
    for (const pair of element.split(';')) {
      const equals = pair.indexOf('=')
      if (pair.slice(0, equals).trim().toLowerCase() !== 'for') continue
      addresses.push(nodeAddress(pair.slice(equals + 1).trim().replace(/^"(.*)"$/, '$1')))
    }
  }
  return addresses
}

// Upgrade offers the host does not take. Node's HTTP server hands every request with
// `Connection: upgrade` to its 'upgrade' listeners once one exists (the WebSocket proxy's, or an
// app's WebSocket server on a handed-off connection), before any response object or body parsing:
// an h2c offer (`curl --http2`) or any other protocol would be refused there, and a POST's body
// lost. A server may ignore an Upgrade it does not take (RFC 9110 7.8), so such a request is put
// back on its connection without the offer and parsed again as a plain request, body and
// keep-alive included. Where Node has shouldUpgradeCallback (22.21, 24.9 and later), Node itself
// serves the offers a server declines as plain requests, and must: since Node 26 an offer's body
// is read into the request, not left on the socket, so it could not be put back.

/** A WebSocket opening handshake (RFC 6455 4.1): GET with `websocket` among the offered protocols. */
export function isWebSocketOffer (req: IncomingMessage): boolean {
  return req.method === 'GET' && String(req.headers.upgrade ?? '').split(',').some((token) => token.trim().toLowerCase() === 'websocket')
}

/**
 * Has `server` serve the upgrade offers `declines` picks as plain requests, in Node's parser,
 * where Node can (shouldUpgradeCallback). Elsewhere (Node 22.0-22.20) they still reach the
 * 'upgrade' listeners, which decline them with declineUpgrade.
 */
export function declineUpgradesWhere (server: Server, declines: (req: IncomingMessage) => boolean): void {
  const judged = server as Server & { shouldUpgradeCallback?: (req: IncomingMessage) => boolean }
  const upgrades = judged.shouldUpgradeCallback
  if (typeof upgrades !== 'function') return
  judged.shouldUpgradeCallback = (req) => !declines(req) && upgrades.call(server, req)
}

/**
 * Puts an upgrade request back on its connection as the same request without Upgrade (and without
 * `upgrade` in Connection), and has `server` serve the connection again from there: the request
 * comes back as a 'request' event, its body read as usual.
 */
export function declineUpgrade (server: Server, req: IncomingMessage, socket: Duplex, head: Buffer): void {
  const lines = [`${req.method ?? 'GET'} ${req.url ?? '/'} HTTP/${req.httpVersion}`]
  const raw = req.rawHeaders
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!
    let value = raw[i + 1]!
    const lower = name.toLowerCase()
    if (lower === 'upgrade') continue
    if (lower === 'connection') {
      value = value.split(',').map((token) => token.trim()).filter((token) => token !== '' && token.toLowerCase() !== 'upgrade').join(', ')
      if (value === '') continue
    }
    lines.push(`${name}: ${value}`)
  }
  // Header values came off the wire as latin1: written back the same, byte for byte.
  socket.unshift(Buffer.concat([Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'latin1'), head]))
  // An HTTPS server serves decrypted connections from its 'secureConnection' listener.
  server.emit((socket as { encrypted?: boolean }).encrypted === true ? 'secureConnection' : 'connection', socket)
}

/**
 * An HTTP/1.x request: its answer may carry `Connection: close`. HTTP/2 has no Connection header
 * (Node drops it with a warning); there the server's GOAWAY at shutdown closes the connection.
 */
export function isHttp1 (req: IncomingMessage): boolean {
  return req.httpVersionMajor !== 2
}

/** A request's headers as HTTP/1.1 has them: HTTP/2's pseudo-headers left out, its :authority as Host. */
export function http1Headers (req: IncomingMessage): IncomingHttpHeaders {
  if (req.httpVersionMajor !== 2) return req.headers
  const headers: IncomingHttpHeaders = {}
  for (const name in req.headers) if (name.charCodeAt(0) !== 0x3a) headers[name] = req.headers[name]
  headers.host ??= req.headers[':authority'] as string | undefined
  return headers
}

/** An RFC 7239 node: IPv6 in brackets, and quoted whenever it is more than a token. */
function forwardedNode (address: string): string {
  return address.includes(':') ? `"[${address}]"` : address === '' ? 'unknown' : address
}

function quoted (value: string): string {
  // Most values have nothing to escape: no regular expression for them (the hot path).
  return value.includes('"') || value.includes('\\') ? `"${value.replace(/["\\]/g, '\\$&')}"` : `"${value}"`
}

/** `[::1]:8080` -> `::1`, `127.0.0.1:8080` -> `127.0.0.1`. */
function nodeAddress (node: string): string {
  if (node.startsWith('[')) return node.slice(1, node.indexOf(']') === -1 ? undefined : node.indexOf(']'))
  return /^[0-9.]+:[0-9]+$/.test(node) ? node.slice(0, node.indexOf(':')) : node
}
