// The server's own health endpoints. GET /health: the report as JSON (a load balancer, curl), or
// the live dashboard for a browser; details only for requests from this machine or with the
// configured token (src/report/health-access.ts), the status for everyone. GET /livez, GET /readyz. The dashboard's event stream sends the report
// every second while a page is open.
import fp from 'fastify-plugin'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import { DASHBOARD_STREAM, renderDashboard } from '../src/report/dashboard.js'
import { EventStreamHub } from '../src/report/event-stream.js'
import { mayReadDetails } from '../src/report/health-access.js'
import { prefersHtml } from '../src/html.js'

const STREAM_INTERVAL_MS = 1_000

export interface HealthPluginOptions {
  /** health.token from the configuration ('' for none). */
  token: string
}

async function healthPlugin (fastify: FastifyInstance, { token }: HealthPluginOptions): Promise<void> {
  const { tqserver } = fastify
  const noStore = { 'cache-control': 'no-store' }
  const stream = new EventStreamHub()
  let ticker: NodeJS.Timeout | undefined
  const allowed = (request: FastifyRequest) => mayReadDetails(request, token)

  fastify.get('/health', async (request, reply) => {
    const report = await tqserver.currentStatus()
    reply.code(report.status === 'unhealthy' ? 503 : 200).headers(noStore)
    if (!allowed(request)) return reply.send({ status: report.status })
    const { format, token: given } = request.query as { format?: string, token?: string }
    if (format !== 'json' && prefersHtml(request.headers.accept)) {
      return reply.type('text/html; charset=utf-8').send(renderDashboard(report, given ? `?token=${encodeURIComponent(given)}` : ''))
    }
    return reply.send(report)
  })

  fastify.get(DASHBOARD_STREAM, (request, reply) => {
    if (!allowed(request)) return reply.code(403).headers(noStore).send({ statusCode: 403, error: 'Forbidden', message: 'health details need loopback or the token' })
    reply.hijack()
    stream.attach(reply.raw)
    stream.send('report', tqserver.status(), reply.raw)
    // One timer for all pages, running only while one is open.
    ticker ??= setInterval(() => {
      if (stream.size === 0) {
        clearInterval(ticker)
        ticker = undefined
        return
      }
      stream.send('report', tqserver.status())
    }, STREAM_INTERVAL_MS).unref()
  })

  // Answers while the event loop does: nothing here waits on a worker.
  fastify.get('/livez', async (_request, reply) => reply.headers(noStore).send({ status: 'ok' }))

  // Ready: this host can serve. One worker down is /health's news (degraded), not a reason for a
  // load balancer to drop the whole host, and with it every healthy route; no worker serving is.
  fastify.get('/readyz', async (_request, reply) => {
    const ready = !tqserver.isClosing && tqserver.status().status !== 'unhealthy'
    return reply.code(ready ? 200 : 503).headers(noStore).send({ status: ready ? 'ready' : tqserver.isClosing ? 'closing' : 'not ready' })
  })

  // Open dashboards would hold the server's close until their pages go.
  fastify.addHook('preClose', (done) => {
    clearInterval(ticker)
    stream.close()
    done()
  })
}

export const tqserverHealth = fp(healthPlugin, {
  name: 'tqserver-health',
  fastify: '5.x',
  dependencies: ['tqserver-registry', 'tqserver-supervisor']
})
export default tqserverHealth
