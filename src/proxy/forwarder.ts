// Forwards one HTTP request to a worker and streams the answer back, on undici's low-level
// dispatch API: headers are copied once, bodies flow chunk by chunk with backpressure in both
// directions, and no intermediate stream or response object is built. This is the proxy's hot
// path (docs/performance.md); reply-from did the same with about twice the work per request.
// A client that reads slowly gets up to responseBuffer bytes held for it before the worker's
// answer stops being read, so a short answer frees its worker connection at once, and is cut off
// when it leaves what is held unread for sendTimeout (docs/security.md).
import type { IncomingHttpHeaders, IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http'
import type { Readable } from 'node:stream'
import type { Dispatcher } from 'undici'
import { CLIENT_CLAIMS, namedByConnection, REQUEST_ONLY, RESPONSE_ONLY, setForwardingHeaders, type TrustFunction } from '../forwarded-headers.js'

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

export interface ForwardHooks {
  /** The response headers are about to be written: last chance to change them. */
  onResponseHeaders?: (statusCode: number, headers: OutgoingHttpHeaders) => void
  /** Appended to the body (dev live reload); given, the length header is dropped. */
  trailer?: (statusCode: number, headers: OutgoingHttpHeaders) => string | undefined
  /** The worker could not be reached, timed out or broke off before answering. */
  onError: (error: Error & { code?: string }) => void
}

/** Client request headers as the worker should see them; `trust` decides whose forwarding headers count. */
export function upstreamHeaders (req: IncomingMessage, target: ForwardTarget, protocol: string, trust: TrustFunction): IncomingHttpHeaders {
  const source = req.headers
  const named = source.connection === undefined ? undefined : namedByConnection(source.connection)
  const trusted = trust(req.socket.remoteAddress ?? '', 0)
  const headers: IncomingHttpHeaders = {}
  for (const name in source) {
    if (REQUEST_ONLY.has(name) || named?.includes(name) === true || (!trusted && CLIENT_CLAIMS.has(name))) continue
    headers[name] = source[name]
  }
  return setForwardingHeaders(headers, req, target.route, protocol, trust)
}

export function forward (dispatcher: Dispatcher, req: IncomingMessage, res: ServerResponse, target: ForwardTarget,
  headers: IncomingHttpHeaders, body: Buffer | Readable | null, limits: SendLimits, hooks: ForwardHooks): void {
  let trailer: string | undefined
  let controller: Dispatcher.DispatchController | undefined
  // The client went away before the worker finished: stop the upstream request too.
  const onClose = () => {
    if (!res.writableFinished) controller?.abort(new Error('client closed the connection'))
  }
  res.once('close', onClose)
  // Armed when the client's socket cannot take a write at once, until what is held is taken.
  let sendTimer: NodeJS.Timeout | undefined
  let paused: Dispatcher.DispatchController | undefined
  const taken = () => {
    clearTimeout(sendTimer)
    sendTimer = undefined
    // resume() may hand over the next chunks at once, and pause again.
    const resumed = paused
    paused = undefined
    resumed?.resume()
  }
  let isListening = false
  const awaitClient = () => {
    sendTimer = setTimeout(() => res.destroy(), limits.sendTimeout)
    if (isListening) return
    isListening = true
    res.on('drain', taken).once('finish', taken).once('close', taken)
  }

  dispatcher.dispatch({
    origin: target.origin,
    path: target.path,
    method: req.method as Dispatcher.HttpMethod,
    headers,
    body,
    headersTimeout: target.timeout,
    bodyTimeout: target.timeout
  }, {
    onRequestStart (ctrl) {
      controller = ctrl
      if (res.destroyed) ctrl.abort(new Error('client closed the connection'))
    },
    onResponseStart (_ctrl, statusCode, upstream) {
      const out: OutgoingHttpHeaders = {}
      const named = namedByConnection(upstream.connection)
      for (const name in upstream) if (!RESPONSE_ONLY.has(name) && !named.includes(name)) out[name] = upstream[name]
      hooks.onResponseHeaders?.(statusCode, out)
      trailer = hooks.trailer?.(statusCode, out)
      if (trailer !== undefined) delete out['content-length']
      // An answer before the whole request body was read leaves the connection unusable.
      if (!req.complete && body) out.connection = 'close'
      res.writeHead(statusCode, out)
    },
    onResponseData (ctrl, chunk) {
      if (res.write(chunk)) return
      if (sendTimer === undefined) awaitClient()
      if (res.writableLength >= limits.responseBuffer) {
        ctrl.pause()
        paused = ctrl
      }
    },
    onResponseEnd () {
      res.off('close', onClose)
      res.end(trailer)
    },
    onResponseError (_ctrl, error) {
      res.off('close', onClose)
      if (res.headersSent) res.destroy(error)
      else if (!res.destroyed) hooks.onError(error)
    }
  })
}
