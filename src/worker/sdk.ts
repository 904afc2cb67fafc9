// tqserver/worker: the worker contract in one call. serve() builds a Fastify app, lets `setup` add
// routes, answers GET /health, listens on PORT/HOST, tells the server it is ready over IPC,
// drains on SIGTERM and exits when the server goes away, and trusts the host's forwarding headers
// (req.ip is the client). Nothing requires a worker to use it.
import { request } from 'node:http'
import Fastify, { LogController, type FastifyInstance, type FastifyServerOptions } from 'fastify'
import { WORKER_ENV } from '../env-names.js'
import { workerTrust } from '../forwarded-headers.js'
import { HandoffServer } from './handoff-receiver.js'
import AjvCompiler from '@fastify/ajv-compiler'
import SerializerSelector from '@fastify/fast-json-stringify-compiler'

export type { FastifyInstance } from 'fastify'

const KEEP_ALIVE_MS = 72_000
/**
 * How often Node looks for clients past headersTimeout or requestTimeout (its default: 30 s), as
 * the host does: handed-off connections get the host's limits (src/worker/handoff-receiver.ts).
 */
const SLOW_CLIENT_CHECK_MS = 1_000

export interface WorkerEnv {
  /** Port to listen on (PORT; 3000 when run by hand). */
  port: number
  /** Address to listen on (HOST; 127.0.0.1 when run by hand). */
  host: string
  /** Worker folder name (TQ_WORKER_NAME). */
  name: string
  /** URL prefix the host serves this worker at (TQ_WORKER_ROUTE); requests arrive with it removed. */
  route: string
  /** 'dev' under `tqserver dev`, 'prod' otherwise (TQ_MODE). */
  mode: 'dev' | 'prod'
}

export function workerEnv (env: NodeJS.ProcessEnv = process.env): WorkerEnv {
  return {
    port: Number(env[WORKER_ENV.port] ?? 3000),
    host: env[WORKER_ENV.host] ?? '127.0.0.1',
    name: env[WORKER_ENV.name] ?? 'worker',
    route: env[WORKER_ENV.route] ?? '/',
    mode: env[WORKER_ENV.mode] === 'dev' ? 'dev' : 'prod'
  }
}

export interface ServeOptions {
  /**
   * Options for the Fastify factory, over the SDK's: a JSON logger at TQ_LOG_LEVEL (default info),
   * no per-request log lines and, under tqserver, a trustProxy that trusts the host and whom the
   * host trusts (so req.ip, req.protocol and req.host are the client's).
   */
  fastify?: FastifyServerOptions
  /** Decides the answer to GET /health: false or a throw gives 503. @default always healthy */
  health?: () => boolean | Promise<boolean>
}

export type WorkerSetup = (app: FastifyInstance, env: WorkerEnv) => void | Promise<void>

/**
 * Schema compilers made by warmUp() in a standby process and shared with the app it later loads:
 * a new app's ready() then skips building Ajv again (about 20 ms).
 */
let warmCompilers: { buildValidator: ReturnType<typeof AjvCompiler>, buildSerializer: ReturnType<typeof SerializerSelector> } | undefined

/** Builds, starts and returns the worker's Fastify app (already listening). */
export async function serve (setup: WorkerSetup, options: ServeOptions = {}): Promise<FastifyInstance> {
  const env = workerEnv()
  // Connections the host hands over (handoff: true) are served by our own HTTP server; an app
  // that brings its own server (HTTPS, HTTP/2, serverFactory) just does not take them.
  const ownServer = !options.fastify?.serverFactory && !('https' in (options.fastify ?? {})) && !('http2' in (options.fastify ?? {}))
  // Run by tqserver: the host (on loopback) sets X-Forwarded-*; run by hand, nothing is trusted.
  const hostTrust = process.env[WORKER_ENV.hostTrustProxy]
  const app = Fastify({
    logger: { level: process.env.TQ_LOG_LEVEL ?? 'info' },
    ...(hostTrust !== undefined && { trustProxy: workerTrust(hostTrust) }),
    logController: new LogController({ disableRequestLogging: true }),
    ...(warmCompilers && { schemaController: { compilersFactory: warmCompilers } }),
    ...(ownServer && {
      serverFactory: (handler) => {
        const server = new HandoffServer(env.route, { connectionsCheckingInterval: SLOW_CLIENT_CHECK_MS }, handler)
        // Fastify's default, which it sets only on servers it makes: the host keeps its pooled
        // connections about as long (undici follows the Keep-Alive hint).
        server.keepAliveTimeout = KEEP_ALIVE_MS
        return server
      }
    }),
    ...options.fastify
  } as FastifyServerOptions)
  const health = options.health
  app.get('/health', async (_request, reply) => {
    const healthy = health ? await Promise.resolve().then(health).catch(() => false) : true
    return reply.code(healthy ? 200 : 503).send({ status: healthy ? 'ok' : 'unhealthy' })
  })
  await app.register(async (instance) => setup(instance, env))
  await app.listen({ port: env.port, host: env.host })
  process.send?.({ type: 'ready', handoff: ownServer })
  handleShutdown(app)
  return app
}

/**
 * Pays Fastify's first-use costs ahead of time (lazy loading, Ajv, the HTTP stack) with a throw-away
 * app that serves one real request. Called by tqserver's standby processes, not by workers.
 */
export async function warmUp (): Promise<void> {
  warmCompilers = { buildValidator: AjvCompiler(), buildSerializer: SerializerSelector() }
  const app = Fastify({ logger: { level: 'silent' }, schemaController: { compilersFactory: warmCompilers } })
  const schema = { type: 'object', properties: { name: { type: 'string' } } }
  app.post('/warm', { schema: { body: schema, response: { 200: schema } } }, async (req) => req.body)
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as { port: number }
  await new Promise<void>((resolve, reject) => {
    const req = request({ port, host: '127.0.0.1', method: 'POST', path: '/warm', agent: false, headers: { 'content-type': 'application/json' } }, (res) => {
      res.resume()
      res.once('end', resolve)
    })
    req.once('error', reject)
    req.end('{"name":"warm"}')
  })
  await app.close()
}

function handleShutdown (app: FastifyInstance): void {
  let closing = false
  const close = (signal: string) => {
    if (closing) return
    closing = true
    app.log.info({ signal }, 'worker closing')
    // close() stops accepting, lets in-flight requests finish and closes idle connections.
    app.close().then(() => process.exit(0), (err: unknown) => {
      app.log.error({ err }, 'worker failed to close')
      process.exit(1)
    })
  }
  process.once('SIGTERM', () => close('SIGTERM'))
  process.once('SIGINT', () => close('SIGINT'))
  // The server that started us is gone (even if it was killed): nobody can reach us any more.
  process.once('disconnect', () => process.exit(0))
}
