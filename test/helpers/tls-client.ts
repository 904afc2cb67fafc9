// Clients for a server that speaks TLS: one request over HTTP/2 (node:http2) or HTTP/1.1 (undici),
// and a bare handshake that tells what the server offered (ALPN, TLS version, certificate, resumption).
import { randomBytes } from 'node:crypto'
import { connect as connectHttp2 } from 'node:http2'
import { connect as connectTls, type ConnectionOptions } from 'node:tls'
import { Client } from 'undici'

export interface Answer {
  status: number
  headers: Record<string, string | string[] | undefined>
  body: string
}

export interface RequestOptions {
  method?: string
  body?: string
  /** Take whatever certificate the server shows (one from a CA made at the test's start). */
  insecure?: boolean
}

/** One request on a new HTTP/2 connection, closed after it. */
export function h2Request (url: string, path: string, ca: string, { method = 'GET', body, insecure = false }: RequestOptions = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const session = connectHttp2(url, insecure ? { rejectUnauthorized: false } : { ca })
    session.on('error', reject)
    const stream = session.request({ ':path': path, ':method': method })
    let text = ''
    let head: Record<string, string | string[] | undefined> = {}
    stream.setEncoding('utf8')
    stream.on('response', (headers) => { head = headers })
    stream.on('data', (chunk: string) => { text += chunk })
    stream.on('end', () => {
      session.close()
      resolve({ status: Number(head[':status']), headers: head, body: text })
    })
    stream.on('error', reject)
    stream.end(body)
  })
}

/** One request over HTTPS/1.1 on a new connection (undici negotiates http/1.1 only). */
export async function h1Request (url: string, path: string, ca: string, { method = 'GET', body, insecure = false }: RequestOptions = {}): Promise<Answer> {
  const client = new Client(url, { connect: insecure ? { rejectUnauthorized: false } : { ca } })
  try {
    const res = await client.request({ path, method: method as 'GET', body })
    return { status: res.statusCode, headers: res.headers, body: await res.body.text() }
  } finally {
    await client.close()
  }
}

export interface Handshake {
  alpn: string | false
  protocol: string | null
  serial: string
  reused: boolean
  /** The session to resume with, once the server sent a ticket (TLS 1.3 sends it after the handshake). */
  session: Buffer | undefined
}

/** A TLS handshake on a new connection, closed once the server's session ticket (if any) came. */
export function handshake (port: number, options: ConnectionOptions = {}): Promise<Handshake> {
  return new Promise((resolve, reject) => {
    const socket = connectTls({ port, host: '127.0.0.1', servername: 'localhost', ...options })
    let session: Buffer | undefined
    socket.on('session', (ticket: Buffer) => { session = ticket })
    socket.once('error', reject)
    socket.once('secureConnect', () => {
      const result = () => ({ alpn: socket.alpnProtocol ?? false, protocol: socket.getProtocol(), serial: socket.getPeerCertificate().serialNumber, reused: socket.isSessionReused(), session })
      // The ticket may come after the handshake (always in TLS 1.3): wait for one, unless resuming.
      if (session !== undefined || socket.isSessionReused()) {
        resolve(result())
        socket.end()
        return
      }
      socket.once('session', () => {
        resolve(result())
        socket.end()
      })
    })
  })
}

export interface Http2WebSocket {
  /** The answer to the extended CONNECT: 200 when the WebSocket is open. */
  status: number
  /** The next text message from the server. */
  next: () => Promise<string>
  send: (text: string) => void
  close: () => void
}

/**
 * A WebSocket over HTTP/2 (RFC 8441) on a new connection, speaking the frames by hand (text
 * messages under 126 bytes, as the tests send): Node's WebSocket clients speak only HTTP/1.1.
 */
export function h2WebSocket (url: string, path: string, ca: string): Promise<Http2WebSocket> {
  return new Promise((resolve, reject) => {
    const session = connectHttp2(url, { ca })
    session.once('error', reject)
    session.once('remoteSettings', (settings) => {
      if (!settings.enableConnectProtocol) return reject(new Error('the server does not offer extended CONNECT'))
      const stream = session.request({ ':method': 'CONNECT', ':protocol': 'websocket', ':path': path, ':scheme': 'https', ':authority': new URL(url).host, 'sec-websocket-version': '13' })
      stream.once('error', reject)
      let buffered = Buffer.alloc(0)
      const waiting: Array<(text: string) => void> = []
      stream.on('data', (chunk: Buffer) => {
        buffered = Buffer.concat([buffered, chunk])
        while (buffered.length >= 2 && buffered.length >= 2 + (buffered[1]! & 0x7f)) {
          const length = buffered[1]! & 0x7f
          const text = buffered.subarray(2, 2 + length).toString()
          buffered = buffered.subarray(2 + length)
          waiting.shift()?.(text)
        }
      })
      stream.once('response', (headers) => resolve({
        status: Number(headers[':status']),
        next: () => new Promise((resolve) => waiting.push(resolve)),
        send: (text) => {
          const payload = Buffer.from(text)
          const mask = randomBytes(4)
          stream.write(Buffer.concat([Buffer.from([0x81, 0x80 | payload.length]), mask, payload.map((byte, i) => byte ^ mask[i % 4]!)]))
        },
        close: () => session.destroy()
      }))
    })
  })
}

/** The status and first bytes of an answer that does not end (an event stream), on a new HTTP/2 connection, closed then. */
export function h2FirstBytes (url: string, path: string, ca: string): Promise<{ status: number, text: string }> {
  return new Promise((resolve, reject) => {
    const session = connectHttp2(url, { ca })
    session.on('error', reject)
    const stream = session.request({ ':path': path })
    let status = 0
    stream.on('response', (headers) => { status = Number(headers[':status']) })
    stream.once('data', (chunk: Buffer) => {
      resolve({ status, text: chunk.toString() })
      session.destroy()
    })
    stream.on('error', reject)
  })
}
