// Worker side of connection hand-off (opt-in: `handoff: true` in server.yaml). The host passes an
// accepted client connection, with the bytes it already read and the rules it applies to this
// route, to this process over IPC; the worker's own HTTP server then serves it directly, with the
// host's header and request timeouts. Requests on such a connection arrive with the full path and
// as the client sent them, so the route prefix is removed here, the forwarding headers set and the
// headers the host's proxy does not pass on dropped, both ways, as the host's proxy does; an
// `Expect: 100-continue` and an Upgrade offer other than WebSocket are answered as the host would.
// A request the host would not pass to this worker as it is (another worker's route, a host path
// such as /health, a public/ file, a path with `..`, a body over the route's bodyLimit or of
// undeclared length) is passed back to the host over a new connection that starts with the relay
// line the host gave for this connection: the host then serves it as if the client had sent it
// directly, rules and client address included (src/proxy/handoff-front.ts). When the host drains
// this instance, answers on handed-off connections (those in flight too) close them, and idle
// ones are closed after a grace period, so none holds the old instance past its drain.
import { existsSync, statSync } from 'node:fs'
import { request, Server, ServerResponse, type IncomingMessage, type OutgoingHttpHeaders, type RequestListener, type ServerOptions } from 'node:http'
import { connect, type Socket } from 'node:net'
import { join } from 'node:path'
import type { Duplex } from 'node:stream'
import { CLIENT_CLAIMS, compileTrust, declineUpgrade, declineUpgradesWhere, forwardingHeaders, isWebSocketOffer, namedByConnection, REQUEST_ONLY, RESPONSE_ONLY } from '../forwarded-headers.js'
import { WORKER_ENV } from '../env-names.js'
import { isHostPath, isSafePath, pathOf } from '../url-paths.js'

/** Idle connections are closed this long after a drain begins (they may be mid-request). */
const DRAIN_GRACE_MS = 1_000
/** Whom the host trusts in front of it: the same rule for the headers here as on the host's path. */
const trust = compileTrust(process.env[WORKER_ENV.hostTrustProxy] ?? false)
/**
 * What the app still gets of the headers the host's proxy does not pass on: the body's framing,
 * which Fastify reads to find a body, and the client's Host (X-Forwarded-Host names it either way).
 */
const KEPT_REQUEST_HEADERS = new Set(['host', 'content-length', 'transfer-encoding'])
/**
 * What the answer keeps of the headers the host's proxy drops from a worker's answer: on a
 * handed-off connection the worker's server frames the answer for the client itself.
 */
const KEPT_RESPONSE_HEADERS = new Set(['connection', 'content-length', 'transfer-encoding'])
/** What is dropped whatever the request or answer says, worked out once. */
const DROPPED_REQUEST = new Set([...REQUEST_ONLY].filter((name) => !KEPT_REQUEST_HEADERS.has(name)))
const DROPPED_RESPONSE = new Set([...RESPONSE_ONLY].filter((name) => !KEPT_RESPONSE_HEADERS.has(name)))

interface ConnectionMessage {
  type: 'tq:connection'
  /** Bytes the host read before handing the connection over, latin1. */
  head: string
  /** The host's address, for requests that belong to another worker. */
  host: string
  /** Every route the host serves, to tell this worker's requests from others'. */
  routes: string[]
  /** Sent before each request passed back: proves it comes from a worker, and names the client. */
  relay: string
  /** The route's bodyLimit, in bytes (0: none). */
  bodyLimit: number
  /** The host's limits for slow clients, in ms. */
  headersTimeout: number
  requestTimeout: number
}

/** A handed-off connection: its relay line, and the last answer it was given to write. */
interface HandedOff {
  relay: string
  answer?: ServerResponse | undefined
}

/**
 * The SDK's HTTP server, the receiver wired in: each request goes through prepare() before the app
 * (`handler`) sees it, and an upgrade offer on a handed-off connection is judged before the app's
 * 'upgrade' listeners (a WebSocket server) get it: by Node's parser where it can, else by this
 * server's own emit, which asks first (an event cannot stop its other listeners).
 */
export class HandoffServer extends Server {
  readonly #receiver: HandoffReceiver

  constructor (route: string, options: ServerOptions, handler: RequestListener) {
    super(options)
    const receiver = new HandoffReceiver(this, route)
    this.#receiver = receiver
    this.on('request', (req, res) => { if (receiver.prepare(req, res)) handler(req, res) })
    this.on('checkContinue', (req, res) => { if (receiver.prepare(req, res, true)) handler(req, res) })
    declineUpgradesWhere(this, (req) => receiver.declines(req))
  }

  override emit (event: string, ...args: any[]): boolean {
    if (event === 'upgrade' && this.#receiver.declinesUpgrade(args[0] as IncomingMessage, args[1] as Duplex, args[2] as Buffer)) return true
    return super.emit(event, ...args)
  }
}

export class HandoffReceiver {
  readonly #server: Server
  readonly #route: string
  readonly #hasPublic: boolean
  #host = ''
  #routes: string[] = []
  #bodyLimit = 0
  #draining = false
  /** Handed-off connections still open. */
  readonly #connections = new Map<Socket, HandedOff>()

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
   * Requests that did not come over a handed-off connection are left alone. `awaitingContinue`: the
   * client sent `Expect: 100-continue` (the server's checkContinue): as on the host, 100 Continue
   * goes out only once the body is wanted, so a request the host refuses gets its answer instead.
   */
  prepare (req: IncomingMessage, res: ServerResponse, awaitingContinue = false): boolean {
    const connection = this.#connections.get(req.socket)
    if (!connection) {
      if (awaitingContinue) res.writeContinue()
      return true
    }
    connection.answer = res
    if (this.#draining) res.setHeader('connection', 'close')
    if (!this.#isOwn(req)) {
      this.#passBack(req, res, connection.relay, awaitingContinue)
      return false
    }
    // The same headers the proxy sets, over the client's, and none the proxy does not pass on.
    const forwarding = forwardingHeaders(req, this.#route, 'http', trust)
    const named = namedByConnection(req.headers.connection)
    const untrusted = !trust(req.socket.remoteAddress ?? '', 0)
    for (const name in req.headers) {
      if (DROPPED_REQUEST.has(name) || (untrusted && CLIENT_CLAIMS.has(name)) || (named.includes(name) && !KEPT_REQUEST_HEADERS.has(name))) delete req.headers[name]
    }
    Object.assign(req.headers, forwarding)
    res.writeHead = writeHeadWithoutProxyOnly as ServerResponse['writeHead']
    const url = req.url ?? '/'
    if (this.#route !== '/') {
      const rest = url.slice(this.#route.length)
      req.url = rest === '' || rest[0] === '?' ? `/${rest}` : rest
    }
    if (awaitingContinue && (req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length'] ?? 0) > 0)) res.writeContinue()
    return true
  }

  /**
   * Declines an upgrade offer on a handed-off connection that the host would not take (any but a
   * WebSocket), as the host does: the request is served as a plain one. True when it was.
   */
  declinesUpgrade (req: IncomingMessage, socket: Duplex, head: Buffer): boolean {
    if (!this.declines(req)) return false
    declineUpgrade(this.#server, req, socket, head)
    return true
  }

  /** Whether the host would decline this upgrade offer: on a handed-off connection, any but a WebSocket. */
  declines (req: IncomingMessage): boolean {
    return this.#connections.has(req.socket) && !isWebSocketOffer(req)
  }

  /**
   * Whether the host would pass `req` to this worker as it is. The host checked only the first
   * request of the connection, by its request line.
   */
  #isOwn (req: IncomingMessage): boolean {
    const url = req.url ?? '/'
    const path = pathOf(url)
    if (!path.startsWith('/') || isHostPath(url) || longestRoute(this.#routes, path) !== this.#route) return false
    if (!isSafePath(path) || this.#isPublicFile(req, path)) return false
    // The host answers a declared length over the limit with 413, and counts a body of undeclared
    // length (chunked) as it passes, which only its own proxy does.
    const { 'transfer-encoding': chunked, 'content-length': length } = req.headers
    return this.#bodyLimit === 0 || (chunked === undefined && Number(length ?? 0) <= this.#bodyLimit)
  }

  #accept (message: ConnectionMessage, socket: Socket): void {
    this.#host = message.host
    this.#routes = message.routes
    this.#bodyLimit = message.bodyLimit
    // For every connection of this server: those the host opens carry requests it has already
    // timed with the same limits, from an earlier start, so the host's own cut comes first.
    this.#server.headersTimeout = message.headersTimeout
    this.#server.requestTimeout = message.requestTimeout
    this.#connections.set(socket, { relay: message.relay })
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
    for (const [socket, { answer: res }] of this.#connections) {
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

  /**
   * Sends a request that is not this worker's to the host, on a connection of its own that starts
   * with this client connection's relay line, and the host's answer back.
   */
  #passBack (req: IncomingMessage, res: ServerResponse, relay: string, awaitingContinue: boolean): void {
    const host = new URL(this.#host)
    const upstream = request({
      method: req.method,
      path: req.url,
      // Without an agent Node would ask the host to close the connection, and the host's answer
      // would then close the client's: this connection is closed below anyway.
      headers: { connection: 'keep-alive', ...req.headers },
      createConnection: () => {
        const socket = connect(Number(host.port), host.hostname.replace(/^\[|\]$/g, ''))
        socket.write(relay, 'latin1')
        return socket
      }
    }, (answer) => {
      // Whether the client's connection stays open is this server's call, unless the host (or
      // the drain) closes it.
      const headers = { ...answer.headers }
      const closes = this.#draining || /\bclose\b/i.test(String(headers.connection ?? ''))
      delete headers.connection
      delete headers['keep-alive']
      if (closes) headers.connection = 'close'
      res.writeHead(answer.statusCode ?? 502, headers)
      answer.pipe(res)
    })
    // The host asks for the body (100 Continue) once it wants it, and the client waits for that.
    if (awaitingContinue) upstream.once('continue', () => res.writeContinue())
    // One request per connection: it is closed once the answer is written, or abandoned.
    res.once('close', () => upstream.destroy())
    upstream.once('error', () => res.destroy())
    req.pipe(upstream)
  }
}

/**
 * writeHead for the app's answers on a handed-off connection: leaves out what the host's proxy
 * leaves out of a worker's answer (hop-by-hop headers but the framing, those the answer's
 * Connection names, Proxy-Authenticate), whether the app set them before or gave them here. Node
 * calls writeHead for an implicit head too.
 */
function writeHeadWithoutProxyOnly (this: ServerResponse, statusCode: number, ...rest: unknown[]): ServerResponse {
  // Headers given to writeHead join those set before, as Node itself does when there are any.
  const at = rest.findIndex((arg) => typeof arg === 'object' && arg !== null && !Array.isArray(arg))
  if (at !== -1) {
    for (const [name, value] of Object.entries(rest[at] as OutgoingHttpHeaders)) if (value !== undefined) this.setHeader(name, value)
    rest.splice(at, 1)
  }
  const named = namedByConnection(this.getHeader('connection'))
  for (const name of this.getHeaderNames()) {
    if (DROPPED_RESPONSE.has(name) || (named.includes(name) && !KEPT_RESPONSE_HEADERS.has(name))) this.removeHeader(name)
  }
  return ServerResponse.prototype.writeHead.call(this, statusCode, ...rest as [])
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
