// The tqserver plugin as fastify-cli loads it (package export "./app"):
//   fastify start -o -g 20000 -l info node_modules/tqserver/dist/plugins/app.js -- --mode prod
// fastify-cli registers the default export with the `options` export (read with -o) merged into
// the plugin options, followed by what comes after `--`; only tqserver's own keys are passed on.
// Run it without -w: fastify-cli's watch restarts the whole host, workers included, while
// `-- --mode dev` reloads a worker in milliseconds. -g must exceed drainTimeout + killTimeout so
// that a shutdown can drain. SIGHUP under fastify-cli shuts down (it installs close-with-grace
// without a skip list); `tqserver start` uses SIGHUP to reload instead.
import fp from 'fastify-plugin'
import { LogController, type FastifyInstance } from 'fastify'
import { tqserver, type TqServerOptions } from './index.js'

const PASSED_ON = ['root', 'mode', 'workerPorts', 'proxies', 'config', 'metrics'] as const

async function app (fastify: FastifyInstance, options: Record<string, unknown>): Promise<void> {
  // Arguments after `--` come as text: `--proxies 2` is the number 2.
  const own = Object.fromEntries(PASSED_ON.filter((key) => options[key] !== undefined)
    .map((key) => [key, key === 'proxies' && /^[0-9]+$/.test(String(options[key])) ? Number(options[key]) : options[key]]))
  // This instance serves only tqserver: the port can be served by data planes too (`proxies`).
  await fastify.register(tqserver, { ...own, dataPlanes: true } as TqServerOptions)
}

export default fp(app, { name: 'tqserver-app', fastify: '5.x' })

/** Fastify server options: tqserver logs what matters itself, per request logging costs CPU. */
export const options = {
  logController: new LogController({ disableRequestLogging: true })
}
