// Forwards one HTTP request to a worker and streams the answer back, on undici's low-level
// dispatch API: headers are copied once, bodies flow chunk by chunk with backpressure in both
// directions, and no intermediate stream or response object is built. This is the proxy's hot
// path (docs/performance.md): one handler object per request, its methods on the prototype, one
// listener on the response, and no closure made per request for the owner's part.
// A client that reads slowly gets up to responseBuffer bytes held for it before the worker's
// answer stops being read, so a short answer frees its worker connection at once, and is cut off
// when it leaves what is held unread for sendTimeout (docs/security.md).
import type { IncomingHttpHeaders, IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http'
import type { Readable } from 'node:stream'
import type { Dispatcher } from 'undici'
import type { UpstreamTraffic } from '../routing/upstream-traffic.js'
import { CLIENT_CLAIMS, isHttp1, namedByConnection, REQUEST_ONLY, RESPONSE_ONLY, setForwardingHeaders, type TrustFunction } from '../forwarded-headers.js'

export interface ForwardTarget {
  origin: string
  /** Path and query the worker sees. */
  path: string
  /** Route prefix, for X-Forwarded-Prefix ('/' sends none). */
  route: string
  timeout: number
}

/** What a client that reads slowly may hold (docs/security.md). */
export interface SendLimits {
  /** Bytes held for the client before the worker's answer stops being read. */
  responseBuffer: number
  /** How long the client may leave them unread before it is cut off (ms). */
  sendTimeout: number
}

const COLON = 0x3a

/** Client request headers as the worker should see them; `trust` decides whose forwarding headers count. */
export function upstreamHeaders (req: IncomingMessage, target: ForwardTarget, protocol: string, trust: TrustFunction): IncomingHttpHeaders {
  const source = req.headers
  const named = namedByConnection(source.connection)
  const trusted = trust(req.socket.remoteAddress ?? '', 0)
  const headers: IncomingHttpHeaders = {}
  for (const name in source) {
    // HTTP/2's pseudo-headers (:method, :path, :authority, :scheme) are not headers to pass on.
    if (name.charCodeAt(0) === COLON || REQUEST_ONLY.has(name) || named.includes(name) || (!trusted && CLIENT_CLAIMS.has(name))) continue
    headers[name] = source[name]
  }
  return setForwardingHeaders(headers, req, target.route, protocol, trust)
}

/** What a Forwarding asks of its owner (the request router): made once, for every request. */
export interface ForwardOwner<T extends ForwardTarget> {
  /** Where the request counts as waiting on its instance until its answer starts (hang detection). */
  traffic: UpstreamTraffic
  limits: SendLimits
  /** The response closed, whatever became of it. */
  closed: (forwarding: Forwarding<T>) => void
  /** The response headers are about to be written: last chance to change them; returns what to append to the body (dev live reload), if anything. */
  responseHeaders: (forwarding: Forwarding<T>, statusCode: number, headers: OutgoingHttpHeaders) => string | undefined
  /** The worker could not be reached, timed out or broke off before answering. */
  failed: (forwarding: Forwarding<T>, error: Error & { code?: string }) => void
}

/**
 * One request on its way to a worker and its answer on the way back: undici's handler, with one
 * 'close' listener on the response, which ends the request for the owner and, if the answer is
 * not done, stops the upstream request too.
 */
export class Forwarding<T extends ForwardTarget> implements Dispatcher.DispatchHandler {
  readonly req: IncomingMessage
  readonly res: ServerResponse
  readonly target: T
  readonly #owner: ForwardOwner<T>
  #hasBody = false
  #waiting = true
  #trailer: string | undefined
  #controller: Dispatcher.DispatchController | undefined
  #ended = false
  // Armed when the client's socket cannot take a write at once, until what is held is taken.
  #sendTimer: NodeJS.Timeout | undefined
  #paused: Dispatcher.DispatchController | undefined
  #isListening = false

  constructor (owner: ForwardOwner<T>, req: IncomingMessage, res: ServerResponse, target: T) {
    this.#owner = owner
    this.req = req
    this.res = res
    this.target = target
    res.on('close', () => {
      owner.closed(this)
      this.#stopWaiting(false)
      // The client went away before the worker finished.
      if (!this.#ended && !res.writableFinished) this.#controller?.abort(new Error('client closed the connection'))
    })
  }

  start (dispatcher: Dispatcher, headers: IncomingHttpHeaders, body: Buffer | Readable | null): void {
    const { target } = this
    this.#hasBody = body !== null
    this.#owner.traffic.awaitAnswer(target.origin)
    dispatcher.dispatch({
      origin: target.origin,
      path: target.path,
      method: this.req.method as Dispatcher.HttpMethod,
      headers,
      body,
      headersTimeout: target.timeout,
      bodyTimeout: target.timeout
    }, this)
  }

  onRequestStart (controller: Dispatcher.DispatchController): void {
    this.#controller = controller
    if (this.res.destroyed) controller.abort(new Error('client closed the connection'))
  }

  onResponseStart (_controller: Dispatcher.DispatchController, statusCode: number, upstream: IncomingHttpHeaders): void {
    this.#stopWaiting(true)
    const out: OutgoingHttpHeaders = {}
    const named = namedByConnection(upstream.connection)
    for (const name in upstream) if (!RESPONSE_ONLY.has(name) && !named.includes(name)) out[name] = upstream[name]
    const trailer = this.#trailer = this.#owner.responseHeaders(this, statusCode, out)
    if (trailer !== undefined) delete out['content-length']
    // An answer before the whole request body was read leaves an HTTP/1.1 connection unusable.
    if (this.#hasBody && !this.req.complete && isHttp1(this.req)) out.connection = 'close'
    this.res.writeHead(statusCode, out)
  }

  onResponseData (controller: Dispatcher.DispatchController, chunk: Buffer): void {
    const { res } = this
    if (res.write(chunk)) return
    if (this.#sendTimer === undefined) this.#awaitClient()
    if (res.writableLength >= this.#owner.limits.responseBuffer) {
      controller.pause()
      this.#paused = controller
    }
  }

  onResponseEnd (): void {
    this.#ended = true
    this.res.end(this.#trailer)
  }

  onResponseError (_controller: Dispatcher.DispatchController, error: Error): void {
    this.#ended = true
    if (this.res.headersSent) this.res.destroy(error)
    else if (!this.res.destroyed) this.#owner.failed(this, error)
  }

  #stopWaiting (answered: boolean): void {
    if (!this.#waiting) return
    this.#waiting = false
    this.#owner.traffic.stopWaiting(this.target.origin, answered)
  }

  #awaitClient (): void {
    const { res } = this
    this.#sendTimer = setTimeout(() => res.destroy(), this.#owner.limits.sendTimeout)
    if (this.#isListening) return
    this.#isListening = true
    const taken = () => {
      clearTimeout(this.#sendTimer)
      this.#sendTimer = undefined
      // resume() may hand over the next chunks at once, and pause again.
      const resumed = this.#paused
      this.#paused = undefined
      resumed?.resume()
    }
    res.on('drain', taken).once('finish', taken).once('close', taken)
  }
}
