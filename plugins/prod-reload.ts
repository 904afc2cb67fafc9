// Production reload on SIGHUP and on POST /__tqserver/reload (`tqserver start` asks for both; an
// embedding app decides for itself): rescans workers/ and the configuration and switches what
// changed, as fastify.tqserver.reload() does (src/reload/prod-reload.ts). The POST is for a server
// the caller cannot signal (`tqserver reload --url`, another root or machine); it is answered 202 at
// once, and /health's lastReload tells when the reload is done. The handler is removed on close.
import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import { mayReadDetails } from '../src/report/health-access.js'
import { RELOAD_PATH } from '../src/url-paths.js'

export interface ProdReloadPluginOptions {
  /** health.token from the configuration ('' for none): the POST takes the same callers as /health details. */
  token: string
}

async function prodReloadPlugin (fastify: FastifyInstance, { token }: ProdReloadPluginOptions): Promise<void> {
  const onHangup = () => { void fastify.tqserver.reload('SIGHUP') }
  process.on('SIGHUP', onHangup)
  fastify.addHook('onClose', (_instance, done) => {
    process.off('SIGHUP', onHangup)
    done()
  })

  fastify.post(RELOAD_PATH, async (request, reply) => {
    reply.header('cache-control', 'no-store')
    // Browsers send Origin with every POST, the CLI and curl do not: a page open in a browser on
    // this machine (a worker's own, or any site's) must not pass as a local caller.
    if (request.headers.origin !== undefined || !mayReadDetails(request, token, { tokenInQuery: false })) {
      return reply.code(403).send({ statusCode: 403, error: 'Forbidden', message: 'a reload needs loopback or the health token, and no browser' })
    }
    if (fastify.tqserver.isClosing) return reply.code(503).send({ statusCode: 503, error: 'Service Unavailable', message: 'the server is shutting down' })
    // On the server's clock: the reload that serves this request is the first to begin at or after it.
    const at = Date.now()
    void fastify.tqserver.reload(`POST ${RELOAD_PATH}`)
    return reply.code(202).send({ status: 'accepted', at })
  })
}

export const tqserverProdReload = fp(prodReloadPlugin, {
  name: 'tqserver-prod-reload',
  fastify: '5.x',
  dependencies: ['tqserver-registry', 'tqserver-supervisor']
})
export default tqserverProdReload
