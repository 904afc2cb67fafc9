// A WebSocket upgrade passed to a worker as a gateway should (RFC 9110 7.8): the upgrade request
// goes to the worker first, and the client gets the worker's own answer, its 101 or anything else
// (404, 426, 503), as the worker sent it. After a 101 the connection is a byte tunnel both ways:
// frames are not decoded and built again, only the worker's frame headers are read, so that the
// host can close the client's side at a frame boundary (1012, service restart) when the worker
// retires. Control frames may come between the fragments of a message (RFC 6455 5.4).
import { request, STATUS_CODES, type ClientRequest, type IncomingHttpHeaders, type IncomingMessage } from 'node:http'
import type { Duplex } from 'node:stream'

/** After the host's close frame, how long the client has to answer it before the tunnel is cut. */
const CLOSE_GRACE_MS = 5_000
/** Response headers that describe the worker's connection, not the client's. */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'proxy-connection'])

export interface TunnelOptions {
  /** The client's socket, as the HTTP server's 'upgrade' event gave it, and the bytes read past the head. */
  socket: Duplex
  head: Buffer
  origin: string
  /** Path and query the worker sees. */
  path: string
  /** The upgrade request's headers for the worker (Connection and Upgrade included). */
  headers: IncomingHttpHeaders
  /** The worker could not be reached, or was given up on (nothing was sent to the client yet: answer it). */
  onError: (error: Error) => void
  /** The wait for the worker's answer to the upgrade ended: `answered`, or given up. Called once. */
  onWaited: (answered: boolean) => void
}

export class WebSocketTunnel {
  readonly #options: TunnelOptions
  readonly #frames = new FrameBoundaries()
  #upstream: Duplex | undefined
  /** Set by restart(): the close frame waits for the end of the frame being relayed. */
  #closeFrame: Buffer | undefined
  #request: ClientRequest | undefined
  #waiting = true
  /** The worker's answer to the handshake: 101, or the status it refused with; 0 before (or none). */
  statusCode = 0

  constructor (options: TunnelOptions) {
    this.#options = options
  }

  open (): void {
    const { socket, head, origin, path, headers, onError } = this.#options
    const { hostname, port } = new URL(origin)
    const upstream = request({ host: hostname, port, path, method: 'GET', headers, agent: false })
    this.#request = upstream
    upstream.on('error', (err) => {
      if (this.#upstream) return this.#upstream.destroy()
      if (!this.#waiting) return
      this.#waited(false)
      onError(err)
    })
    socket.on('error', () => upstream.destroy())
    // The HTTP server keeps sockets half-open: a client that gives up before the answer only ends its side.
    socket.once('end', () => { if (this.#waiting) socket.destroy() })
    socket.once('close', () => {
      this.#waited(false)
      upstream.destroy()
      this.#upstream?.destroy()
    })
    upstream.on('response', (res) => {
      this.#waited(true)
      this.statusCode = res.statusCode ?? 0
      this.#answer(res)
    })
    upstream.on('upgrade', (res, worker, workerHead) => {
      this.#waited(true)
      this.statusCode = 101
      this.#upstream = worker
      socket.write(responseHead(res, false))
      if (workerHead.length > 0) this.#relay(workerHead)
      if (head.length > 0) worker.write(head)
      worker.on('data', (chunk: Buffer) => this.#relay(chunk))
      worker.on('error', () => socket.destroy())
      worker.once('close', () => socket.end())
      socket.pipe(worker)
    })
    upstream.end()
  }

  /** Gives up waiting for the worker's answer (it hangs) with `error` for the client, if still waiting. */
  abandon (error: Error): void {
    if (!this.#waiting) return
    this.#waited(false)
    this.#request?.destroy()
    this.#options.onError(error)
  }

  #waited (answered: boolean): void {
    if (!this.#waiting) return
    this.#waiting = false
    this.#options.onWaited(answered)
  }

  /**
   * Closes the client's side with `code` once the worker's current frame has been relayed; what
   * the worker sends after is dropped, the client's answer still reaches it.
   */
  restart (code = 1012, reason = 'service restart'): void {
    if (this.#closeFrame || !this.#upstream) return
    this.#closeFrame = closeFrame(code, reason)
    if (this.#frames.atBoundary) this.#sendClose()
  }

  /** Bytes from the worker to the client, cut at the first frame boundary once a close is due. */
  #relay (chunk: Buffer): void {
    if (this.#closeFrame === undefined) {
      this.#frames.ends(chunk)
      this.#options.socket.write(chunk)
      return
    }
    if (this.#frames.closed) return
    const end = this.#frames.ends(chunk)[0]
    if (end === undefined) {
      this.#options.socket.write(chunk)
      return
    }
    this.#options.socket.write(chunk.subarray(0, end))
    this.#sendClose()
  }

  #sendClose (): void {
    const { socket } = this.#options
    this.#frames.closed = true
    socket.write(this.#closeFrame!)
    setTimeout(() => socket.destroy(), CLOSE_GRACE_MS).unref()
  }

  /** Not an upgrade: the worker's answer goes to the client as it is, and the connection ends. */
  #answer (res: IncomingMessage): void {
    const { socket } = this.#options
    socket.write(responseHead(res, true))
    res.pipe(socket)
  }
}

/** The status line and headers of the worker's answer, for the client's connection. */
function responseHead (res: IncomingMessage, closing: boolean): string {
  let head = `HTTP/1.1 ${res.statusCode} ${res.statusMessage || STATUS_CODES[res.statusCode!] || ''}\r\n`
  const raw = res.rawHeaders
  for (let i = 0; i < raw.length; i += 2) {
    // After a 101 the Connection and Upgrade headers are the handshake itself.
    if (closing && HOP_BY_HOP.has(raw[i]!.toLowerCase())) continue
    head += `${raw[i]}: ${raw[i + 1]}\r\n`
  }
  return head + (closing ? 'connection: close\r\n\r\n' : '\r\n')
}

function closeFrame (code: number, reason: string): Buffer {
  const text = Buffer.from(reason)
  const frame = Buffer.alloc(4 + text.length)
  frame[0] = 0x88 // FIN, close
  frame[1] = 2 + text.length
  frame.writeUInt16BE(code, 2)
  text.copy(frame, 4)
  return frame
}

/** Follows WebSocket frame headers in a byte stream, to know where each frame ends. */
export class FrameBoundaries {
  /** No more frames are relayed (the host sent its close frame). */
  closed = false
  #header = Buffer.alloc(0)
  #payloadLeft = 0

  get atBoundary (): boolean {
    return this.#payloadLeft === 0 && this.#header.length === 0
  }

  /** The offsets in `chunk` just past each frame that ends in it. */
  ends (chunk: Buffer): number[] {
    const ends: number[] = []
    let at = 0
    while (at < chunk.length) {
      if (this.#payloadLeft > 0) {
        const take = Math.min(this.#payloadLeft, chunk.length - at)
        at += take
        this.#payloadLeft -= take
        if (this.#payloadLeft === 0) ends.push(at)
        continue
      }
      const needed = headerLength(this.#header)
      const take = Math.min(needed - this.#header.length, chunk.length - at)
      this.#header = Buffer.concat([this.#header, chunk.subarray(at, at + take)])
      at += take
      if (this.#header.length < headerLength(this.#header)) continue
      this.#payloadLeft = payloadLength(this.#header)
      this.#header = Buffer.alloc(0)
      if (this.#payloadLeft === 0) ends.push(at)
    }
    return ends
  }
}

/** The length of a frame header, as far as its first two bytes tell (2 until they are known). */
function headerLength (header: Buffer): number {
  if (header.length < 2) return 2
  const length7 = header[1]! & 0x7f
  return 2 + (length7 === 126 ? 2 : length7 === 127 ? 8 : 0) + (header[1]! & 0x80 ? 4 : 0)
}

function payloadLength (header: Buffer): number {
  const length7 = header[1]! & 0x7f
  if (length7 === 126) return header.readUInt16BE(2)
  if (length7 === 127) return Number(header.readBigUInt64BE(2))
  return length7
}
