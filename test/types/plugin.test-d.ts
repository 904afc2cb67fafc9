// Types a consumer relies on: the plugin's options, and fastify.tqserver by declaration merging.
// Checked by tsd against the built declarations (npm test); a broken type fails the tests.
import Fastify from 'fastify'
import { expectAssignable, expectError, expectType } from 'tsd'
import tqserver, { type HealthReport, type TqServer, type TqServerOptions } from 'tqserver'
import { serve, type WorkerEnv } from 'tqserver/worker'

const app = Fastify()
await app.register(tqserver, { root: '/srv/site', mode: 'prod', workerPorts: '9000-9099', metrics: false })
await app.register(tqserver)
expectError(app.register(tqserver, { mode: 'production' }))
expectError(app.register(tqserver, { root: 42 }))
expectAssignable<TqServerOptions>({ port: 8080, host: '127.0.0.1', config: 'config/server.yaml', reloadOnSignal: true })

expectType<TqServer>(app.tqserver)
const report = app.tqserver.status()
expectType<HealthReport>(report)
expectType<'healthy' | 'degraded' | 'unhealthy'>(report.status)
expectType<number | null>(report.workers.api!.instances[0]!.pid)
expectType<Promise<void>>(app.tqserver.idle())
expectError(app.tqserver.restart())

await serve(async (worker, env) => {
  expectType<WorkerEnv>(env)
  expectType<string>(env.route)
  worker.get('/', async () => ({ ok: true }))
})
