// Runs the workers for the life of the Fastify instance: on onReady their routes are set and they
// begin to start (ready() does not wait for them: fastify.tqserver.idle() does); on preClose
// routing stops and the workers begin to drain, and onClose waits until they have stopped.
import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import type { Supervisor } from '../src/supervision/supervisor.js'

export interface SupervisorPluginOptions {
  /** Made by the tqserver plugin, which also hands it to hot reload. */
  supervisor: Supervisor
  /**
   * This Fastify instance serves only tqserver (the tqserver CLI, fastify-cli's app): once the
   * workers have stopped, connections still open (a body never finished) are cut.
   */
  cutAfterDrain: boolean
}

async function supervisorPlugin (fastify: FastifyInstance, { supervisor, cutAfterDrain }: SupervisorPluginOptions): Promise<void> {
  const { tqserver } = fastify
  fastify.addHook('onReady', () => supervisor.start())
  fastify.addHook('preClose', (done) => {
    tqserver.beginClose()
    // The drain begins now, beside the server's own close, not on onClose: the server's close
    // waits for every request in flight, so a request to a worker would otherwise hold the
    // shutdown past drainTimeout (for ever, for an event stream). stop() is idempotent: onClose
    // waits for this same stop and reports its error.
    tqserver.drained = supervisor.stop().catch(() => {})
    // Nothing they wait for can come any more; left open, they would hold the shutdown past its bound.
    if (cutAfterDrain) void tqserver.drained.then(() => fastify.server.closeAllConnections())
    done()
  })
  // Closing the server only closes connections idle at that moment: a keep-alive connection whose
  // response is still in flight would hold the shutdown for the whole keep-alive timeout.
  fastify.addHook('onSend', (_request, reply, payload, done) => {
    if (tqserver.isClosing) reply.header('connection', 'close')
    done(null, payload)
  })
  fastify.addHook('onClose', () => supervisor.stop())
}

export const tqserverSupervisor = fp(supervisorPlugin, {
  name: 'tqserver-supervisor',
  fastify: '5.x',
  dependencies: ['tqserver-registry']
})
export default tqserverSupervisor
