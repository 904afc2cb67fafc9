// The tqserver plugin: serves the workers of a project through this Fastify instance.
//   fastify.register(tqserver, { root: '/srv/app' })
// builds the core parts, then registers, in order: registry -> supervisor -> router (proxy +
// static files) -> health -> metrics -> prod-reload (SIGHUP and POST, when asked for) -> hot-reload (dev)
// -> data planes (when asked for and `proxies` is above 1).
import { Server as TlsServer } from 'node:tls'
import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import type { BuildMode } from '../src/build/builder.js'
import { loadServerConfig, type ResolvedServerConfig, type ServerOverrides } from '../src/config/server-config.js'
import { compileTrust } from '../src/forwarded-headers.js'
import type { LogLevel } from '../src/logger.js'
import { proxyCount } from '../src/proxy/proxy-count.js'
import { ProdReload } from '../src/reload/prod-reload.js'
import { ServerMetrics } from '../src/report/metrics.js'
import { RouteTable } from '../src/routing/route-table.js'
import { UpstreamEvents } from '../src/routing/upstream-events.js'
import { Supervisor } from '../src/supervision/supervisor.js'
import type { ServerTls } from '../src/tls/server-tls.js'
import { tqserverDataPlanes } from './data-planes.js'
import { tqserverHealth } from './health.js'
import { tqserverHotReload } from './hot-reload.js'
import { tqserverMetrics } from './metrics.js'
import { tqserverProdReload } from './prod-reload.js'
import { tqserverRegistry } from './registry.js'
import { tqserverRouter, type RouterOptions } from './router.js'
import { tqserverSupervisor } from './supervisor.js'

export interface TqServerOptions extends ServerOverrides {
  /** Project root holding workers/ and config/server.yaml. @default process.cwd() */
  root?: string
  /** 'dev' builds every worker at start; 'prod' runs existing builds and builds only what is missing. @default 'prod' */
  mode?: BuildMode
  /** Environment read for TQ_PORT, TQ_HOST, TQ_WORKER_PORTS and TQ_CONFIG. @default process.env */
  env?: Record<string, string | undefined>
  /** Reload on SIGHUP and on POST /__tqserver/reload from loopback or with health.token (as `tqserver start` does). @default false */
  reloadOnSignal?: boolean
  /** Configuration already resolved by the caller (the tqserver CLI); the options above are then ignored. */
  resolved?: ResolvedServerConfig
  /** Resolves the configuration again on a reload (the tqserver CLI, to keep its flags). */
  loadConfig?: () => Promise<ResolvedServerConfig>
  /** Serve GET /metrics (Prometheus); false when the app has its own. @default true */
  metrics?: boolean
  /** Filled with a raw request handler for requests that bypass Fastify (the tqserver CLI). */
  fastPath?: RouterOptions['fastPath']
  /**
   * Serve the port from as many processes as `proxies` says (the tqserver CLI, fastify-cli's app):
   * only for a Fastify instance that serves nothing but tqserver. @default false
   */
  dataPlanes?: boolean
  /** The server listens with `reusePort` (the tqserver CLI, where Node and the OS have it): data planes bind beside it. */
  reusePort?: boolean
  /** The TLS the server serves the port with (the tqserver CLI): shown in /health and /metrics, given to data planes. */
  serverTls?: ServerTls
}

/** Time left for shutdown after the workers' own bounds (drain, then kill). */
const SHUTDOWN_MARGIN_MS = 2_000

async function tqserverPlugin (fastify: FastifyInstance, options: TqServerOptions): Promise<void> {
  const { root, mode, env, resolved, loadConfig: givenLoader, reloadOnSignal, fastPath, metrics: serveMetrics, dataPlanes, reusePort, serverTls, ...overrides } = options
  const loadConfig = givenLoader ?? (() => loadServerConfig({ root: root ?? process.cwd(), overrides, env }))
  const config = resolved ?? await loadConfig()
  const routes = new RouteTable()
  const upstreams = new UpstreamEvents()
  // The gauges read the report when scraped, by then the supervisor exists.
  const metrics: ServerMetrics = new ServerMetrics(() => supervisor.report())
  if (serverTls) metrics.followTls(() => serverTls.report())
  const supervisor = new Supervisor({ root: config.root, config: config.config, mode: mode ?? 'prod', routes, upstreams, metrics, log: fastify.log })
  const prodReload = new ProdReload({ loadConfig, config: config.config, supervisor, log: fastify.log })
  await fastify.register(tqserverRegistry, { routes, upstreams, metrics, supervisor, prodReload, tls: serverTls })
  await fastify.register(tqserverSupervisor, { supervisor, cutAfterDrain: dataPlanes === true })
  const { requestBuffer, bodyIdleTimeout, responseBuffer, sendTimeout, upstreamConnections, headersTimeout, requestTimeout, trustProxy, accessLog } = config.config
  const liveReload = mode === 'dev' && config.config.liveReload
  const slowClients = { requestBuffer, bodyIdleTimeout, responseBuffer, sendTimeout, upstreamConnections }
  await fastify.register(tqserverRouter, { liveReload, accessLog, trust: compileTrust(trustProxy), slowClients, fastPath })
  await fastify.register(tqserverHealth, { token: config.config.health.token })
  if (serveMetrics !== false) await fastify.register(tqserverMetrics, { token: config.config.health.token })
  if (reloadOnSignal === true) await fastify.register(tqserverProdReload, { token: config.config.health.token })
  if (mode === 'dev') await fastify.register(tqserverHotReload, { resolved: config, supervisor })
  if (dataPlanes === true) {
    // Hand-off, which keeps one process, is off when tqserver serves TLS (the tqserver CLI says so).
    const { count, reason, warning } = proxyCount(config.config.proxies, mode ?? 'prod', config.config.handoff && serverTls === undefined)
    fastify.log.info({ proxies: count, reason }, `serving the port from ${count} process${count === 1 ? '' : 'es'} (${reason})`)
    if (warning) fastify.log.warn({ proxies: config.config.proxies }, warning)
    // An app's own HTTPS server (fastify-cli with https options): a data plane would answer its
    // clients in plain HTTP, as only tqserver's own TLS reaches data planes.
    const foreignTls = fastify.server instanceof TlsServer && serverTls === undefined
    if (count > 1 && foreignTls) fastify.log.warn({ proxies: count }, 'one process serves the port: this app terminates TLS itself, which data planes cannot share (docs/tls.md)')
    if (count > 1 && !foreignTls) {
      await fastify.register(tqserverDataPlanes, {
        count,
        settings: { server: { headersTimeout, requestTimeout }, slowClients, trustProxy, accessLog, liveReload, logLevel: fastify.log.level as LogLevel, hsts: config.config.tls.hsts },
        shutdownTimeout: config.config.drainTimeout + config.config.killTimeout + SHUTDOWN_MARGIN_MS,
        reusePort: reusePort === true
      })
    }
  }
}

export const tqserver = fp(tqserverPlugin, { name: 'tqserver', fastify: '5.x' })
export default tqserver
export type { TqServer } from './registry.js'
export type { RouteTable, WorkerEntry } from '../src/routing/route-table.js'
export type { HealthReport, WorkerReport, InstanceReport, ReloadSummary } from '../src/report/health-report.js'
export type { ServerConfig, WorkerConfig } from '../src/config/schema.js'
