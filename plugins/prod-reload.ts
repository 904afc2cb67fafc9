// Production reload on SIGHUP (`tqserver start` asks for it; an embedding app decides for itself):
// rescans workers/ and the configuration and switches what changed, as fastify.tqserver.reload()
// does (src/reload/prod-reload.ts). The handler is removed when the instance closes.
import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'

async function prodReloadPlugin (fastify: FastifyInstance): Promise<void> {
  const onHangup = () => { void fastify.tqserver.reload('SIGHUP') }
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
