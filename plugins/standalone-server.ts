// The standalone server behind `tqserver dev` and `tqserver start`: a Fastify host with the
// tqserver plugin, listening on the configured port, shut down gracefully by SIGTERM or SIGINT.
// SIGHUP is not a shutdown here: it reloads what changed. .tqserver/servers/<port>.json names the
// running server for `tqserver reload`.
import type { IncomingMessage, ServerResponse } from 'node:http'
import { once } from 'node:events'
import { resolve } from 'node:path'
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyListenOptions } from 'fastify'
import closeWithGrace from 'close-with-grace'
import type { BuildMode } from '../src/build/builder.js'
import { flagName } from '../src/config/describe.js'
import type { ServerConfig } from '../src/config/schema.js'
import { loadServerConfig, type ServerOverrides } from '../src/config/server-config.js'
import { createLogger } from '../src/logger.js'
import { HandoffFront } from '../src/proxy/handoff-front.js'
import { hasReusePort, proxyCount } from '../src/proxy/proxy-count.js'
import { createPublicServer, updateTls } from '../src/proxy/public-server.js'
import { createRedirectServer } from '../src/proxy/redirect-server.js'
import { ServerTls } from '../src/tls/server-tls.js'
import { toOriginForm } from '../src/proxy/request-router.js'
import { portOf, removeServerFile, writeServerFile } from '../src/server-file.js'
import { isPortFree } from '../src/process/port-pool.js'
import { isHostPath } from '../src/url-paths.js'
import { TQ_ERR_PORT_IN_USE } from '../src/errors.js'
import { tqserver } from './index.js'

const STOP_SIGNALS = ['SIGINT', 'SIGTERM'] as const
/** How soon npm passes on a signal that the terminal has also sent us (see stopSignalHandler). */
const NPM_ECHO_MS = 250
const NPM_PARENT_CHECK_MS = 500

/**
 * The first SIGINT or SIGTERM drains and exits 0; a second one exits at once with 1. Under npm
 * (`npm run dev` with `exec`), Ctrl-C reaches us twice: from the terminal, and from npm, which
 * passes signals on to its script. That copy, the same signal within NPM_ECHO_MS, is not a second
 * Ctrl-C.
 */
function stopSignalHandler (log: FastifyBaseLogger, close: () => unknown) {
  const underNpm = process.env.npm_lifecycle_event !== undefined
  let first: { signal: NodeJS.Signals, at: number } | undefined
  return (signal: NodeJS.Signals) => {
    if (first === undefined) {
      first = { signal, at: Date.now() }
      log.info({ signal }, 'shutting down: draining workers')
      close()
    } else if (!(underNpm && signal === first.signal && Date.now() - first.at < NPM_ECHO_MS)) {
      log.error({ signal }, `second ${signal}: exiting now`)
      process.exit(1)
    }
  }
}

/**
 * Under npm (`npx tqserver start`, a script without `exec`), a SIGTERM sent to npm is passed on to
 * npm's shell, which dies of it and leaves the server running with no one to stop it. The shell's
 * end (a new parent) is taken for that SIGTERM. Elsewhere a parent's end means nothing: `nohup`.
 */
function stopWhenNpmIsGone (log: FastifyBaseLogger, stop: (signal: NodeJS.Signals) => void): NodeJS.Timeout | undefined {
  if (process.env.npm_lifecycle_event === undefined) return undefined
  const parent = process.ppid
  const timer = setInterval(() => {
    if (process.ppid === parent) return
    clearInterval(timer)
    log.warn({ parent }, 'npm, which started this server, has gone: stopping as on SIGTERM')
    stop('SIGTERM')
  }, NPM_PARENT_CHECK_MS).unref()
  return timer
}

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
    overrideLabel: (key) => `--${flagName(key)}`,
    env: options.env
  })
  const resolved = await loadConfig()
  const { config, root } = resolved
  // Before any worker starts: a held port is a quick, clear error instead of a slow one.
  for (const port of [config.port, config.tls.httpPort]) {
    if (port !== 0 && !await isPortFree(port, config.host)) throw portInUse(port, config)
  }

  const { logFile } = config
  const file = logFile.path === '' ? undefined : { ...logFile, path: resolve(root, logFile.path) }
  const loggerInstance: FastifyBaseLogger = createLogger(config.logLevel, options.prettyLogs ?? false, file)
  // A certificate from files is checked before anything listens; ACME's comes once the plain
  // port, where the CA checks the domain, listens (below).
  const tls = ServerTls.wanted(config.tls) ? new ServerTls(config.tls, root, loggerInstance) : undefined
  await tls?.prepare()
  const handoff = config.handoff && tls === undefined
  if (config.handoff && tls) loggerInstance.warn('handoff is off: connections are TLS, which the host decrypts; workers get plain HTTP (docs/tls.md)')
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
      const server = createPublicServer(config, serve, tls && { material: tls.material, hsts: config.tls.hsts })
      tls?.onChange((material) => updateTls(server, material))
      return server
    }
  })
  // Data planes bind the port beside this process where the kernel can spread connections evenly.
  const reusePort = hasReusePort() && proxyCount(config.proxies, options.mode, handoff).count > 1
  await app.register(tqserver, { resolved, loadConfig, mode: options.mode, reloadOnSignal: true, fastPath, dataPlanes: true, reusePort, serverTls: tls })

  const shutdownBound = Math.max(config.drainTimeout, 0) + config.killTimeout + SHUTDOWN_MARGIN_MS
  const closer = closeWithGrace({ delay: shutdownBound, skip: ['SIGHUP', ...STOP_SIGNALS], logger: false }, async ({ err }) => {
    if (err) app.log.error({ err }, 'shutting down after an error')
    await app.close()
  })
  const stopOnSignal = stopSignalHandler(app.log, () => closer.close())
  for (const signal of STOP_SIGNALS) process.on(signal, stopOnSignal)
  const npmWatch = stopWhenNpmIsGone(app.log, stopOnSignal)
  let port: number | undefined
  // The signal listeners stay until the process exits: without one, a second Ctrl-C (or npm's
  // copy of the first) during the drain would kill the server with no drain and no exit code 1.
  app.addHook('onClose', async () => {
    closer.uninstall()
    clearInterval(npmWatch)
    if (port !== undefined) await removeServerFile(root, port, process.pid)
  })

  // With hand-off, a front server takes the public port and Fastify listens on loopback only,
  // for what the front does not hand to a worker (src/proxy/handoff-front.ts).
  const front = handoff
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
  const redirect = tls && config.tls.httpPort > 0
    ? createRedirectServer({ ...config, httpsPort: () => port ?? config.port, challengeAnswer: (token) => tls.challengeAnswer(token) })
    : undefined
  // Stop accepting on the front first; Fastify then closes the connections it serves.
  app.addHook('preClose', (done) => {
    front?.server.close()
    redirect?.close()
    redirect?.closeIdleConnections()
    tls?.close()
    done()
  })
  let url: string
  try {
    // Fastify passes its listen options on to Node's server.listen; its types do not name reusePort.
    // Fastify names the scheme from its own https option, which a server of ours never sets.
    const listenTextResolver = (address: string) => `Server listening at ${tls ? address.replace(/^http:/, 'https:') : address}`
    await app.listen(front ? { port: 0, host: '127.0.0.1', listenTextResolver } : { port: config.port, host: config.host, reusePort, listenTextResolver } as FastifyListenOptions)
    url = front ? await front.listen(config.port, config.host) : listenUrl(app, tls !== undefined)
    // once() rejects on 'error': a held port fails here as the main port does.
    if (redirect) await once(redirect.listen(config.tls.httpPort, config.host), 'listening')
  } catch (err) {
    front?.server.close()
    await app.close()
    const inUse = err as NodeJS.ErrnoException & { port?: number }
    if (inUse.code === 'EADDRINUSE') throw portInUse(inUse.port ?? config.port, config)
    throw err
  }
  port = portOf(url)
  await writeServerFile(root, port, { pid: process.pid, url, mode: options.mode, startedAt: Date.now() })
  // ACME: a stored certificate is there at once; a first issuance takes seconds, and a stop
  // signal meanwhile closes the server (the order may end, its result is not served).
  await tls?.obtain()
  if (app.tqserver.isClosing) return app
  const certificate = tls?.report().certificate
  app.log.info({ pid: process.pid, url, mode: options.mode, handoff, ...(tls && { tls: { names: certificate?.names, notAfter: certificate && new Date(certificate.notAfter).toISOString(), httpPort: config.tls.httpPort } }), workers: Object.keys(app.tqserver.status().workers) }, 'tqserver listening')
  return app
}

/** The error for a port another program holds, naming the setting that chose it. */
function portInUse (port: number, { host, tls }: ServerConfig): Error {
  return new TQ_ERR_PORT_IN_USE(port, host, port === tls.httpPort ? '--tls-http-port or TQ_TLS_HTTP_PORT' : '--port or TQ_PORT')
}

function listenUrl (app: FastifyInstance, secure: boolean): string {
  const address = app.server.address()
  if (address === null || typeof address === 'string') return String(address)
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address
  return `${secure ? 'https' : 'http'}://${host}:${address.port}`
}

