// GET /metrics: Prometheus text (see src/report/metrics.ts), for loopback or the health token, like the
// /health details: a scrape from elsewhere carries `Authorization: Bearer <health.token>` (in the
// header only, never as ?token=: query strings end up in access logs).
import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import { mayReadDetails } from '../src/report/health-access.js'

export interface MetricsPluginOptions {
  /** health.token from the configuration ('' for none). */
  token: string
}

async function metricsPlugin (fastify: FastifyInstance, { token }: MetricsPluginOptions): Promise<void> {
  const { metrics } = fastify.tqserver
  fastify.get('/metrics', async (request, reply) => {
    reply.header('cache-control', 'no-store')
    if (!mayReadDetails(request, token, { tokenInQuery: false })) {
      return reply.code(403).send({ statusCode: 403, error: 'Forbidden', message: 'metrics need loopback or the health token' })
    }
    return reply.type(metrics.contentType).send(await metrics.text())
  })
}

export const tqserverMetrics = fp(metricsPlugin, {
  name: 'tqserver-metrics',
  fastify: '5.x',
  dependencies: ['tqserver-registry', 'tqserver-supervisor']
})
export default tqserverMetrics
