// The HTTP server on the public port, the same in the control plane and in every data plane: it
// cuts off slow clients and hands each request to `serve`, with Expect: 100-continue left to it.
// With TLS it speaks HTTP/2 and HTTP/1.1 on one port, chosen by ALPN.
import { createServer, STATUS_CODES, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { constants, createSecureServer, type Http2SecureServer, type Http2ServerRequest, type Http2Session, type ServerHttp2Stream } from 'node:http2'
import type { Duplex } from 'node:stream'
import type { TlsMaterial } from '../tls/server-tls.js'
import { serveWebSocketOverHttp2 } from './websocket-over-http2.js'

/** How often Node looks for clients past headersTimeout or requestTimeout (its default: 30 s). */
const SLOW_CLIENT_CHECK_MS = 1_000
/** HTTP/2 streams one client connection may have open at once (nginx's http2_max_concurrent_streams). */
const MAX_CONCURRENT_STREAMS = 128
/** Idle keep-alive connections from clients are kept this long (Fastify's default). */
const CLIENT_KEEP_ALIVE_MS = 72_000

/** headersTimeout and requestTimeout from the server configuration. */
export interface PublicServerLimits {
  headersTimeout: number
  requestTimeout: number
}

export type Serve = (req: IncomingMessage, res: ServerResponse, awaitingContinue: boolean) => void

/** TLS for the public server: the material, and the HSTS max-age to announce (0: none). */
export interface PublicTls {
  material: TlsMaterial | undefined
  hsts: number
}

/**
 * The server on the public port: plain HTTP/1.1, or with `tls` HTTPS with HTTP/2 and HTTP/1.1.
 * An HTTP/2 request reaches `serve` as Node's compatibility objects (Http2ServerRequest and
 * Http2ServerResponse), which have every member of IncomingMessage and ServerResponse the proxy
 * uses; the proxy tells them apart by httpVersionMajor where they differ (pseudo-headers, no
 * Connection header). The HTTP/2 server is typed as an HTTP/1.1 one for the same reason: what
 * is called on it (listen, close, closeIdleConnections, the 'upgrade' and 'clientError' events
 * of its HTTP/1.1 connections, the timeouts) it has too.
 */
export function createPublicServer (limits: PublicServerLimits, serve: Serve, tls?: PublicTls): Server {
  return tls ? createTlsServer(limits, serve, tls) : createPlainServer(limits, serve)
}

/** Gives the server TLS material that changed (a new certificate, rotated ticket keys): new connections get it. */
export function updateTls (server: Server, material: TlsMaterial): void {
  const secure = server as unknown as Http2SecureServer
  secure.setSecureContext(secureContextOptions(material))
}

/**
 * The same session ticket keys and session ID context in every process serving the port, so that a
 * session resumes whichever process takes the client's next connection. (Node's default context
 * is a hash of the process's arguments, which differ between the control plane and a data plane.)
 */
const SESSION_ID_CONTEXT = 'tqserver'

function secureContextOptions ({ cert, key, ticketKeys }: TlsMaterial) {
  return { cert, key, ticketKeys: Buffer.from(ticketKeys, 'base64'), sessionIdContext: SESSION_ID_CONTEXT, minVersion: 'TLSv1.2' as const }
}

function createTlsServer ({ headersTimeout, requestTimeout }: PublicServerLimits, serve: Serve, { material, hsts }: PublicTls): Server {
  const strictTransport = hsts > 0 ? `max-age=${hsts}` : undefined
  const handle = (req: IncomingMessage, res: ServerResponse, awaitingContinue: boolean) => {
    if (strictTransport) res.setHeader('strict-transport-security', strictTransport)
    if (req.httpVersionMajor === 2) endWithAnswer((req as unknown as Http2ServerRequest).stream)
    serve(req, res, awaitingContinue)
  }
  // Without a certificate yet (ACME's first one pending) handshakes fail until updateTls.
  const server = createSecureServer({
    allowHTTP1: true,
    // A connection that never finishes its handshake is cut off as slow headers are.
    handshakeTimeout: headersTimeout,
    // Node's default lets a client open 2^32 - 1 streams at once; nginx allows 128.
    // enableConnectProtocol: WebSockets over HTTP/2 (websocket-over-http2.ts).
    settings: { maxConcurrentStreams: MAX_CONCURRENT_STREAMS, enableConnectProtocol: true },
    ...(material ? secureContextOptions(material) : { minVersion: 'TLSv1.2', sessionIdContext: SESSION_ID_CONTEXT })
  },
    (req, res) => handle(req as unknown as IncomingMessage, res as unknown as ServerResponse, false))
  server.on('checkContinue', (req, res) => handle(req as unknown as IncomingMessage, res as unknown as ServerResponse, true))
  server.on('connect', (req, res) => {
    endWithAnswer(req.stream)
    serveWebSocketOverHttp2(server as unknown as Server, req, res)
  })
  // The same limits for the HTTP/1.1 connections as on the plain server (Node reads them there).
  Object.assign(server, { headersTimeout, requestTimeout, keepAliveTimeout: CLIENT_KEEP_ALIVE_MS, connectionsCheckingInterval: SLOW_CLIENT_CHECK_MS })
  const sessions = new Set<Http2Session>()
  server.on('session', (session) => {
    sessions.add(session)
    session.once('close', () => sessions.delete(session))
    // An idle HTTP/2 connection is let go as an idle keep-alive one is.
    session.setTimeout(CLIENT_KEEP_ALIVE_MS, () => session.close())
  })
  // Fastify and the data planes close idle connections at shutdown. An HTTP/2 connection is idle
  // stream by stream: each is told to go away (GOAWAY), and closes once its open streams are done.
  const plain = server as unknown as Server
  const closeIdle = plain.closeIdleConnections.bind(plain)
  plain.closeIdleConnections = () => {
    closeIdle()
    for (const session of sessions) session.close()
  }
  // And when nothing more can be answered (the workers have stopped), every connection is cut:
  // Node's HTTP/2 server has no closeAllConnections of its own.
  const sockets = new Set<Duplex>()
  server.on('secureConnection', (socket: Duplex) => {
    sockets.add(socket)
    socket.once('close', () => sockets.delete(socket))
  })
  plain.closeAllConnections = () => {
    for (const socket of sockets) socket.destroy()
  }
  return plain
}

/**
 * Once the answer has been sent, a stream whose client is still sending (a body refused or given
 * up on, a WebSocket the worker closed) is closed with NO_ERROR (RFC 9113 8.1), as an HTTP/1.1
 * connection is closed: else the client holds it, and at shutdown the server, open.
 */
function endWithAnswer (stream: ServerHttp2Stream): void {
  stream.once('finish', () => {
    if (!stream.readableEnded && !stream.closed) stream.close(constants.NGHTTP2_NO_ERROR)
  })
}

function createPlainServer ({ headersTimeout, requestTimeout }: PublicServerLimits, serve: Serve): Server {
  return createServer({
    // Slow clients (slowloris headers, trickled bodies) are cut off; Node checks every second.
    headersTimeout,
    requestTimeout,
    connectionsCheckingInterval: SLOW_CLIENT_CHECK_MS,
    keepAliveTimeout: CLIENT_KEEP_ALIVE_MS
  }, (req, res) => serve(req, res, false))
    // Expect: 100-continue is ours to answer: the router sends 100 once it forwards the body.
    .on('checkContinue', (req: IncomingMessage, res: ServerResponse) => serve(req, res, true))
}

/**
 * What a client whose request Node could not parse is told: what Fastify answers on the control
 * plane's server, so that every process serving the port answers alike (a data plane has no
 * Fastify). Its 'clientError' listener.
 */
export function answerClientError (err: NodeJS.ErrnoException, socket: Duplex): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return
  const [status, message] = err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
    ? [408, 'Client Timeout']
    : err.code === 'HPE_HEADER_OVERFLOW' ? [431, 'Exceeded maximum allowed HTTP header size'] : [400, 'Client Error']
  const body = JSON.stringify({ error: STATUS_CODES[status], message, statusCode: status })
  if (socket.writable) socket.write(`HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Length: ${body.length}\r\nContent-Type: application/json\r\n\r\n${body}`)
  socket.destroy(err)
}
