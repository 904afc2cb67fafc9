// Relayed connections: a connection that another process of ours (a worker passing back a request
// on a handed-off connection, or a data plane passing on a host path) opens to the host for a
// client. It starts with a relay line, `TQ-RELAY key address port [tls]`, and is then served as if
// the client had connected itself: /health, /metrics and X-Forwarded-For judge the client's
// address, not the loopback peer's, and X-Forwarded-Proto its scheme. The key proves the line
// comes from us. The relayed connection itself is plain HTTP/1.1 on loopback.
import { randomBytes, timingSafeEqual } from 'node:crypto'
import { createServer, isIP, type Server, type Socket } from 'node:net'
import type { Server as HttpServer } from 'node:http'
import type { Duplex } from 'node:stream'
import { Server as TlsServer } from 'node:tls'

export const RELAY_WORD = 'TQ-RELAY'
/** A relay line is short: the word, a 32-character key, an IPv6 address, a port. */
const MAX_RELAY_LINE_BYTES = 256
/** A relayed connection that sends no relay line within this is not one of ours. */
const RELAY_LINE_TIMEOUT_MS = 5_000

export function relayKey (): string {
  return randomBytes(24).toString('base64url')
}

/** The line that starts a connection relayed for the client at `address` and `port`, over TLS if `encrypted`. */
export function relayLine (key: string, address: string | undefined, port: number | undefined, encrypted = false): string {
  return `${RELAY_WORD} ${key} ${address ?? ''} ${port ?? ''}${encrypted ? ' tls' : ''}\r\n`
}

/**
 * Checks a relay line (without its CRLF) and gives the socket the client's address, as if the
 * client had connected itself. False for anything else.
 */
export function takeRelayLine (socket: Socket, line: string, key: string): boolean {
  const [word, given = '', address = '', port = '', scheme] = line.split(' ')
  const a = Buffer.from(given)
  const b = Buffer.from(key)
  if (word !== RELAY_WORD || a.length !== b.length || !timingSafeEqual(a, b)) return false
  if (isIP(address) === 0 || !/^\d{1,5}$/.test(port)) return false
  return speakFor(socket, address, Number(port), scheme === 'tls')
}

/**
 * Has `socket`, a connection of ours, pass for the client's: its address and port, and whether
 * the client's connection is TLS (what the proxy reads for X-Forwarded-Proto). Returns true.
 */
export function speakFor (socket: Duplex, address: string | undefined, port: number | undefined, encrypted: boolean): true {
  Object.defineProperties(socket, {
    remoteAddress: { value: address },
    remoteFamily: { value: isIP(address ?? '') === 6 ? 'IPv6' : 'IPv4' },
    remotePort: { value: port },
    encrypted: { value: encrypted },
    // An HTTP/2 server serves a connection whose ALPN chose HTTP/1.1 with its HTTP/1.1 parser.
    alpnProtocol: { value: 'http/1.1' }
  })
  return true
}

/**
 * Has `server` serve a connection of ours (speakFor) as it would a client's. An HTTPS server (with
 * HTTP/2) takes it as a decrypted one whose ALPN chose HTTP/1.1: the TLS was ended before.
 */
export function serveRelayed (server: HttpServer, socket: Duplex): void {
  if (!(server instanceof TlsServer)) return void server.emit('connection', socket)
  // Node 22's HTTP/1.1 parser on an HTTP/2 server takes the server from the socket, as TLS sets it.
  Object.assign(socket, { server })
  server.emit('secureConnection', socket)
}

/**
 * The control plane's end for data planes: a loopback port whose connections each start with a
 * relay line and are then served by `target` (the control plane's own HTTP server). A connection
 * without a valid line is closed.
 */
export class RelayListener {
  readonly #server: Server
  readonly #key: string

  constructor (target: HttpServer, key: string) {
    this.#key = key
    this.#server = createServer({ noDelay: true }, (socket) => this.#accept(socket, target))
  }

  /** Listens on a free loopback port and returns it. */
  async listen (): Promise<number> {
    await new Promise<void>((resolve, reject) => {
      this.#server.once('error', reject)
      this.#server.listen(0, '127.0.0.1', () => resolve())
    })
    return (this.#server.address() as { port: number }).port
  }

  close (): void {
    this.#server.close()
  }

  #accept (socket: Socket, target: HttpServer): void {
    let head = Buffer.alloc(0)
    const timer = setTimeout(() => socket.destroy(), RELAY_LINE_TIMEOUT_MS).unref()
    socket.on('error', () => {})
    const onData = (chunk: Buffer) => {
      head = Buffer.concat([head, chunk])
      const end = head.indexOf('\r\n')
      if (end === -1) {
        if (head.length > MAX_RELAY_LINE_BYTES) socket.destroy()
        return
      }
      socket.off('data', onData)
      clearTimeout(timer)
      socket.pause()
      if (!takeRelayLine(socket, head.toString('latin1', 0, end), this.#key)) return socket.destroy()
      if (head.length > end + 2) socket.unshift(head.subarray(end + 2))
      serveRelayed(target, socket)
      socket.resume()
    }
    socket.on('data', onData)
  }
}
