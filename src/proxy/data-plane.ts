// A data plane: a process the control plane forks (src/proxy/data-planes.ts) to serve the public
// port beside it, so that proxying uses more than one core. It binds the port beside the control
// plane with SO_REUSEPORT (the kernel spreads connections over the sockets) or, where the control
// plane could not bind so, shares its listening socket, passed over IPC. It holds a copy of the
// route table that the control plane keeps up to date, and forwards requests for workers with the
// same request router as the control plane. The host's own paths and WebSocket handshakes go to
// the control plane (host-relay.ts). It runs no worker, build or health check, and counts what it
// serves: the control plane gathers its counts for /health and /metrics.
import type { Server as NetServer } from 'node:net'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { compileTrust, declineUpgrade, declineUpgradesWhere, isWebSocketOffer } from '../forwarded-headers.js'
import { LOG_LEVELS, type LogLevel, type Logger } from '../logger.js'
import { RequestCounters } from '../report/metrics.js'
import { RouteTable } from '../routing/route-table.js'
import { UpstreamEvents } from '../routing/upstream-events.js'
import { isHostPath } from '../url-paths.js'
import type { FromDataPlane, LogRecord, OriginStats, ToDataPlane } from './data-plane-protocol.js'
import { HostRelay } from './host-relay.js'
import { answerClientError, createPublicServer, updateTls } from './public-server.js'
import { RequestRouter, toOriginForm } from './request-router.js'
import { createUpstreamAgent } from './upstream-pools.js'

/** How often the control plane hears what this data plane served. */
const STATS_INTERVAL_MS = 1_000

function send (message: FromDataPlane): void {
  if (process.connected) process.send!(message)
}

/** Without its control plane a data plane has nothing to serve by: it goes at once. */
process.on('disconnect', () => process.exit(0))
// The control plane sends the shutdown: a signal meant for the terminal's group is not for us.
process.on('SIGINT', () => {})
process.once('message', (message: ToDataPlane, handle: unknown) => {
  if (message.type === 'start') serve(message, handle as NetServer | undefined)
})

function serve (start: Extract<ToDataPlane, { type: 'start' }>, listening: NetServer | undefined): void {
  const { settings } = start
  const log = ipcLogger(settings.logLevel)
  const routes = new RouteTable()
  for (const worker of start.workers) routes.restore(worker)
  const upstreams = new UpstreamEvents()
  upstreams.on('failed', (origin) => send({ type: 'failed', origin }))
  const agent = createUpstreamAgent(upstreams, routes, settings.slowClients.upstreamConnections)
  const counters = new RequestCounters()
  let closing = false
  const router = new RequestRouter({
    routes,
    upstreams,
    metrics: counters,
    isClosing: () => closing,
    dispatcher: agent,
    liveReload: settings.liveReload,
    accessLog: settings.accessLog ? log : undefined,
    trust: compileTrust(settings.trustProxy),
    slowClients: settings.slowClients
  })
  const relay = new HostRelay(settings.relay, () => closing)
  const server = createPublicServer(settings.server, (req: IncomingMessage, res: ServerResponse, awaitingContinue: boolean) => {
    if (toOriginForm(req) && isHostPath(req.url ?? '/')) return relay.request(req, res, awaitingContinue)
    void router.handle(req, res, awaitingContinue)
  }, start.tls)
  // WebSocket handshakes go to the control plane, which tunnels them; other upgrade offers (h2c)
  // are declined and served as plain requests, as the control plane does (forwarded-headers.ts).
  const declines = (req: IncomingMessage) => !isWebSocketOffer(req)
  declineUpgradesWhere(server, declines)
  server.on('upgrade', (req: IncomingMessage, socket, head: Buffer) => {
    if (declines(req)) declineUpgrade(server, req, socket, head)
    else relay.upgrade(req, socket, head)
  })
  server.on('clientError', answerClientError)
  // Without a socket to serve there is nothing to do: the control plane starts another.
  server.once('error', (err) => {
    log.error({ err }, 'data plane could not listen')
    setImmediate(() => process.exit(1))
  })
  const ready = () => send({ type: 'listening' })
  if (start.reusePort) server.listen({ ...start.reusePort, reusePort: true }, ready)
  else server.listen(listening, ready)
  send({ type: 'ack', seq: start.seq })

  const reportStats = () => {
    const now = performance.now()
    const origins: OriginStats[] = []
    for (const [origin, delta] of routes.traffic.unreported()) {
      origins.push({ origin, ...delta, inflight: routes.traffic.inflight(origin), quietMs: routes.traffic.quietFor(origin, now) })
    }
    send({ type: 'stats', served: counters.served, origins })
  }
  const stats = setInterval(reportStats, STATS_INTERVAL_MS)

  process.on('message', (message: ToDataPlane) => {
    switch (message.type) {
      case 'worker':
        if (message.worker) routes.restore(message.worker)
        else routes.removeWorker(message.name)
        return send({ type: 'ack', seq: message.seq })
      case 'upstream':
        void upstreams.emit(message.event, message.origin)
        return send({ type: 'ack', seq: message.seq })
      case 'idle?':
        void routes.traffic.whenIdle(message.origin, message.timeoutMs).then((idle) => send({ type: 'idle', id: message.id, idle }))
        return
      case 'stats?':
        reportStats()
        return send({ type: 'reported', id: message.id })
      case 'metrics?':
        // Counts as of now for the scrape's gauges (requests in flight), ahead of the metrics.
        reportStats()
        void counters.registry.getMetricsAsJSON().then((metrics) => send({ type: 'metrics', id: message.id, metrics }))
        return
      case 'tls':
        return updateTls(server, message.material)
      case 'close':
        close()
        if (message.cut) server.closeAllConnections()
        return
    }
  })
  // Sent by the control plane at shutdown, or a SIGTERM to this process alone (the control plane
  // then starts another): answers from now on close their connection, idle ones close now, and
  // the process exits once none is left.
  const close = () => {
    if (closing) return
    closing = true
    server.close(() => {
      clearInterval(stats)
      reportStats()
      void agent.close().finally(() => process.disconnect())
    })
    server.closeIdleConnections()
  }
  process.on('SIGTERM', close)
}

/** A logger whose lines go to the control plane's log, a batch per turn of the event loop. */
function ipcLogger (level: LogLevel, bindings: Record<string, unknown> = {}, queue: LogRecord[] = []): Logger {
  const threshold = LOG_LEVELS.indexOf(level)
  const at = (name: LogRecord[0]) => LOG_LEVELS.indexOf(name) < threshold
    ? () => {}
    : (fields: object, msg = '') => {
        if (queue.length === 0) setImmediate(() => send({ type: 'log', records: queue.splice(0) }))
        queue.push([name, serializable({ ...bindings, ...fields }), msg])
      }
  return {
    level,
    trace: at('trace'),
    debug: at('debug'),
    info: at('info'),
    warn: at('warn'),
    error: at('error'),
    fatal: at('fatal'),
    child: (more) => ipcLogger(level, { ...bindings, ...more }, queue)
  }
}

/** Errors lose their message and stack in IPC's JSON: they travel as plain fields. */
function serializable (fields: Record<string, unknown>): Record<string, unknown> {
  for (const [key, value] of Object.entries(fields)) {
    if (value instanceof Error) fields[key] = { type: value.name, message: value.message, stack: value.stack, code: (value as NodeJS.ErrnoException).code }
  }
  return fields
}
