// Routes one plain HTTP request (not an upgrade) to a worker, on Node's own request and response
// objects: longest prefix from the route table, a public/ file if there is one, else the upstream
// picked once and the request forwarded. Used from the router plugin's onRequest hook (any
// Fastify app) and, in the standalone server, straight from the HTTP server, before Fastify.
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http'
import { performance } from 'node:perf_hooks'
import type { Readable } from 'node:stream'
import send from '@fastify/send'
import type { Dispatcher } from 'undici'
import { Forwarding, upstreamHeaders, type ForwardOwner, type ForwardTarget, type SendLimits } from './forwarder.js'
import { readBody } from './request-body.js'
import { prefersHtml } from '../html.js'
import type { Logger } from '../logger.js'
import { canTakeReloadScript, LIVE_RELOAD_TAG } from '../reload/live-reload.js'
import type { WorkerSpec } from '../config/worker-discovery.js'
import type { RouteMatch, RouteTable, WorkerEntry } from '../routing/route-table.js'
import type { UpstreamEvents } from '../routing/upstream-events.js'
import { isSafePath, pathOf, splitAbsoluteForm } from '../url-paths.js'
import { clientAddress, isHttp1, type TrustFunction } from '../forwarded-headers.js'
import { errorBody, errorPage, retryAfter, transportError, type ProxyError } from './proxy-errors.js'
import { TQ_ERR_PROXY_BAD_PATH, TQ_ERR_PROXY_BODY_TOO_LARGE, TQ_ERR_PROXY_NO_ROUTE, TQ_ERR_PROXY_UNAVAILABLE } from '../errors.js'

/** Where one request goes, decided once. */
export interface PinnedTarget extends ForwardTarget {
  worker: string
  /** The worker's spec when the request was routed (a reload may replace it meanwhile). */
  spec: WorkerSpec
  /** performance.now() when an upstream was picked. */
  started: number
}

/** Where the router counts a finished request (report/metrics.ts). */
export interface RequestMetrics {
  request: (worker: string, statusCode: number, durationMs: number) => void
}

export interface RequestRouterOptions {
  routes: RouteTable
  upstreams: UpstreamEvents
  metrics: RequestMetrics
  /** True once the server is shutting down: answers then close their connection. */
  isClosing: () => boolean
  dispatcher: Dispatcher
  /** Dev live reload: append the reload script to HTML pages. */
  liveReload: boolean
  /** Where to log one line per request, if anywhere. */
  accessLog?: Logger | undefined
  /** Which peers may speak for a client (trustProxy): their forwarding headers are kept. */
  trust: TrustFunction
  /** What a slow client may hold (docs/security.md). */
  slowClients: SlowClientLimits
}

/** requestBuffer, bodyIdleTimeout, responseBuffer and sendTimeout from the server configuration. */
export interface SlowClientLimits extends SendLimits {
  requestBuffer: number
  bodyIdleTimeout: number
}

/** What `OPTIONS *` is told (RFC 9110 9.3.7): the methods the host forwards. */
const ALLOWED_METHODS = 'GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS'
/**
 * undici refused the request before sending it (a header or value it does not take): the host's
 * fault or the client's, never the worker's, which must not be made suspect for it.
 */
const REFUSED_BEFORE_SENDING = new Set(['UND_ERR_INVALID_ARG', 'UND_ERR_NOT_SUPPORTED'])

export class RequestRouter {
  readonly #routes: RouteTable
  readonly #upstreams: UpstreamEvents
  readonly #metrics: RequestMetrics
  readonly #isClosing: () => boolean
  readonly #dispatcher: Dispatcher
  readonly #liveReload: boolean
  readonly #accessLog: Logger | undefined
  readonly #trust: TrustFunction
  readonly #slowClients: SlowClientLimits
  readonly #owner: ForwardOwner<PinnedTarget>

  constructor (options: RequestRouterOptions) {
    this.#routes = options.routes
    this.#upstreams = options.upstreams
    this.#metrics = options.metrics
    this.#isClosing = options.isClosing
    this.#dispatcher = options.dispatcher
    this.#liveReload = options.liveReload
    this.#accessLog = options.accessLog
    this.#trust = options.trust
    this.#slowClients = options.slowClients
    this.#owner = this.#forwardOwner()
  }

  /**
   * The worker and upstream for a request (`match` is its route), counted in flight until `ended`
   * closes; or an error to answer with. `status` gives the answer's status code then, 0 for none
   * complete. Shared with WebSocket upgrades, which then go through a tunnel (websocket-tunnel.ts).
   */
  pin (req: IncomingMessage, match: RouteMatch | undefined, ended: NodeJS.EventEmitter, status: () => number): PinnedTarget | ProxyError {
    const checked = this.#check(req, match)
    return checked instanceof Error ? checked : this.#acquire(req, checked, ended, status)
  }

  /** What is refused before any of the body is read: no route, a bad path, a declared body over the limit. */
  #check (req: IncomingMessage, match: RouteMatch | undefined): RouteMatch | ProxyError {
    const url = req.url ?? '/'
    if (!match) return new TQ_ERR_PROXY_NO_ROUTE(pathOf(url)) as ProxyError
    if (!isSafePath(match.forwardPath)) return new TQ_ERR_PROXY_BAD_PATH(pathOf(url)) as ProxyError
    const { bodyLimit, name } = match.entry.spec
    if (bodyLimit > 0 && Number(req.headers['content-length'] ?? 0) > bodyLimit) {
      return new TQ_ERR_PROXY_BODY_TOO_LARGE(name, bodyLimit) as ProxyError
    }
    return match
  }

  #acquire (req: IncomingMessage, { entry, forwardPath }: RouteMatch, ended: NodeJS.EventEmitter, status: () => number): PinnedTarget | ProxyError {
    const origin = this.#routes.acquire(entry)
    if (!origin) return new TQ_ERR_PROXY_UNAVAILABLE(entry.spec.name) as ProxyError
    const target = pinned(req, entry.spec, forwardPath, origin)
    ended.once('close', () => this.#release(req, target, status()))
    return target
  }

  /** Ends a request counted by acquire(): in flight, latency, metrics, the access log, maxRequests. */
  #release (req: IncomingMessage, { spec, origin, started }: PinnedTarget, statusCode: number): void {
    const durationMs = performance.now() - started
    const served = this.#routes.release(origin, durationMs, statusCode === 0 || statusCode >= 500)
    this.#metrics.request(spec.name, statusCode, durationMs)
    this.#accessLog?.info({ worker: spec.name, method: req.method, url: req.url ?? '/', client: clientAddress(req, this.#trust), statusCode, durationMs: Math.round(durationMs * 10) / 10 }, 'request')
    if (served === spec.maxRequests) void this.#upstreams.emit('exhausted', origin)
  }

  /**
   * Answers a plain request: a public/ file, the worker's answer, or a JSON (or HTML) error.
   * `awaitingContinue`: the client sent `Expect: 100-continue` and Node left the answer to us
   * (the standalone server's checkContinue): 100 Continue goes out only once the body is wanted,
   * so a request refused anyway (404, 413, 503) is answered before its body is sent.
   */
  handle (req: IncomingMessage, res: ServerResponse, awaitingContinue = false): Promise<void> {
    if (!toOriginForm(req)) {
      this.#answerOwnTarget(req, res, awaitingContinue)
      return DONE
    }
    // A pipelined request waits for the answers before it on its connection (its own could not
    // be sent before them anyway): forwarded at once, each would hold a worker connection and an
    // answer buffered for a client that may never read them. A connection thus holds one worker
    // connection at most.
    if (res.socket === null) return this.#handleInLine(req, res, awaitingContinue)
    return this.#route(req, res, awaitingContinue)
  }

  async #handleInLine (req: IncomingMessage, res: ServerResponse, awaitingContinue: boolean): Promise<void> {
    if (await isFirstInLine(req, res)) await this.#route(req, res, awaitingContinue)
  }

  // The hot path (a request without a body, no public/ file) runs synchronously: no promise of
  // its own, no closure but one 'close' listener (docs/performance.md).
  #route (req: IncomingMessage, res: ServerResponse, awaitingContinue: boolean): Promise<void> {
    const match = this.#routes.match(req.url ?? '/')
    if (match && (req.method === 'GET' || req.method === 'HEAD') && match.entry.staticFiles.has(match.forwardPath)) {
      return this.#routeStatic(req, res, match, awaitingContinue)
    }
    return this.#routeMatched(req, res, match, awaitingContinue)
  }

  async #routeStatic (req: IncomingMessage, res: ServerResponse, match: RouteMatch, awaitingContinue: boolean): Promise<void> {
    if (!await this.#sendStatic(req, res, match.entry, match.forwardPath)) await this.#routeMatched(req, res, match, awaitingContinue)
  }

  #routeMatched (req: IncomingMessage, res: ServerResponse, match: RouteMatch | undefined, awaitingContinue: boolean): Promise<void> {
    const hasBody = hasRequestBody(req)
    const checked = this.#check(req, match)
    if (checked instanceof Error) {
      this.#writeError(req, res, checked, awaitingContinue && hasBody)
      return DONE
    }
    if (hasBody) return this.#readThenForward(req, res, checked, awaitingContinue)
    this.#forward(req, res, checked, null)
    return DONE
  }

  /**
   * A body is read (or its first requestBuffer bytes are) before an upstream is picked, so that a
   * slow client holds no connection to a worker meanwhile (docs/security.md).
   */
  async #readThenForward (req: IncomingMessage, res: ServerResponse, match: RouteMatch, awaitingContinue: boolean): Promise<void> {
    if (awaitingContinue) res.writeContinue()
    const { requestBuffer, bodyIdleTimeout } = this.#slowClients
    const { name, bodyLimit } = match.entry.spec
    const read = await readBody(req, { worker: name, limit: bodyLimit, buffer: requestBuffer, idleTimeout: bodyIdleTimeout })
    if (read === undefined) return
    if (read instanceof Error) return this.#refuseBody(req, res, read)
    this.#forward(req, res, match, read)
  }

  #forward (req: IncomingMessage, res: ServerResponse, { entry, forwardPath }: RouteMatch, body: Buffer | Readable | null): void {
    const origin = this.#routes.acquire(entry)
    if (!origin) return this.#writeError(req, res, new TQ_ERR_PROXY_UNAVAILABLE(entry.spec.name) as ProxyError)
    const target = pinned(req, entry.spec, forwardPath, origin)
    const protocol = (req.socket as { encrypted?: boolean }).encrypted ? 'https' : 'http'
    new Forwarding(this.#owner, req, res, target).start(this.#dispatcher, upstreamHeaders(req, target, protocol, this.#trust), body)
  }

  /** What a Forwarding asks of the router: made once, so that no request makes closures for it. */
  #forwardOwner (): ForwardOwner<PinnedTarget> {
    return {
      traffic: this.#routes.traffic,
      limits: this.#slowClients,
      closed: ({ req, res, target }) => this.#release(req, target, res.writableFinished ? res.statusCode : 0),
      responseHeaders: ({ req, target }, statusCode, headers) => {
        rewriteLocation(headers, target)
        if (this.#closesConnection(req)) headers.connection = 'close'
        return this.#liveReload && canTakeReloadScript(statusCode, headers) ? LIVE_RELOAD_TAG : undefined
      },
      failed: ({ req, res, target }, error) => {
        // Our own answers: a body over the limit or paused too long, or an instance found hung (the proxy gave up on it).
        if (error.code === 'TQ_ERR_PROXY_BODY_TOO_LARGE' || error.code === 'TQ_ERR_PROXY_BODY_TIMEOUT') {
          return this.#refuseBody(req, res, error as ProxyError)
        }
        if (error.code === 'TQ_ERR_PROXY_HUNG') return this.#writeError(req, res, error as ProxyError)
        if (!REFUSED_BEFORE_SENDING.has(error.code ?? '')) void this.#upstreams.emit('failed', target.origin)
        this.#writeError(req, res, transportError(target.worker, error))
      }
    }
  }

  /**
   * 413 or 408 for a body not read to its end: the connection closes after the answer, and what
   * the client still sends is read and dropped meanwhile, so that it gets the answer rather than a
   * reset.
   */
  #refuseBody (req: IncomingMessage, res: ServerResponse, error: ProxyError): void {
    if (isHttp1(req)) res.setHeader('connection', 'close')
    req.resume()
    writeError(req, res, error)
  }

  /**
   * An error answer; while the server closes, it closes its connection like any other answer. So
   * does one given instead of 100 Continue: the client may send its body now or never, and the
   * next bytes cannot be told apart from a next request (RFC 9110 10.1.1).
   */
  #writeError (req: IncomingMessage, res: ServerResponse, error: ProxyError, bodyHeldBack = false): void {
    if ((this.#isClosing() || bodyHeldBack) && isHttp1(req)) res.setHeader('connection', 'close')
    writeError(req, res, error)
  }

  /** Answers close their connection while the server closes: an idle keep-alive one must not outlive it. */
  #closesConnection (req: IncomingMessage): boolean {
    return this.#isClosing() && isHttp1(req)
  }

  /** `OPTIONS *` is about the server, not a resource: the host answers it. Any other target is refused. */
  #answerOwnTarget (req: IncomingMessage, res: ServerResponse, awaitingContinue: boolean): void {
    if (req.url === '*' && req.method === 'OPTIONS') {
      res.writeHead(200, { allow: ALLOWED_METHODS, 'content-length': 0, ...(this.#closesConnection(req) && { connection: 'close' }) })
      res.end()
      return
    }
    this.#writeError(req, res, new TQ_ERR_PROXY_BAD_PATH(req.url ?? '') as ProxyError, awaitingContinue && hasRequestBody(req))
  }

  /**
   * Sends a public/ file; false when send refuses it (deleted since the scan): the worker answers
   * then. A range past the end (416) or a failed If-Match (412) is the file's own answer.
   */
  async #sendStatic (req: IncomingMessage, res: ServerResponse, entry: WorkerEntry, path: string): Promise<boolean> {
    const real = await entry.staticFiles.locate(path)
    if (real === undefined) return false
    const encoded = real.split('/').map(encodeURIComponent).join('/')
    const result = await send(req, encoded, { root: entry.staticFiles.realRoot, dotfiles: 'deny', index: false })
    if (result.type === 'error' && result.statusCode !== 416 && result.statusCode !== 412) return false
    // send names its headers Content-Type, Content-Length: lower-case, as everywhere else here.
    const headers: OutgoingHttpHeaders = {}
    for (const name in result.headers) headers[name.toLowerCase()] = result.headers[name]
    const trailer = this.#liveReload && canTakeReloadScript(result.statusCode, headers) ? LIVE_RELOAD_TAG : undefined
    if (trailer) delete headers['content-length']
    if (this.#closesConnection(req)) headers.connection = 'close'
    res.writeHead(result.statusCode, headers)
    // pipe pauses the file while the client's socket is full: a client that leaves it so for
    // sendTimeout is cut off, as for a worker's answer, and the file closed.
    let sendTimer: NodeJS.Timeout | undefined
    const { sendTimeout } = this.#slowClients
    result.stream.on('pause', () => {
      clearTimeout(sendTimer)
      sendTimer = setTimeout(() => res.destroy(), sendTimeout)
    }).on('resume', () => clearTimeout(sendTimer))
    result.stream.on('end', () => res.end(trailer)).pipe(res, { end: false })
    res.once('close', () => {
      clearTimeout(sendTimer)
      result.stream.destroy()
    })
    return true
  }
}

/**
 * Brings the request target to origin-form (`/path?query`): an absolute-form target
 * (`http://host/path`, RFC 9112 3.2.2; its scheme and host in any case) is routed by its path, and
 * its authority replaces the Host header. False for a target that has no path at all (`*`, or
 * authority-form outside CONNECT): the host answers it itself.
 */
export function toOriginForm (req: IncomingMessage): boolean {
  const url = req.url ?? '/'
  if (url.startsWith('/')) return true
  const absolute = splitAbsoluteForm(url)
  if (!absolute) return false
  req.url = absolute.path
  req.headers.host = absolute.authority
  return true
}

/**
 * Whether a body follows the headers. HTTP/2 frames the body itself, so one may come without
 * Content-Length; there, only headers that ended the stream say there is none.
 */
function hasRequestBody (req: IncomingMessage): boolean {
  const { headers } = req
  if (headers['transfer-encoding'] !== undefined || Number(headers['content-length'] ?? 0) > 0) return true
  return req.httpVersionMajor === 2 && !(req as IncomingMessage & { stream: { endAfterHeaders: boolean } }).stream.endAfterHeaders
}

/** handle()'s promise for a request handled synchronously: one made for all. */
const DONE = Promise.resolve()

/** The target of a request routed to `spec`'s worker, at `origin`; its time starts now. */
function pinned (req: IncomingMessage, spec: WorkerSpec, forwardPath: string, origin: string): PinnedTarget {
  const url = req.url ?? '/'
  const queryAt = url.indexOf('?')
  return {
    origin,
    path: queryAt === -1 ? forwardPath : forwardPath + url.slice(queryAt),
    route: spec.route,
    timeout: spec.timeouts.upstreamTimeout,
    worker: spec.name,
    spec,
    started: performance.now()
  }
}

/** Resolves once `res` is the answer its connection sends next; false if the connection closed first. */
function isFirstInLine (req: IncomingMessage, res: ServerResponse): Promise<boolean> {
  return new Promise((resolve) => {
    const onSocket = () => {
      req.off('close', onClose)
      resolve(true)
    }
    const onClose = () => {
      res.off('socket', onSocket)
      resolve(false)
    }
    res.once('socket', onSocket)
    req.once('close', onClose)
  })
}

/** A redirect to the worker's own origin becomes one to its public route. */
function rewriteLocation (headers: OutgoingHttpHeaders, target: PinnedTarget): void {
  const location = headers.location
  if (typeof location === 'string' && location.startsWith(target.origin)) {
    const path = location.slice(target.origin.length) || '/'
    headers.location = target.route === '/' ? path : `${target.route}${path === '/' ? '' : path}`
  }
}

/** An error answer: JSON, or an HTML page for a browser. */
export function writeError (req: IncomingMessage, res: ServerResponse, error: ProxyError): void {
  const html = prefersHtml(req.headers.accept)
  const body = html ? errorPage(error) : JSON.stringify(errorBody(error))
  res.writeHead(error.statusCode, {
    'content-type': html ? 'text/html; charset=utf-8' : 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
    ...retryAfter(error)
  })
  res.end(body)
}
