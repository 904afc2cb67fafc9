// The HTTP server on the public port, the same in the control plane and in every data plane: it
// cuts off slow clients and hands each request to `serve`, with Expect: 100-continue left to it.
import { createServer, STATUS_CODES, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { Duplex } from 'node:stream'

/** How often Node looks for clients past headersTimeout or requestTimeout (its default: 30 s). */
const SLOW_CLIENT_CHECK_MS = 1_000
/** Idle keep-alive connections from clients are kept this long (Fastify's default). */
const CLIENT_KEEP_ALIVE_MS = 72_000

/** headersTimeout and requestTimeout from the server configuration. */
export interface PublicServerLimits {
  headersTimeout: number
  requestTimeout: number
}

export type Serve = (req: IncomingMessage, res: ServerResponse, awaitingContinue: boolean) => void

export function createPublicServer ({ headersTimeout, requestTimeout }: PublicServerLimits, serve: Serve): Server {
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
