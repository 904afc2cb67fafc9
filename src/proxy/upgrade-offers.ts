// Upgrade offers the host does not take. Node's HTTP server hands every request with
// `Connection: upgrade` to its 'upgrade' listeners once one exists (the WebSocket proxy's), before
// any response object or body parsing: an h2c offer (`curl --http2`) or any other protocol would be
// refused there, and a POST's body lost. A server may ignore an Upgrade it does not take (RFC 9110
// 7.8), so such a request is put back on its connection without the offer and parsed again as a
// plain request, body and keep-alive included. Node 24.9's shouldUpgradeCallback does this inside
// Node; Node 20 has no such option.
import type { IncomingMessage, Server } from 'node:http'
import type { Duplex } from 'node:stream'

/** A WebSocket opening handshake (RFC 6455 4.1): GET with `websocket` among the offered protocols. */
export function isWebSocketOffer (req: IncomingMessage): boolean {
  return req.method === 'GET' && String(req.headers.upgrade ?? '').split(',').some((token) => token.trim().toLowerCase() === 'websocket')
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
  server.emit('connection', socket)
}
