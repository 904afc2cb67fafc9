// Connection hand-off (opt-in: `handoff: true`), host side. The host accepts client connections
// itself, reads only the first request line, and passes each connection for a worker that can
// take it (an SDK worker) to that worker's process over IPC, with the bytes already read. The
// worker then serves the connection directly: the host does no work for its requests. Everything
// else (the host's own paths, public/ files, other workers, no healthy instance) goes to the
// host's HTTP server as usual. What it costs is in docs/performance.md: the host sees no request
// on a handed-off connection (no per-request counters, no access log), a request for another
// route on such a connection is passed back through the host, and TLS cannot be handed off.
import { createServer, type Server, type Socket } from 'node:net'
import type { Server as HttpServer } from 'node:http'
import type { Logger } from '../logger.js'
import type { RouteTable } from '../routing/route-table.js'
import type { UpstreamEvents } from '../routing/upstream-events.js'
import { isHostPath, isSafePath } from '../url-paths.js'

/** A request line longer than this is not HTTP we serve. */
const MAX_REQUEST_LINE_BYTES = 16 * 1024

export interface HandoffOptions {
  routes: RouteTable
  upstreams: UpstreamEvents
  /** The host's own HTTP server (not listening on the public port): it gets what is not handed off. */
  local: HttpServer
  /** A client must send its request line within this (slowloris). */
  headersTimeout: number
  log: Logger
}

export class HandoffFront {
  readonly server: Server
  readonly #options: HandoffOptions
  #address = ''

  constructor (options: HandoffOptions) {
    this.#options = options
    this.server = createServer({ noDelay: true }, (socket) => this.#accept(socket))
    // Retired instances are told to close their handed-off connections, which are counted in
    // flight until they do: the drain waits for them.
    options.upstreams.on('draining', (origin) => options.routes.instanceAt(origin)?.process?.drainConnections())
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
    // Counted from the connection, not from the last byte (as socket.setTimeout would): a client
    // trickling its request line a byte at a time is cut off like one that sends nothing.
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
      socket.off('data', onData)
      clearTimeout(timer)
      socket.pause()
      this.#route(socket, head, head.toString('latin1', 0, lineEnd))
    }
    socket.on('data', onData)
  }

  #route (socket: Socket, head: Buffer, requestLine: string): void {
    const { routes } = this.#options
    const url = requestLine.split(' ')[1] ?? ''
    const match = url.startsWith('/') && !isHostPath(url) ? routes.match(url) : undefined
    const servable = match && isSafePath(match.forwardPath) && !match.entry.staticFiles.has(match.forwardPath)
    const origin = servable ? routes.acquire(match.entry) : undefined
    const worker = origin ? routes.instanceAt(origin)?.process : undefined
    if (!origin || !worker?.acceptsConnections) {
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
    worker.handOff(socket, { head: head.toString('latin1'), host: this.#address, routes: enabled }, (sent) => {
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
