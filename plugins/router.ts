// Routes every request the app does not answer itself to a worker (src/proxy/request-router.ts does
// the work): from an onRequest hook on a catch-all registered by @fastify/http-proxy, which also
// forwards WebSocket upgrades. Routes live in the route table, not in Fastify's router, so workers
// can come and go while the server listens. One undici Agent reaches every worker
// (src/proxy/upstream-pools.ts).
import fp from 'fastify-plugin'
import httpProxy from '@fastify/http-proxy'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http'
import type { WebSocket } from 'ws'
import { forwardingHeaders } from '../src/forwarded-headers.js'
import { prefersHtml } from '../src/html.js'
import { errorBody, errorPage, retryAfter, type ProxyError } from '../src/proxy/proxy-errors.js'
import { RequestRouter, type PinnedTarget, type SlowClientLimits } from '../src/proxy/request-router.js'
import { createUpstreamAgent } from '../src/proxy/upstream-pools.js'

declare module 'fastify' {
  interface FastifyRequest {
    /** The worker upstream a WebSocket upgrade was pinned to (null otherwise). */
    tqTarget: PinnedTarget | null
  }
}

export interface RouterOptions {
  /** Dev live reload: append the reload script to HTML answers from workers. */
  liveReload: boolean
  /** Log one line per proxied request (accessLog in server.yaml). */
  accessLog?: boolean
  /** What slow clients may hold (server.yaml), and connections per instance at most (0: no limit). */
  slowClients: SlowClientLimits & { upstreamConnections: number }
  /**
   * Filled with the raw request handler, for a server that hands plain requests over before
   * Fastify routes them (the standalone server does, for every path that is not its own).
   */
  fastPath?: { handle?: (req: IncomingMessage, res: ServerResponse) => void }
}

/** Code sent to WebSocket clients of a retiring instance: "service restart", reconnect. */
const WS_SERVICE_RESTART = 1012

async function routerPlugin (fastify: FastifyInstance, { liveReload, accessLog, slowClients, fastPath }: RouterOptions): Promise<void> {
  const { tqserver } = fastify
  const agent = createUpstreamAgent(tqserver.upstreams, tqserver.routes, slowClients.upstreamConnections)
  fastify.addHook('onClose', () => agent.close())

  // WebSockets stay open across a switch: their clients are told to reconnect when the instance
  // they reach starts draining, and then reach the new one.
  const sockets = new Map<string, Set<WebSocket>>()
  tqserver.upstreams.on('draining', (origin) => {
    for (const socket of sockets.get(origin) ?? []) socket.close(WS_SERVICE_RESTART, 'service restart')
  })

  fastify.decorateRequest('tqTarget', null)
  const router = new RequestRouter({
    routes: tqserver.routes,
    upstreams: tqserver.upstreams,
    metrics: tqserver.metrics,
    isClosing: () => tqserver.isClosing,
    dispatcher: agent,
    liveReload,
    accessLog: accessLog ? fastify.log : undefined,
    slowClients
  })
  if (fastPath) fastPath.handle = (req, res) => { void router.handle(req, res) }

  // Plain requests are forwarded from this hook with the reply hijacked, so Fastify neither
  // parses the body nor runs the route; WebSocket upgrades are pinned here and go on to
  // http-proxy's handler. An upgrade is what Node's parser says is one (Connection: upgrade too):
  // a plain request that merely carries an Upgrade header is forwarded, without it.
  async function routeRequest (request: FastifyRequest, reply: FastifyReply) {
    if (!isUpgrade(request.headers)) {
      reply.hijack()
      await router.handle(request.raw, reply.raw)
      return reply
    }
    // A WebSocket counts as in flight until its connection closes.
    const target = router.pin(request.raw, tqserver.routes.match(request.url), request.raw.socket, () => 101)
    if (!('origin' in target)) return sendError(request, reply, target)
    request.tqTarget = target
    request.raw.url = target.path
  }

  await fastify.register(async function proxyScope (scope) {
    scope.addHook('onRequest', routeRequest)
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
          return { ...headers, ...forwardingHeaders(request.raw, request.tqTarget!.route, request.protocol), ...(cookie && { cookie }), ...(authorization && { authorization }) }
        }
      } as object,
      // WebSockets go to the upstream pinned in onRequest.
      replyOptions: { getUpstream: (request) => request.tqTarget!.origin }
    })
  })
}

/** Whether Node's parser reads a request as an upgrade: an Upgrade header that Connection names. */
function isUpgrade (headers: IncomingHttpHeaders): boolean {
  return headers.upgrade !== undefined && /(^|,)\s*upgrade\s*(,|$)/i.test(headers.connection ?? '')
}

function sendError (request: FastifyRequest, reply: FastifyReply, error: ProxyError) {
  reply.code(error.statusCode).header('cache-control', 'no-store').headers(retryAfter(error))
  if (prefersHtml(request.headers.accept)) return reply.type('text/html; charset=utf-8').send(errorPage(error))
  return reply.send(errorBody(error))
}

export const tqserverRouter = fp(routerPlugin, {
  name: 'tqserver-router',
  fastify: '5.x',
  dependencies: ['tqserver-registry']
})
export default tqserverRouter
