// Connection hand-off (opt-in: `handoff: true`), host side. The host accepts client connections
// itself, reads the first request's head, and passes each connection for a worker that can take
// it (an SDK worker) to that worker's process over IPC, with the bytes already read and the rules
// the host would apply to its requests (body limit, header and request timeouts). The worker then
// serves the connection directly: the host does no work for its requests. Everything else (the
// host's own paths, public/ files, other workers, no healthy instance, upgrades, a worker whose
// rules cannot be kept there) goes to the host's HTTP server as usual.
//
// A later request on a handed-off connection that the worker must not answer itself (another
// route, a host path, a path or body the host refuses) is passed back on a new connection to this
// front that starts with a relay line: the host's secret key and the client's address. Such a
// connection is never handed off; it is served as if the client had sent the request directly,
// with the client's address as its peer, so /health, /metrics and X-Forwarded-For judge the
// client, not the worker. What hand-off costs is in docs/performance.md, what it keeps in
// docs/security.md.
import { createServer, type Server, type Socket } from 'node:net'
import type { Server as HttpServer } from 'node:http'
import type { Logger } from '../logger.js'
import type { RouteTable } from '../routing/route-table.js'
import type { UpstreamEvents } from '../routing/upstream-events.js'
import { isHostPath, isSafePath } from '../url-paths.js'
import { RELAY_WORD, relayKey, relayLine, takeRelayLine } from './relay.js'

/** A request line longer than this is not HTTP we serve. */
const MAX_REQUEST_LINE_BYTES = 16 * 1024
/**
 * Nor a head longer than this. Node's parser allows 16 KiB of it (431 beyond), not counting
 * separators, so every head it could accept fits, and it answers the rest as on the default path.
 */
const MAX_HEAD_BYTES = 32 * 1024
/** A request a worker passes back starts with a relay line (relay.ts). */
const RELAY_PREFIX = Buffer.from(`${RELAY_WORD} `)
/** An Upgrade header: WebSocket and other upgrades take the default path (Fastify, the tunnel). */
const UPGRADE_HEADER = /\r\nupgrade[ \t]*:/i

export interface HandoffOptions {
  routes: RouteTable
  upstreams: UpstreamEvents
  /** The host's own HTTP server (not listening on the public port): it gets what is not handed off. */
  local: HttpServer
  /** A client must send its first request's head within this (slowloris); given to workers too. */
  headersTimeout: number
  /** Given to workers, for the requests they read themselves. */
  requestTimeout: number
  /** Every request must be logged: the host sees none on a handed-off connection, so none is. */
  accessLog: boolean
  log: Logger
}

export class HandoffFront {
  readonly server: Server
  readonly #options: HandoffOptions
  /** Proves a relay line comes from one of our workers; they get it with each connection. */
  readonly #relayKey = relayKey()
  #address = ''

  constructor (options: HandoffOptions) {
    this.#options = options
    this.server = createServer({ noDelay: true }, (socket) => this.#accept(socket))
    // Retired instances are told to close their handed-off connections, which are counted in
    // flight until they do: the drain waits for them.
    options.upstreams.on('draining', (origin) => options.routes.instanceAt(origin)?.process?.drainConnections())
    if (options.accessLog) options.log.warn({ handoff: true, accessLog: true }, 'no connection is handed off: the access log needs every request seen by the host')
  }

  async listen (port: number, host: string): Promise<string> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject)
      this.server.listen(port, host, () => resolve())
    })
    const address = this.server.address() as { port: number, address: string, family: string }
    const reachable = address.address === '0.0.0.0' || address.address === '::' ? '127.0.0.1' : address.address
    this.#address = `http://${address.family === 'IPv6' && reachable !== '127.0.0.1' ? `[${reachable}]` : reachable}:${address.port}`
    return this.#address
  }

  #accept (socket: Socket): void {
    let head: Buffer = Buffer.alloc(0)
    let hasFirstLine = false
    let isRelayed = false
    // Counted from the connection, not from the last byte (as socket.setTimeout would): a client
    // trickling its head a byte at a time is cut off like one that sends nothing.
    const timer = setTimeout(() => socket.destroy(), this.#options.headersTimeout).unref()
    socket.once('close', () => clearTimeout(timer))
    socket.on('error', () => {})
    const onData = (chunk: Buffer) => {
      head = head.length === 0 ? chunk : Buffer.concat([head, chunk])
      const lineEnd = head.indexOf('\r\n')
      if (lineEnd === -1) {
        if (head.length > MAX_REQUEST_LINE_BYTES) socket.destroy()
        return
      }
      // A relay line that does not check out is just a bad request line: Node answers it with 400.
      if (!hasFirstLine) {
        hasFirstLine = true
        if (head.subarray(0, RELAY_PREFIX.length).equals(RELAY_PREFIX) && takeRelayLine(socket, head.toString('latin1', 0, lineEnd), this.#relayKey)) {
          isRelayed = true
          head = head.subarray(lineEnd + 2)
          return onData(Buffer.alloc(0))
        }
      }
      const headEnd = head.indexOf('\r\n\r\n')
      if (headEnd === -1) {
        if (head.length > MAX_HEAD_BYTES) socket.destroy()
        return
      }
      socket.off('data', onData)
      clearTimeout(timer)
      socket.pause()
      const headText = head.toString('latin1', 0, headEnd + 2)
      if (isRelayed || this.#options.accessLog || UPGRADE_HEADER.test(headText)) return this.#serveLocally(socket, head)
      this.#route(socket, head, headText.slice(0, lineEnd))
    }
    socket.on('data', onData)
  }

  #route (socket: Socket, head: Buffer, requestLine: string): void {
    const { routes } = this.#options
    const url = requestLine.split(' ')[1] ?? ''
    const match = url.startsWith('/') && !isHostPath(url) ? routes.match(url) : undefined
    // A worker that recycles after maxRequests needs each request counted: the host must see them.
    const servable = match && isSafePath(match.forwardPath) && !match.entry.staticFiles.has(match.forwardPath) && match.entry.spec.maxRequests === 0
    const entry = servable ? match.entry : undefined
    const origin = entry ? routes.acquire(entry) : undefined
    const worker = origin ? routes.instanceAt(origin)?.process : undefined
    if (!entry || !origin || !worker?.acceptsConnections) {
      if (origin) routes.traffic.leave(origin)
      return this.#serveLocally(socket, head)
    }
    // Stop reading for good before the handle travels: paused or not, a stream may read again
    // on its own, and bytes read here after the hand-off would be lost.
    const handle = (socket as unknown as { _handle?: { readStop: () => void } })._handle
    handle?.readStop()
    ;(socket as unknown as { _read: () => void })._read = () => {}
    let rest = socket.read() as Buffer | null
    while (rest) {
      head = Buffer.concat([head, rest])
      rest = socket.read() as Buffer | null
    }
    // The connection counts in flight on the instance until the worker reports it closed (the
    // drain waits for it), but not as a request: the host does not see its requests.
    worker.onConnectionReleased ??= () => routes.traffic.leave(origin)
    const enabled = routes.workers().filter((entry) => entry.spec.enabled).map((entry) => entry.spec.route)
    const { headersTimeout, requestTimeout } = this.#options
    worker.handOff(socket, {
      head: head.toString('latin1'),
      host: this.#address,
      routes: enabled,
      relay: relayLine(this.#relayKey, socket.remoteAddress, socket.remotePort),
      bodyLimit: entry.spec.bodyLimit,
      headersTimeout,
      requestTimeout
    }, (sent) => {
      if (sent) return
      routes.traffic.leave(origin)
      socket.destroy()
    })
  }

  #serveLocally (socket: Socket, head: Buffer): void {
    socket.unshift(head)
    this.#options.local.emit('connection', socket)
    socket.resume()
  }
}
