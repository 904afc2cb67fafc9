// Routes every request the app does not answer itself to a worker: longest prefix from the
// registry, read once per request in onRequest and pinned on the request, then forwarded by
// @fastify/http-proxy (reply-from over one shared undici Agent; WebSocket upgrades too). A
// worker's public/ files are served here without reaching the worker. Routes live in the
// registry, not in Fastify's router, so workers can come and go while the server listens.
import fp from 'fastify-plugin'
import httpProxy from '@fastify/http-proxy'
import send from '@fastify/send'
import { Agent, Pool } from 'undici'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { IncomingHttpHeaders } from 'node:http'
import type { Readable } from 'node:stream'
import type { WebSocket } from 'ws'
import { prefersHtml } from '../src/html.js'
import { limitBody } from '../src/body-limit.js'
import { errorBody, errorPage, transportError, type ProxyError } from '../src/proxy-errors.js'
import type { WorkerEntry } from '../src/registry.js'
import { TQ_ERR_PROXY_BODY_TOO_LARGE, TQ_ERR_PROXY_NO_ROUTE, TQ_ERR_PROXY_UNAVAILABLE } from '../src/errors.js'

/** Where one request goes, decided once in onRequest. */
export interface PinnedTarget {
  worker: string
  route: string
  origin: string
  path: string
  timeout: number
  bodyLimit: number
}

declare module 'fastify' {
  interface FastifyRequest {
    /** The worker upstream chosen for this request (null for the app's own routes). */
    tqTarget: PinnedTarget | null
  }
}

/** Code sent to WebSocket clients of a retiring instance: "service restart", reconnect. */
const WS_SERVICE_RESTART = 1012

async function routerPlugin (fastify: FastifyInstance): Promise<void> {
  const registry = fastify.tqserver
  // One dispatcher for every worker. Its pools are kept by origin so that a retired instance's
  // idle keep-alive sockets are closed by us, not by the worker: a worker closing a socket the
  // proxy is about to reuse fails that request (UND_ERR_SOCKET). undici >= 7.15 then drops the
  // pool, so a new port per reload does not grow the agent.
  const pools = new Map<string, Pool>()
  const agent = new Agent({
    connections: 128,
    pipelining: 1,
    factory: (origin, options) => {
      const pool = new Pool(origin, options)
      pools.set(new URL(String(origin)).origin, pool)
      return pool
    }
  })
  registry.onUpstream('retired', async (origin) => {
    const pool = pools.get(origin)
    pools.delete(origin)
    // Already closed with the agent when the whole server shuts down.
    if (pool && !pool.closed && !pool.destroyed) await pool.close()
  })
  fastify.addHook('onClose', () => agent.close())

  // WebSockets stay open across a switch: their clients are told to reconnect when the instance
  // they reach starts draining, and then reach the new one.
  const sockets = new Map<string, Set<WebSocket>>()
  registry.onUpstream('draining', (origin) => {
    for (const socket of sockets.get(origin) ?? []) socket.close(WS_SERVICE_RESTART, 'service restart')
  })

  fastify.decorateRequest('tqTarget', null)

  async function routeRequest (request: FastifyRequest, reply: FastifyReply) {
    const match = registry.match(request.url)
    if (!match) return sendError(request, reply, new TQ_ERR_PROXY_NO_ROUTE(request.url.split('?')[0] ?? '') as ProxyError)
    const { entry, forwardPath } = match
    if ((request.method === 'GET' || request.method === 'HEAD') && entry.staticFiles.has(forwardPath) &&
        await sendStatic(request, reply, entry, forwardPath)) {
      return reply
    }
    const { bodyLimit } = entry.spec
    if (bodyLimit > 0 && Number(request.headers['content-length'] ?? 0) > bodyLimit) {
      return sendError(request, reply, new TQ_ERR_PROXY_BODY_TOO_LARGE(entry.spec.name, bodyLimit) as ProxyError)
    }
    const origin = registry.acquire(entry)
    if (!origin) return sendError(request, reply, new TQ_ERR_PROXY_UNAVAILABLE(entry.spec.name) as ProxyError)
    request.tqTarget = { worker: entry.spec.name, route: entry.spec.route, origin, path: forwardPath, timeout: entry.spec.timeouts.upstreamTimeout, bodyLimit }
    const started = performance.now()
    const upgrade = request.headers.upgrade !== undefined
    if (upgrade) {
      // http-proxy forwards an upgrade to the path in the request, not through our handler.
      const queryAt = request.raw.url!.indexOf('?')
      request.raw.url = forwardPath + (queryAt === -1 ? '' : request.raw.url!.slice(queryAt))
    }
    // The request ends when its response does, or for a WebSocket when the connection closes.
    const ended = upgrade ? request.raw.socket : reply.raw
    ended.once('close', () => {
      const served = registry.release(origin, performance.now() - started, !upgrade && (reply.raw.statusCode >= 500 || !reply.raw.writableFinished))
      if (served === entry.spec.maxRequests) void registry.emitUpstream('exhausted', origin)
    })
  }

  await fastify.register(async function proxyScope (scope) {
    scope.addHook('onRequest', routeRequest)
    // Bodies pass through as streams, counted against the worker's bodyLimit on the way.
    const passThrough = (request: FastifyRequest, payload: Readable, done: (err: Error | null, body?: unknown) => void) => {
      const target = request.tqTarget
      done(null, target && target.bodyLimit > 0 ? limitBody(payload, target.bodyLimit, target.worker) : payload)
    }
    scope.addContentTypeParser('application/json', passThrough)
    scope.addContentTypeParser('*', passThrough)
    await scope.register(httpProxy, {
      upstream: '',
      undici: agent,
      proxyPayloads: false,
      disableRequestLogging: true,
      internalRewriteLocationHeader: false,
      websocket: true,
      wsHooks: {
        onConnect: (_context, source, target) => {
          const origin = new URL(target.url.replace(/^ws/, 'http')).origin
          const set = sockets.get(origin) ?? new Set()
          set.add(source)
          sockets.set(origin, set)
          source.once('close', () => {
            set.delete(source)
            if (set.size === 0) sockets.delete(origin)
          })
        }
      },
      // rewriteRequestHeaders exists in http-proxy's code but not in its types. The worker gets
      // the forwarded headers and the client's credentials (by default only the cookie).
      wsClientOptions: {
        rewriteRequestHeaders: (headers: IncomingHttpHeaders | undefined, request: FastifyRequest) => {
          const { cookie, authorization } = request.headers
          return { ...forwardedHeaders(request, { ...headers }), ...(cookie && { cookie }), ...(authorization && { authorization }) }
        }
      } as object,
      handler: (request, reply, _dest, options) => reply.from(request.tqTarget!.path, { ...options, timeout: request.tqTarget!.timeout }),
      replyOptions: {
        getUpstream: (request) => request.tqTarget!.origin,
        rewriteRequestHeaders: (request, headers) => forwardedHeaders(request, headers as IncomingHttpHeaders),
        rewriteHeaders: (headers, request) => rewriteLocation(headers as IncomingHttpHeaders, request?.tqTarget),
        // A retry would go to the same, possibly retired, origin; and reply-from retries every
        // 503 to a GET up to 10 times, which multiplies load on a struggling worker.
        retryDelay: () => null,
        onError: (reply, { error }) => {
          const { tqTarget } = reply.request
          const tooLarge = (error.cause as { code?: string } | undefined)?.code === 'TQ_ERR_PROXY_BODY_TOO_LARGE'
          if (tqTarget && !tooLarge) void registry.emitUpstream('failed', tqTarget.origin)
          sendError(reply.request, reply, tooLarge ? error.cause as ProxyError : transportError(tqTarget?.worker ?? 'unknown', error))
        }
      }
    })
  })
}

type ProxiedRequest = Pick<FastifyRequest, 'tqTarget' | 'socket' | 'headers' | 'protocol' | 'host'>

function forwardedHeaders (request: ProxiedRequest, headers: IncomingHttpHeaders): IncomingHttpHeaders {
  const target = request.tqTarget!
  const client = request.socket.remoteAddress ?? ''
  const prior = request.headers['x-forwarded-for']
  headers['x-forwarded-for'] = prior ? `${prior}, ${client}` : client
  headers['x-forwarded-proto'] = request.protocol
  headers['x-forwarded-host'] = request.host
  if (target.route === '/') delete headers['x-forwarded-prefix']
  else headers['x-forwarded-prefix'] = target.route
  return headers
}

/** A redirect to the worker's own origin becomes one to its public route. */
function rewriteLocation (headers: IncomingHttpHeaders, target: PinnedTarget | null | undefined): IncomingHttpHeaders {
  const location = headers.location
  if (target && location?.startsWith(target.origin)) {
    const path = location.slice(target.origin.length) || '/'
    headers.location = target.route === '/' ? path : `${target.route}${path === '/' ? '' : path}`
  }
  return headers
}

/** Sends a public/ file; false when send refuses it (deleted since the scan): the worker answers then. */
async function sendStatic (request: FastifyRequest, reply: FastifyReply, entry: WorkerEntry, path: string): Promise<boolean> {
  const result = await send(request.raw, path, { root: entry.staticFiles.dir, dotfiles: 'deny', index: false })
  if (result.type === 'error') return false
  await reply.code(result.statusCode).headers(result.headers).send(result.stream)
  return true
}

// Typed loosely: reply-from's onError hands over a reply of the generic RawServerBase kind.
function sendError (request: Pick<FastifyRequest, 'headers'>, reply: FastifyReply<any, any, any, any>, error: ProxyError) { // eslint-disable-line @typescript-eslint/no-explicit-any
  reply.code(error.statusCode).header('cache-control', 'no-store')
  if (prefersHtml(request.headers.accept)) return reply.type('text/html; charset=utf-8').send(errorPage(error))
  return reply.send(errorBody(error))
}

export const tqserverRouter = fp(routerPlugin, {
  name: 'tqserver-router',
  fastify: '5.x',
  dependencies: ['tqserver-registry']
})
export default tqserverRouter
