// Dev mode: watches workers/ and switches a worker when its files change (see src/reload/hot-reload.ts);
// with liveReload, serves an event stream and adds a script to HTML pages so they reload after.
import type { OutgoingHttpHeaders } from 'node:http'
import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import type { ResolvedServerConfig } from '../src/config/server-config.js'
import { HotReload } from '../src/reload/hot-reload.js'
import { EventStreamHub } from '../src/report/event-stream.js'
import { canTakeReloadScript, LIVE_RELOAD_EVENTS, LIVE_RELOAD_SCRIPT, LIVE_RELOAD_SCRIPT_PATH, withReloadScript } from '../src/reload/live-reload.js'
import type { Supervisor } from '../src/supervision/supervisor.js'

export interface HotReloadPluginOptions {
  resolved: ResolvedServerConfig
  supervisor: Supervisor
}

async function hotReloadPlugin (fastify: FastifyInstance, options: HotReloadPluginOptions): Promise<void> {
  const { root, config } = options.resolved
  const liveReload = config.liveReload ? new EventStreamHub() : undefined
  const hotReload = new HotReload({ root, config, supervisor: options.supervisor, log: fastify.log, liveReload })
  // Registered after the supervisor: its onReady (workers registered) runs first, its onClose after.
  fastify.addHook('onReady', () => hotReload.start())
  fastify.addHook('onClose', () => hotReload.close())
  if (!liveReload) return

  fastify.get(LIVE_RELOAD_EVENTS, (_request, reply) => {
    reply.hijack()
    liveReload.attach(reply.raw)
  })
  fastify.get(LIVE_RELOAD_SCRIPT_PATH, async (_request, reply) =>
    reply.type('text/javascript; charset=utf-8').header('cache-control', 'no-store').send(LIVE_RELOAD_SCRIPT))
  // Open event streams would hold the server's close until their clients go.
  fastify.addHook('preClose', (done) => {
    liveReload.close()
    done()
  })
  fastify.addHook('onSend', async (request, reply, payload) => {
    if (request.method !== 'GET' || !canTakeReloadScript(reply.statusCode, reply.getHeaders() as OutgoingHttpHeaders)) return payload
    reply.removeHeader('content-length')
    return withReloadScript(payload)
  })
}

export const tqserverHotReload = fp(hotReloadPlugin, {
  name: 'tqserver-hot-reload',
  fastify: '5.x',
  dependencies: ['tqserver-registry', 'tqserver-supervisor']
})
export default tqserverHotReload
