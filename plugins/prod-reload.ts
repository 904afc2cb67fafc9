// Production reload: `fastify.tqserver.reload()` and, when asked for, SIGHUP rescan workers/ and
// the configuration and switch what changed (src/reload/prod-reload.ts). The SIGHUP handler is removed
// when the instance closes.
import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import type { ResolvedServerConfig } from '../src/config/server-config.js'
import { ProdReload } from '../src/reload/prod-reload.js'
import type { Supervisor } from '../src/supervision/supervisor.js'

export interface ProdReloadPluginOptions {
  supervisor: Supervisor
  config: ResolvedServerConfig
  loadConfig: () => Promise<ResolvedServerConfig>
  /** Reload on SIGHUP (the standalone server; an embedding app decides for itself). */
  reloadOnSignal: boolean
}

async function prodReloadPlugin (fastify: FastifyInstance, options: ProdReloadPluginOptions): Promise<void> {
  const prodReload = new ProdReload({ loadConfig: options.loadConfig, config: options.config.config, supervisor: options.supervisor, log: fastify.log })
  fastify.tqserver.attachReload((trigger) => prodReload.reload(trigger))
  if (!options.reloadOnSignal) return
  const onHangup = () => { void prodReload.reload('SIGHUP') }
  process.on('SIGHUP', onHangup)
  fastify.addHook('onClose', (_instance, done) => {
    process.off('SIGHUP', onHangup)
    done()
  })
}

export const tqserverProdReload = fp(prodReloadPlugin, {
  name: 'tqserver-prod-reload',
  fastify: '5.x',
  dependencies: ['tqserver-registry', 'tqserver-supervisor']
})
export default tqserverProdReload
