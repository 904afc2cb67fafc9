// Serves the public port from several processes (`proxies` in server.yaml): the control plane
// (this process, with the supervisor, builds, health checks, /health, /metrics and the dashboard)
// and N - 1 data planes it forks once the server listens (src/proxy/data-planes.ts). Registered
// by the tqserver CLI and fastify-cli's app, where this Fastify instance serves only tqserver; an
// app that registers tqserver beside routes of its own keeps one process, since a data plane runs
// only tqserver's proxy, not the app.
import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import type { DataPlaneSettings } from '../src/proxy/data-plane-protocol.js'
import { DataPlanes } from '../src/proxy/data-planes.js'

export interface DataPlanesPluginOptions {
  /** Processes serving the port, this one included. */
  count: number
  settings: Omit<DataPlaneSettings, 'relay'>
  /** How long the data planes may take to exit at shutdown before they are killed. */
  shutdownTimeout: number
  /** The server listens with SO_REUSEPORT (the tqserver CLI on Linux): data planes bind beside it. */
  reusePort: boolean
}

async function dataPlanesPlugin (fastify: FastifyInstance, { count, settings, shutdownTimeout, reusePort }: DataPlanesPluginOptions): Promise<void> {
  const { tqserver } = fastify
  const planes = new DataPlanes({
    count: count - 1,
    settings,
    routes: tqserver.routes,
    upstreams: tqserver.upstreams,
    target: fastify.server,
    served: () => tqserver.metrics.served,
    tls: tqserver.tls,
    log: fastify.log
  })
  tqserver.metrics.others = () => planes.metrics()
  tqserver.dataPlanes = planes
  // Forked with the listening socket, so only once the server listens; a server that never does
  // (inject() in tests) forks none.
  fastify.addHook('onListen', async () => {
    await planes.start(fastify.server, reusePort)
    fastify.log.info({ proxies: count, dataPlanes: planes.pids, reusePort }, 'data planes serving')
  })
  fastify.addHook('preClose', (done) => {
    planes.close()
    // Once the workers have stopped, each data plane cuts what it still holds open.
    void tqserver.drained?.then(() => planes.close(true))
    done()
  })
  fastify.addHook('onClose', () => planes.closed(shutdownTimeout))
}

export const tqserverDataPlanes = fp(dataPlanesPlugin, {
  name: 'tqserver-data-planes',
  fastify: '5.x',
  dependencies: ['tqserver-registry']
})
export default tqserverDataPlanes
