// Routes every request the app does not answer itself to a worker (src/proxy/request-router.ts does
// the work): from an onRequest hook on a catch-all route. WebSocket upgrades reach the same hook
// and go to the worker through a tunnel (src/proxy/websocket-tunnel.ts); other upgrade offers
// (h2c) are declined and served as plain requests (src/forwarded-headers.ts). Routes live in
// the route table, not in Fastify's router, so workers can come and go while the server listens.
// One undici Agent reaches every worker (src/proxy/upstream-pools.ts).
import fp from 'fastify-plugin'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { ServerResponse, type IncomingMessage } from 'node:http'
import type { Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import { prefersHtml } from '../src/html.js'
import { upstreamHeaders } from '../src/proxy/forwarder.js'
import { errorBody, errorPage, retryAfter, transportError, type ProxyError } from '../src/proxy/proxy-errors.js'
import { RequestRouter, writeError, type SlowClientLimits } from '../src/proxy/request-router.js'
import { createUpstreamAgent } from '../src/proxy/upstream-pools.js'
import { declineUpgrade, declineUpgradesWhere, isWebSocketOffer, type TrustFunction } from '../src/forwarded-headers.js'
import { WebSocketTunnel } from '../src/proxy/websocket-tunnel.js'
import { TQ_ERR_PROXY_HUNG } from '../src/errors.js'

export interface RouterOptions {
  /** Dev live reload: append the reload script to HTML answers from workers. */
  liveReload: boolean
  /** Log one line per proxied request (accessLog in server.yaml). */
  accessLog?: boolean
  /** Which peers may speak for a client (trustProxy in server.yaml, compiled). */
  trust: TrustFunction
  /** What slow clients may hold (server.yaml), and connections per instance at most (0: no limit). */
  slowClients: SlowClientLimits & { upstreamConnections: number }
  /**
   * Filled with the raw request handler, for a server that hands plain requests over before
   * Fastify routes them (the standalone server does, for every path that is not its own).
   */
  fastPath?: { handle?: (req: IncomingMessage, res: ServerResponse, awaitingContinue?: boolean) => void }
}

async function routerPlugin (fastify: FastifyInstance, { liveReload, accessLog, trust, slowClients, fastPath }: RouterOptions): Promise<void> {
  const { tqserver } = fastify
  const agent = createUpstreamAgent(tqserver.upstreams, tqserver.routes, slowClients.upstreamConnections)
  fastify.addHook('onClose', () => agent.close())

  // WebSockets stay open across a switch: their clients are told to reconnect (1012, service
  // restart) when the instance they reach starts draining, and then reach the new one.
  const tunnels = new Map<string, Set<WebSocketTunnel>>()
  tqserver.upstreams.on('draining', (origin) => {
    for (const tunnel of tunnels.get(origin) ?? []) tunnel.restart()
  })
  // A handshake waiting on an instance found hung gets 503 at once, as a plain request does.
  tqserver.upstreams.on('hung', (origin) => {
    const worker = tqserver.routes.instanceAt(origin)?.spec.name ?? origin
    for (const tunnel of tunnels.get(origin) ?? []) tunnel.abandon(new TQ_ERR_PROXY_HUNG(worker))
  })
  /** Upgrade requests, with their socket and the bytes read past the head, until routed. */
  const upgrades = new WeakMap<IncomingMessage, { socket: Duplex, head: Buffer }>()

  const router = new RequestRouter({
    routes: tqserver.routes,
    upstreams: tqserver.upstreams,
    metrics: tqserver.metrics,
    isClosing: () => tqserver.isClosing,
    dispatcher: agent,
    liveReload,
    accessLog: accessLog ? fastify.log : undefined,
    trust,
    slowClients
  })
  if (fastPath) fastPath.handle = (req, res, awaitingContinue) => { void router.handle(req, res, awaitingContinue) }

  // Plain requests are forwarded from this hook with the reply hijacked, so Fastify neither
  // parses the body nor runs the route; so are WebSocket upgrades, through a tunnel.
  async function routeRequest (request: FastifyRequest, reply: FastifyReply) {
    const upgrade = upgrades.get(request.raw)
    if (!upgrade) {
      reply.hijack()
      await router.handle(request.raw, reply.raw)
      return reply
    }
    const { socket, head } = upgrade
    // A WebSocket counts as in flight until its connection closes.
    // Counted with the worker's answer: 101, or the status it refused the handshake with.
    let tunnel: WebSocketTunnel | undefined
    const target = router.pin(request.raw, tqserver.routes.match(request.url), socket, () => tunnel?.statusCode ?? 0)
    if (!('origin' in target)) return sendError(request, reply, target)
    reply.hijack()
    const headers = { ...upstreamHeaders(request.raw, target, request.protocol, trust), connection: 'Upgrade', upgrade: request.headers.upgrade }
    tunnel = new WebSocketTunnel({
      socket,
      head,
      origin: target.origin,
      path: target.path,
      headers,
      onError: (err) => {
        if (err instanceof TQ_ERR_PROXY_HUNG) return writeError(request.raw, reply.raw, err as ProxyError)
        void tqserver.upstreams.emit('failed', target.origin)
        writeError(request.raw, reply.raw, transportError(target.worker, err))
      },
      // Until the worker answers the upgrade, the handshake counts as waiting on it (hang detection).
      onWaited: (answered) => tqserver.routes.traffic.stopWaiting(target.origin, answered)
    })
    const open = tunnels.get(target.origin) ?? new Set()
    tunnels.set(target.origin, open.add(tunnel))
    socket.once('close', () => {
      open.delete(tunnel)
      if (open.size === 0) tunnels.delete(target.origin)
    })
    tqserver.routes.traffic.awaitAnswer(target.origin)
    tunnel.open()
    return reply
  }

  await fastify.register(async function proxyScope (scope) {
    scope.addHook('onRequest', routeRequest)
    // Never reached: the hook answers every request. The routes only make Fastify run it.
    scope.all('/', notReached)
    scope.all('/*', notReached)
  })

  // Every upgrade comes here (Node's parser hands over a request with Connection: upgrade).
  // WebSocket offers are routed like any request, on a response bound to the socket (an error
  // answer ends it); other offers are declined, unless another plugin listens for upgrades too.
  const { server } = fastify
  const declines = (req: IncomingMessage) => !isWebSocketOffer(req) && server.listenerCount('upgrade') === 1
  declineUpgradesWhere(server, declines)
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    if (!isWebSocketOffer(req)) {
      if (declines(req)) declineUpgrade(server, req, socket, head)
      return
    }
    upgrades.set(req, { socket, head })
    const res = new ServerResponse(req)
    res.assignSocket(socket as Socket)
    res.once('finish', () => socket.destroy())
    fastify.routing(req, res)
  })
}

async function notReached (): Promise<void> {}

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
