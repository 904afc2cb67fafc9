// The standalone server behind `tqserver dev` and `tqserver start`: a Fastify host with the
// tqserver plugin, listening on the configured port, shut down gracefully by SIGTERM or SIGINT.
// SIGHUP is not a shutdown here: it reloads what changed. .tqserver/servers/<port>.json names the
// running server for `tqserver reload`.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import { resolve } from 'node:path'
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify'
import closeWithGrace from 'close-with-grace'
import type { BuildMode } from '../src/build/builder.js'
import { loadServerConfig, type ServerOverrides } from '../src/config/server-config.js'
import { createLogger } from '../src/logger.js'
import { HandoffFront } from '../src/proxy/handoff-front.js'
import { toOriginForm } from '../src/proxy/request-router.js'
import { portOf, removeServerFile, writeServerFile } from '../src/server-file.js'
import { isPortFree } from '../src/process/port-pool.js'
import { isHostPath } from '../src/url-paths.js'
import { TQ_ERR_PORT_IN_USE } from '../src/errors.js'
import { tqserver } from './index.js'

/** How often Node looks for clients past headersTimeout or requestTimeout (its default: 30 s). */
const SLOW_CLIENT_CHECK_MS = 1_000
/** Idle keep-alive connections from clients are kept this long (Fastify's default). */
const CLIENT_KEEP_ALIVE_MS = 72_000
/** Time left for shutdown after the workers' own bounds (drain, then kill). */
const SHUTDOWN_MARGIN_MS = 2_000

export interface StandaloneOptions {
  root: string
  mode: BuildMode
  /** Command-line flags: the highest precedence. */
  flags: ServerOverrides
  env?: Record<string, string | undefined>
  /** Pretty, human-readable log lines (pino-pretty) instead of JSON. */
  prettyLogs?: boolean
}

export async function startServer (options: StandaloneOptions): Promise<FastifyInstance> {
  const loadConfig = () => loadServerConfig({
    root: options.root,
    overrides: options.flags,
    overrideLabel: (key) => `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`,
    env: options.env
  })
  const resolved = await loadConfig()
  const { config, root } = resolved
  // Before any worker starts: a held port is a quick, clear error instead of a slow one.
  if (config.port !== 0 && !await isPortFree(config.port, config.host)) throw new TQ_ERR_PORT_IN_USE(config.port, config.host)

  const { logFile } = config
  const file = logFile.path === '' ? undefined : { ...logFile, path: resolve(root, logFile.path) }
  const loggerInstance: FastifyBaseLogger = createLogger(config.logLevel, options.prettyLogs ?? false, file)
  // Requests for workers skip Fastify: the HTTP server hands them to the proxy directly, and
  // Fastify routes only the server's own paths (/health, /livez, /readyz, /__tqserver/...).
  // WebSocket upgrades still go through Fastify (the router plugin's tunnel).
  const fastPath: { handle?: (req: IncomingMessage, res: ServerResponse, awaitingContinue?: boolean) => void } = {}
  const app = Fastify({
    loggerInstance,
    logController: new LogController({ disableRequestLogging: true }),
    serverFactory: (fastifyHandler) => {
      // An absolute-form target (http://host/health) is routed by its path, here as by Fastify.
      const serve = (req: IncomingMessage, res: ServerResponse, awaitingContinue: boolean) => {
        if (fastPath.handle && !(toOriginForm(req) && isHostPath(req.url ?? '/'))) return fastPath.handle(req, res, awaitingContinue)
        if (awaitingContinue) res.writeContinue()
        fastifyHandler(req, res)
      }
      return createServer({
        // Slow clients (slowloris headers, trickled bodies) are cut off; Node checks every second.
        headersTimeout: config.headersTimeout,
        requestTimeout: config.requestTimeout,
        connectionsCheckingInterval: SLOW_CLIENT_CHECK_MS,
        keepAliveTimeout: CLIENT_KEEP_ALIVE_MS
      }, (req, res) => serve(req, res, false))
        // Expect: 100-continue is ours to answer: the router sends 100 once it forwards the body.
        .on('checkContinue', (req: IncomingMessage, res: ServerResponse) => serve(req, res, true))
    }
  })
  await app.register(tqserver, { resolved, loadConfig, mode: options.mode, reloadOnSignal: true, fastPath })

  const shutdownBound = Math.max(config.drainTimeout, 0) + config.killTimeout + SHUTDOWN_MARGIN_MS
  const closer = closeWithGrace({ delay: shutdownBound, skip: ['SIGHUP'], logger: false }, async ({ signal, err }) => {
    if (err) app.log.error({ err }, 'shutting down after an error')
    else app.log.info({ signal }, 'shutting down: draining workers')
    await app.close()
  })
  let port: number | undefined
  app.addHook('onClose', async () => {
    closer.uninstall()
    if (port !== undefined) await removeServerFile(root, port, process.pid)
  })

  // With hand-off, a front server takes the public port and Fastify listens on loopback only,
  // for what the front does not hand to a worker (src/proxy/handoff-front.ts).
  const front = config.handoff
    ? new HandoffFront({
      routes: app.tqserver.routes,
      upstreams: app.tqserver.upstreams,
      local: app.server,
      headersTimeout: config.headersTimeout,
      requestTimeout: config.requestTimeout,
      accessLog: config.accessLog,
      log: app.log
    })
    : undefined
  // Stop accepting on the front first; Fastify then closes the connections it serves.
  app.addHook('preClose', (done) => {
    front?.server.close()
    done()
  })
  let url: string
  try {
    await app.listen(front ? { port: 0, host: '127.0.0.1' } : { port: config.port, host: config.host })
    url = front ? await front.listen(config.port, config.host) : listenUrl(app)
  } catch (err) {
    front?.server.close()
    await app.close()
    if ((err as NodeJS.ErrnoException).code === 'EADDRINUSE') throw new TQ_ERR_PORT_IN_USE(config.port, config.host)
    throw err
  }
  port = portOf(url)
  await writeServerFile(root, port, { pid: process.pid, url, mode: options.mode, startedAt: Date.now() })
  app.log.info({ url, mode: options.mode, handoff: config.handoff, workers: Object.keys(app.tqserver.status().workers) }, 'tqserver listening')
  return app
}

function listenUrl (app: FastifyInstance): string {
  const address = app.server.address()
  if (address === null || typeof address === 'string') return String(address)
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address
  return `http://${host}:${address.port}`
}
