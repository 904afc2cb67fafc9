// Decorates the root instance, once, with `fastify.tqserver`: the server's parts that the other
// tqserver plugins share (route table, upstream events, metrics) and the control an app uses
// (status, stop, restart, reload, idle). Built after the supervisor exists, so every method works
// from the start; the object is never replaced, only the parts it holds change.
import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import type { ProdReload } from '../src/reload/prod-reload.js'
import type { DataPlaneReport, HealthReport, ReloadSummary } from '../src/report/health-report.js'
import type { ServerMetrics } from '../src/report/metrics.js'
import type { RouteTable } from '../src/routing/route-table.js'
import type { UpstreamEvents } from '../src/routing/upstream-events.js'
import type { Supervisor } from '../src/supervision/supervisor.js'
import type { ServerTls } from '../src/tls/server-tls.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** tqserver's route table and workers: status(), stop(), restart(), reload(), idle(). */
    tqserver: TqServer
  }
}

export interface TqServerParts {
  routes: RouteTable
  upstreams: UpstreamEvents
  metrics: ServerMetrics
  supervisor: Supervisor
  prodReload: ProdReload
  /** The TLS the port is served with, when tqserver serves it (the tqserver CLI). */
  tls?: ServerTls | undefined
}

export class TqServer {
  /** Which worker serves which prefix, its instances and upstreams. */
  readonly routes: RouteTable
  /** What happens to upstreams (draining, retired, ...), for those holding connections to them. */
  readonly upstreams: UpstreamEvents
  /** What GET /metrics reports. */
  readonly metrics: ServerMetrics
  readonly #supervisor: Supervisor
  readonly #prodReload: ProdReload
  /** The certificate served on the port and its state, when tqserver terminates TLS. */
  readonly tls: ServerTls | undefined
  #closing = false
  /** Set while data planes serve beside this process (plugins/data-planes.ts). */
  dataPlanes: { report: () => DataPlaneReport[], refresh: () => Promise<void> } | undefined

  constructor (parts: TqServerParts) {
    this.routes = parts.routes
    this.upstreams = parts.upstreams
    this.metrics = parts.metrics
    this.#supervisor = parts.supervisor
    this.#prodReload = parts.prodReload
    this.tls = parts.tls
  }

  /** The health report behind GET /health. */
  status (): HealthReport {
    const report = this.#supervisor.report()
    if (this.dataPlanes) report.dataPlanes = this.dataPlanes.report()
    if (this.tls) report.tls = this.tls.report()
    return report
  }

  /** The health report with every data plane's requests counted up to now (status() may be a second behind). */
  async currentStatus (): Promise<HealthReport> {
    await this.dataPlanes?.refresh()
    return this.status()
  }

  /** Drains and stops a worker and removes its route. */
  stop (name: string): Promise<void> {
    return this.#supervisor.stopWorker(name, 'stopped through fastify.tqserver')
  }

  /** Replaces a worker's instances with fresh ones of the same version, with the switch. */
  async restart (name: string): Promise<void> {
    await this.#supervisor.restartWorker(name, 'restart requested')
  }

  /**
   * Rescans workers/ and the configuration and switches what changed (what SIGHUP does under
   * `tqserver start`): new builds, worker.yaml edits, added and removed workers.
   */
  reload (trigger = 'fastify.tqserver.reload()'): Promise<ReloadSummary> {
    return this.#prodReload.reload(trigger)
  }

  /**
   * Resolves when no worker switch is running or queued. After `ready()`, that is once every
   * worker has been started (serving, or failed and reported): ready() does not wait for them.
   */
  idle (): Promise<void> {
    return this.#supervisor.idle()
  }

  /** True from the moment the server begins to close: /readyz fails, answers close their connection. */
  get isClosing (): boolean {
    return this.#closing
  }

  /** Resolves once every worker has stopped, after the server began to close. */
  drained: Promise<void> | undefined

  /** Called once, when the server begins to close. */
  beginClose (): void {
    this.#closing = true
  }
}

async function registryPlugin (fastify: FastifyInstance, parts: TqServerParts): Promise<void> {
  fastify.decorate('tqserver', new TqServer(parts))
}

export const tqserverRegistry = fp(registryPlugin, { name: 'tqserver-registry', fastify: '5.x' })
export default tqserverRegistry
