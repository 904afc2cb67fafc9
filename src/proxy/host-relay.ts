// A data plane's way to the control plane (relay.ts): requests for the host's own paths (/health,
// /metrics, the dashboard, /__tqserver/...) and WebSocket handshakes (which the control plane
// tunnels) go there on a connection of their own that starts with the client's relay line, and
// the answer comes back. These are few next to the requests for workers, which never leave the
// data plane.
import { request, type IncomingMessage, type OutgoingHttpHeaders, type ServerResponse } from 'node:http'
import { http1Headers, isHttp1, RESPONSE_ONLY } from '../forwarded-headers.js'
import { connect } from 'node:net'
import type { Duplex } from 'node:stream'
import { relayLine } from './relay.js'

export class HostRelay {
  readonly #port: number
  readonly #key: string
  readonly #isClosing: () => boolean

  constructor (relay: { port: number, key: string }, isClosing: () => boolean) {
    this.#port = relay.port
    this.#key = relay.key
    this.#isClosing = isClosing
  }

  #connect (client: Duplex & { remoteAddress?: string | undefined, remotePort?: number | undefined, encrypted?: boolean }) {
    const socket = connect(this.#port, '127.0.0.1')
    socket.write(relayLine(this.#key, client.remoteAddress, client.remotePort, client.encrypted === true), 'latin1')
    return socket
  }

  /** Passes a plain request on and its answer back; the client's connection stays as this server decides. */
  request (req: IncomingMessage, res: ServerResponse, awaitingContinue: boolean): void {
    const upstream = request({
      method: req.method,
      path: req.url,
      // One request per relayed connection, which the control plane closes once it has answered
      // (a client's connection carries others' requests too): whether the client's connection
      // stays open is this server's call, made below.
      headers: { ...http1Headers(req), connection: 'close' },
      createConnection: () => this.#connect(req.socket)
    }, (answer) => {
      // The relayed connection's framing is not the client's (chunked SSE to an HTTP/2 client would
      // make Node throw): Node frames the answer for the client anew.
      const headers: OutgoingHttpHeaders = {}
      for (const name in answer.headers) if (!RESPONSE_ONLY.has(name)) headers[name] = answer.headers[name]
      if (this.#isClosing() && isHttp1(req)) headers.connection = 'close'
      res.writeHead(answer.statusCode ?? 502, headers)
      answer.pipe(res)
    })
    // The control plane asks for the body (100 Continue) once it wants it, and the client waits for that.
    if (awaitingContinue) upstream.once('continue', () => res.writeContinue())
    // One request per connection: it is closed once the answer is written, or abandoned.
    res.once('close', () => upstream.destroy())
    upstream.once('error', () => res.destroy())
    req.pipe(upstream)
  }

  /** Joins an upgrade's connection to one to the control plane, its head resent as received. */
  upgrade (req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const upstream = this.#connect(req.socket)
    const lines = [`${req.method} ${req.url} HTTP/${req.httpVersion}`]
    for (let i = 0; i < req.rawHeaders.length; i += 2) lines.push(`${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}`)
    upstream.write(`${lines.join('\r\n')}\r\n\r\n`, 'latin1')
    if (head.length > 0) upstream.write(head)
    const end = () => {
      socket.destroy()
      upstream.destroy()
    }
    socket.on('error', end).on('close', end)
    upstream.on('error', end).on('close', end)
    socket.pipe(upstream).pipe(socket)
  }
}
