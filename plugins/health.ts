// The server's own health endpoints: GET /health (the aggregated report), /livez and /readyz.
import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'

async function healthPlugin (fastify: FastifyInstance): Promise<void> {
  const registry = fastify.tqserver
  const noStore = { 'cache-control': 'no-store' }

  fastify.get('/health', async (_request, reply) => {
    const report = registry.status()
    return reply.code(report.status === 'unhealthy' ? 503 : 200).headers(noStore).send(report)
  })

  // Answers while the event loop does: nothing here waits on a worker.
  fastify.get('/livez', async (_request, reply) => reply.headers(noStore).send({ status: 'ok' }))

  fastify.get('/readyz', async (_request, reply) => {
    const report = registry.status()
    const ready = !registry.isClosing && Object.values(report.workers).every((worker) => worker.status !== 'unhealthy')
    return reply.code(ready ? 200 : 503).headers(noStore).send({ status: ready ? 'ready' : registry.isClosing ? 'closing' : 'not ready' })
  })
}

export const tqserverHealth = fp(healthPlugin, {
  name: 'tqserver-health',
  fastify: '5.x',
  dependencies: ['tqserver-registry', 'tqserver-supervisor']
})
export default tqserverHealth
