// A host Fastify app with the tqserver plugin, listening on a free port, closed after the test.
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify'
import { pino } from 'pino'
import { Agent, type Dispatcher } from 'undici'
import type { TestContext } from 'node:test'
import { tqserver, type TqServerOptions } from '../../plugins/index.js'
import { LogRecorder } from './logs.js'
import { defer } from './cleanup.js'

export interface Host {
  app: FastifyInstance
  url: string
  logs: LogRecorder
  /** Sends a request to the host; the connection pool is closed after the test. */
  fetch: (path: string, options?: Omit<Dispatcher.RequestOptions, 'origin' | 'path' | 'method'> & { method?: Dispatcher.HttpMethod }) => Promise<Dispatcher.ResponseData>
}

export async function startHost (t: TestContext, options: TqServerOptions, setup?: (app: FastifyInstance) => void | Promise<void>, { wait = true } = {}): Promise<Host> {
  const logs = new LogRecorder()
  const loggerInstance: FastifyBaseLogger = pino({ level: 'trace' }, logs)
  const app = Fastify({ loggerInstance, logController: new LogController({ disableRequestLogging: true }) })
  defer(t, () => app.close())
  await setup?.(app)
  await app.register(tqserver, { env: {}, ...options })
  await app.listen({ port: 0, host: '127.0.0.1' })
  // The workers start after listen; most tests want them serving first.
  if (wait) await app.tqserver.idle()
  const address = app.server.address()
  const url = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`
  return { app, url, logs, fetch: clientFor(t, url) }
}

/** A client whose paths are sent exactly as written (no URL parsing, so no normalising). */
export function clientFor (t: TestContext, url: string): Host['fetch'] {
  const agent = new Agent()
  // destroy, not close: a response still streaming (an event stream) would hold close forever.
  defer(t, () => agent.destroy())
  return (path, options = {}) => agent.request({ origin: url, path, method: 'GET', ...options })
}
