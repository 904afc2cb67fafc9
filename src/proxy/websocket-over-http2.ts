// WebSockets over HTTP/2 (RFC 8441): a client opens a stream with an extended CONNECT
// (`:protocol: websocket`) where HTTP/1.1 would send an Upgrade. The stream is turned into the
// HTTP/1.1 handshake the rest of the proxy knows: an in-memory connection is handed to this same
// server, as if a client had connected over TLS and chosen HTTP/1.1, and the upgrade request is
// sent on it. The server then does what it does for any WebSocket (route, pin an instance, tunnel,
// close with 1012 when the instance retires; a data plane relays it to the control plane), and
// its answer comes back here: a 101 becomes the stream's 200, anything else is passed on as it is.
// Frames then flow through unchanged: they are the same over both.
import { randomBytes } from 'node:crypto'
import { request, type IncomingHttpHeaders, type IncomingMessage, type OutgoingHttpHeaders, type Server } from 'node:http'
import { constants, type Http2ServerRequest, type Http2ServerResponse } from 'node:http2'
import { duplexPair, type Duplex } from 'node:stream'
import { http1Headers, RESPONSE_ONLY } from '../forwarded-headers.js'
import { serveRelayed, speakFor } from './relay.js'

/** What the client asked for and the worker chose, carried from the 101 to the stream's 200. */
const NEGOTIATED = ['sec-websocket-protocol', 'sec-websocket-extensions']
/** Not for the HTTP/1.1 handshake: HTTP/2's own, or the host's to set. */
const LEFT_OUT = new Set(['host', 'connection', 'upgrade', 'sec-websocket-key', 'sec-websocket-version', 'transfer-encoding', 'keep-alive'])

/** Serves an extended CONNECT for WebSockets through `server`'s HTTP/1.1 upgrade path; refuses any other CONNECT. */
export function serveWebSocketOverHttp2 (server: Server, req: Http2ServerRequest, res: Http2ServerResponse): void {
  if (req.headers[':protocol'] !== 'websocket') {
    res.writeHead(501, { 'content-type': 'text/plain; charset=utf-8' })
    res.end('only WebSockets are served over CONNECT\n')
    return
  }
  const [local, served] = duplexPair()
  speakFor(served, req.socket.remoteAddress, req.socket.remotePort, true)
  serveRelayed(server, served)
  const { stream } = res
  const handshake = request({
    createConnection: () => local,
    method: 'GET',
    path: req.url,
    headers: handshakeHeaders(req)
  })
  // Both ends of the in-memory connection go with the stream: the server counts the WebSocket in
  // flight until its end closes.
  const release = () => {
    handshake.destroy()
    local.destroy()
    served.destroy()
  }
  const cut = () => {
    release()
    if (!stream.destroyed) stream.close(constants.NGHTTP2_CANCEL)
  }
  stream.once('close', release)
  handshake.once('error', cut)
  handshake.once('upgrade', (answer: IncomingMessage, socket: Duplex, head: Buffer) => {
    res.writeHead(200, pick(answer.headers, NEGOTIATED))
    if (head.length > 0) stream.write(head)
    socket.on('error', cut).once('close', () => stream.end())
    stream.on('error', cut)
    socket.pipe(stream).pipe(socket)
  })
  handshake.once('response', (answer: IncomingMessage) => {
    // The answer is the whole exchange: the in-memory connection ends with it.
    answer.once('close', release)
    // Over HTTP/2 a 2xx opens the WebSocket (RFC 8441 5): a worker that answered the handshake
    // as a plain request did not open one.
    if ((answer.statusCode ?? 0) < 300) {
      answer.resume()
      res.writeHead(502, { 'content-type': 'text/plain; charset=utf-8' })
      res.end(`the worker answered ${answer.statusCode ?? 0} instead of accepting the WebSocket\n`)
      return
    }
    const headers: OutgoingHttpHeaders = {}
    for (const name in answer.headers) if (!RESPONSE_ONLY.has(name)) headers[name] = answer.headers[name]
    res.writeHead(answer.statusCode ?? 502, headers)
    answer.pipe(res)
  })
  handshake.end()
}

/** The client's headers as an HTTP/1.1 WebSocket handshake (RFC 6455 4.1). */
function handshakeHeaders (req: Http2ServerRequest): OutgoingHttpHeaders {
  const given = http1Headers(req as unknown as IncomingMessage)
  const headers: OutgoingHttpHeaders = {}
  for (const name in given) if (!LEFT_OUT.has(name)) headers[name] = given[name]
  headers.host = given.host
  headers.connection = 'Upgrade'
  headers.upgrade = 'websocket'
  // Needed by the HTTP/1.1 handshake only; the client's side has no key (RFC 8441 5).
  headers['sec-websocket-key'] = randomBytes(16).toString('base64')
  headers['sec-websocket-version'] = String(given['sec-websocket-version'] ?? '13')
  return headers
}

function pick (headers: IncomingHttpHeaders, names: string[]): OutgoingHttpHeaders {
  const picked: OutgoingHttpHeaders = {}
  for (const name of names) if (headers[name] !== undefined) picked[name] = headers[name]
  return picked
}
