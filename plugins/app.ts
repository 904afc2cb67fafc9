// The tqserver plugin as fastify-cli loads it (package export "./app"):
//   fastify start -o -g 20000 -l info node_modules/tqserver/dist/plugins/app.js
// fastify-cli registers the default export; being fastify-plugin wrapped, its decorator and the
// /health routes land on the root instance. `options` (read with -o) are the server options.
// Run it without -w: fastify-cli's watch restarts the whole host, workers included; tqserver dev
// reloads workers itself. SIGHUP under fastify-cli shuts down (it installs close-with-grace
// without a skip list); `tqserver start` uses SIGHUP to reload instead.
import { LogController } from 'fastify'
import { tqserver } from './index.js'

export default tqserver

export const options = {
  logController: new LogController({ disableRequestLogging: true })
}
