// HTTP/1.1 spoken by hand over node:net, for what a client library would refuse or rewrite: a
// path sent byte for byte (.., backslashes, %-escapes), hop-by-hop headers, half a request line.
// Answers are read off the connection one at a time, and its close is timed.
import { connect, type Socket } from 'node:net'
import type { TestContext } from 'node:test'
import { defer } from './cleanup.js'
import { within } from './wait.js'

export interface RawResponse {
  status: number
  /** Lower-case names; repeated headers joined with ', '. */
  headers: Record<string, string>
  body: string
}

export class RawConnection {
  readonly socket: Socket
  /** Everything the server sent on this connection, latin1. */
  received = ''
  /** Resolves with Date.now() when the connection is closed (by either side, or reset). */
  readonly closed: Promise<number>
  #consumed = 0
  #notify = new Set<() => void>()

  constructor (socket: Socket) {
    this.socket = socket
    socket.setEncoding('latin1')
    socket.on('data', (chunk: string) => {
      this.received += chunk
      for (const notify of this.#notify) notify()
    })
    // A reset is a close too: the tests look at when, not how.
    socket.on('error', () => {})
    this.closed = new Promise((resolve) => socket.once('close', () => {
      const at = Date.now()
      for (const notify of this.#notify) notify()
      resolve(at)
    }))
  }

  get isClosed (): boolean {
    return this.socket.destroyed
  }

  send (text: string): void {
    this.socket.write(text, 'latin1')
  }

  /** The next complete answer on the connection (`head`: the request was a HEAD, so no body). */
  response (ms: number, what = 'an answer', head = false): Promise<RawResponse> {
    let notify: (() => void) | undefined
    return within(ms, what, new Promise<RawResponse>((resolve, reject) => {
      notify = () => {
        const parsed = parseResponse(this.received.slice(this.#consumed), head, this.isClosed)
        if (parsed) {
          this.#consumed += parsed.length
          resolve(parsed.response)
        } else if (this.isClosed) {
          reject(new Error(`the connection closed before ${what} was complete; received: ${JSON.stringify(this.received.slice(this.#consumed, this.#consumed + 300))}`))
        }
      }
      this.#notify.add(notify)
      notify()
    })).finally(() => this.#notify.delete(notify!))
  }

  /** Resolves with the close time once the server closes the connection. */
  whenClosed (ms: number, what = 'the server to close the connection'): Promise<number> {
    return within(ms, what, this.closed)
  }
}

/** Opens a connection to the server at `url`; destroyed after the test. */
export async function openRaw (t: TestContext, url: string): Promise<RawConnection> {
  const { hostname, port } = new URL(url)
  const socket = connect(Number(port), hostname)
  defer(t, () => socket.destroy())
  await within(10_000, `a connection to ${url}`, new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve)
    socket.once('error', reject)
  }))
  return new RawConnection(socket)
}

/**
 * Sends raw bytes in pieces, `gapMs` apart (a slow client: time itself is under test), and
 * resolves with everything the server sent once it closes the connection.
 */
export async function sendRaw (t: TestContext, url: string, pieces: string[], gapMs = 0): Promise<string> {
  const connection = await openRaw(t, url)
  for (const [index, piece] of pieces.entries()) {
    if (connection.isClosed) break
    if (index > 0) await new Promise((resolve) => setTimeout(resolve, gapMs))
    connection.send(piece)
  }
  await connection.whenClosed(60_000)
  return connection.received
}

/** Sends one request with `Connection: close` added, and resolves with its answer. */
export async function rawRequest (t: TestContext, url: string, method: string, path: string, headers: string[] = []): Promise<RawResponse> {
  const connection = await openRaw(t, url)
  connection.send(`${method} ${path} HTTP/1.1\r\nHost: tq.test\r\n${[...headers, 'Connection: close'].map((line) => `${line}\r\n`).join('')}\r\n`)
  return await connection.response(10_000, `an answer to ${method} ${path}`, method === 'HEAD')
}

function parseResponse (text: string, head: boolean, closed: boolean): { response: RawResponse, length: number } | undefined {
  const end = text.indexOf('\r\n\r\n')
  if (end === -1) return undefined
  const [statusLine = '', ...lines] = text.slice(0, end).split('\r\n')
  const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(statusLine)?.[1] ?? NaN)
  const headers: Record<string, string> = {}
  for (const line of lines) {
    const colon = line.indexOf(':')
    const name = line.slice(0, colon).trim().toLowerCase()
    const value = line.slice(colon + 1).trim()
    headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`
  }
  const bodyStart = end + 4
  if (head || status === 204 || status === 304 || (status >= 100 && status < 200)) {
    return { response: { status, headers, body: '' }, length: bodyStart }
  }
  if (/chunked/i.test(headers['transfer-encoding'] ?? '')) {
    let at = bodyStart
    let body = ''
    while (true) {
      const lineEnd = text.indexOf('\r\n', at)
      if (lineEnd === -1) return undefined
      const size = parseInt(text.slice(at, lineEnd), 16)
      if (size === 0) {
        const trailerEnd = text.indexOf('\r\n\r\n', lineEnd)
        const finalEnd = text.startsWith('\r\n', lineEnd + 2) ? lineEnd + 4 : trailerEnd === -1 ? -1 : trailerEnd + 4
        if (finalEnd === -1) return undefined
        return { response: { status, headers, body }, length: finalEnd }
      }
      if (text.length < lineEnd + 2 + size + 2) return undefined
      body += text.slice(lineEnd + 2, lineEnd + 2 + size)
      at = lineEnd + 2 + size + 2
    }
  }
  if (headers['content-length'] !== undefined) {
    const length = Number(headers['content-length'])
    if (text.length < bodyStart + length) return undefined
    return { response: { status, headers, body: text.slice(bodyStart, bodyStart + length) }, length: bodyStart + length }
  }
  // No length: the body runs to the close.
  return closed ? { response: { status, headers, body: text.slice(bodyStart) }, length: text.length } : undefined
}
