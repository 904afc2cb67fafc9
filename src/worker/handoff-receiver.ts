// Worker side of connection hand-off (opt-in: `handoff: true` in server.yaml). The host passes an
// accepted client connection, with the bytes it already read, to this process over IPC; the
// worker's own HTTP server then serves it directly. Requests on such a connection arrive with the
// full path, so the route prefix is removed here and X-Forwarded-* set. A request on it for another
// worker's route, for a public/ file (the host serves those) or with a path the host refuses (`..`)
// is passed back to the host over HTTP. When the host drains this instance, answers on handed-off
// connections (those in flight too) close them, and idle ones are closed after a grace period, so
// none holds the old instance past its drain.
import { existsSync, statSync } from 'node:fs'
import { request, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import { join } from 'node:path'
import { forwardingHeaders } from '../forwarded-headers.js'
import { isSafePath, pathOf } from '../url-paths.js'

/** Idle connections are closed this long after a drain begins (they may be mid-request). */
const DRAIN_GRACE_MS = 1_000

interface ConnectionMessage {
  type: 'tq:connection'
  /** Bytes the host read before handing the connection over, latin1. */
  head: string
  /** The host's address, for requests that belong to another worker. */
  host: string
  /** Every route the host serves, to tell this worker's requests from others'. */
  routes: string[]
}

export class HandoffReceiver {
  readonly #server: Server
  readonly #route: string
  readonly #hasPublic: boolean
  #host = ''
  #routes: string[] = []
  #draining = false
  /** Handed-off connections still open, each with the last answer it was given to write. */
  readonly #connections = new Map<Socket, ServerResponse | undefined>()

  constructor (server: Server, route: string) {
    this.#server = server
    this.#route = route
    this.#hasPublic = existsSync('public')
    process.on('message', (message: { type?: string }, socket?: Socket) => {
      if (message?.type === 'tq:connection' && socket) this.#accept(message as ConnectionMessage, socket)
      if (message?.type === 'tq:drain') this.#drain()
    })
  }

  /**
   * Prepares a request before the app sees it; false when it was passed back to the host instead.
   * Requests that did not come over a handed-off connection are left alone.
   */
  prepare (req: IncomingMessage, res: ServerResponse): boolean {
    if (!this.#connections.has(req.socket)) return true
    this.#connections.set(req.socket, res)
    if (this.#draining) res.setHeader('connection', 'close')
    const url = req.url ?? '/'
    const path = pathOf(url)
    // A path the host refuses (a `..` segment, bad %-encoding) goes back for the host's answer too:
    // the host checked only the first request line of this connection.
    if (longestRoute(this.#routes, path) !== this.#route || !isSafePath(path) || this.#isPublicFile(req, path)) {
      this.#passBack(req, res)
      return false
    }
    // The same headers the proxy sets; a client's own X-Forwarded-Prefix is never passed on.
    delete req.headers['x-forwarded-prefix']
    Object.assign(req.headers, forwardingHeaders(req, this.#route, 'http'))
    if (this.#route !== '/') {
      const rest = url.slice(this.#route.length)
      req.url = rest === '' || rest[0] === '?' ? `/${rest}` : rest
    }
    return true
  }

  #accept (message: ConnectionMessage, socket: Socket): void {
    this.#host = message.host
    this.#routes = message.routes
    this.#connections.set(socket, undefined)
    socket.once('close', () => {
      this.#connections.delete(socket)
      process.send?.({ type: 'tq:released' })
    })
    socket.unshift(Buffer.from(message.head, 'latin1'))
    this.#server.emit('connection', socket)
    socket.resume()
  }

  #drain (): void {
    this.#draining = true
    // An answer still being written closes its connection once done, or the connection would
    // hold this instance until drainTimeout: the idle ones are closed only once, below.
    for (const [socket, res] of this.#connections) {
      if (!res || res.writableFinished) continue
      if (!res.headersSent) res.setHeader('connection', 'close')
      else res.once('finish', () => socket.end())
    }
    setTimeout(() => this.#server.closeIdleConnections(), DRAIN_GRACE_MS).unref()
  }

  #isPublicFile (req: IncomingMessage, path: string): boolean {
    if (!this.#hasPublic || (req.method !== 'GET' && req.method !== 'HEAD')) return false
    try {
      return statSync(join('public', decodeURIComponent(path.slice(this.#route === '/' ? 0 : this.#route.length)))).isFile()
    } catch {
      return false
    }
  }

  /** Sends a request that is not this worker's to the host, and its answer back. */
  #passBack (req: IncomingMessage, res: ServerResponse): void {
    const host = new URL(this.#host)
    const upstream = request({ host: host.hostname, port: host.port, method: req.method, path: req.url, headers: req.headers }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers)
      answer.pipe(res)
    })
    upstream.once('error', () => res.destroy())
    req.pipe(upstream)
  }
}

/** The longest route that `path` falls under, on segment boundaries. */
export function longestRoute (routes: string[], path: string): string | undefined {
  let best: string | undefined
  for (const route of routes) {
    const under = route === '/' || path === route || path.startsWith(`${route}/`)
    if (under && (best === undefined || route.length > best.length)) best = route
  }
  return best
}
