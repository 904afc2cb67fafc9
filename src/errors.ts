// Every error a user can cause, with a stable code. Codes are API: never rename or reuse one.
// docs/errors.md explains each code; test/unit/errors.test.ts keeps the two in step.
import createError from '@fastify/error'

// Configuration: server.yaml, worker.yaml, environment, flags and plugin options.
export const TQ_ERR_CONFIG_INVALID_YAML = createError<[string, string]>(
  'TQ_ERR_CONFIG_INVALID_YAML', '%s: invalid YAML: %s')
export const TQ_ERR_CONFIG_UNKNOWN_KEY = createError<[string, string, string]>(
  'TQ_ERR_CONFIG_UNKNOWN_KEY', '%s: unknown key "%s"%s')
export const TQ_ERR_CONFIG_INVALID_VALUE = createError<[string, string, string]>(
  'TQ_ERR_CONFIG_INVALID_VALUE', '%s: key "%s" %s')
export const TQ_ERR_CONFIG_PORT_RANGE = createError<[string, string, string]>(
  'TQ_ERR_CONFIG_PORT_RANGE', '%s: key "%s" %s')
export const TQ_ERR_CONFIG_DUPLICATE_ROUTE = createError<[string, string, string]>(
  'TQ_ERR_CONFIG_DUPLICATE_ROUTE', 'two workers are served at path "%s": %s and %s (set "path" in a worker.yaml)')
export const TQ_ERR_CONFIG_RESERVED_ROUTE = createError<[string, string]>(
  'TQ_ERR_CONFIG_RESERVED_ROUTE', '%s: key "path" is "%s", which the server itself answers')
export const TQ_ERR_CONFIG_ENTRY_MISSING = createError<[string, string]>(
  'TQ_ERR_CONFIG_ENTRY_MISSING', '%s: key "entry" names %s, which does not exist')
export const TQ_ERR_CONFIG_FILE_MISSING = createError<[string, string]>(
  'TQ_ERR_CONFIG_FILE_MISSING', '%s: configuration file %s does not exist')
export const TQ_ERR_CONFIG_WORKERS_DIR_MISSING = createError<[string]>(
  'TQ_ERR_CONFIG_WORKERS_DIR_MISSING', 'workers directory %s does not exist (set "workersDir" or create it)')

// Ports: the worker port pool and the host's own port.
export const TQ_ERR_PORT_POOL_EXHAUSTED = createError<[string, number, number]>(
  'TQ_ERR_PORT_POOL_EXHAUSTED', 'no free port in %s: %d leased to workers, %d held by other programs')
export const TQ_ERR_PORT_IN_USE = createError<[number, string, string]>(
  'TQ_ERR_PORT_IN_USE', 'port %d on %s is held by another program; choose another with %s')

// Workers: processes and their states.
export const TQ_ERR_WORKER_START_TIMEOUT = createError<[string, number, number, number, string]>(
  'TQ_ERR_WORKER_START_TIMEOUT', 'worker %s (pid %d, port %d) did not answer GET /health with 200 within %d ms%s')
export const TQ_ERR_WORKER_EXITED = createError<[string, number, string, string]>(
  'TQ_ERR_WORKER_EXITED', 'worker %s (pid %d) exited during start-up with %s%s')
export const TQ_ERR_WORKER_SPAWN = createError<[string, string]>(
  'TQ_ERR_WORKER_SPAWN', 'worker %s could not be started: %s')
export const TQ_ERR_WORKER_ILLEGAL_TRANSITION = createError<[string, string, string]>(
  'TQ_ERR_WORKER_ILLEGAL_TRANSITION', 'worker %s cannot move from %s to %s')
export const TQ_ERR_WORKER_NOT_FOUND = createError<[string]>(
  'TQ_ERR_WORKER_NOT_FOUND', 'no worker named %s')

// TLS.
export const TQ_ERR_TLS_CERTIFICATE = createError<[string, string]>(
  'TQ_ERR_TLS_CERTIFICATE', 'the certificate in %s cannot be served: %s')

// Builds.
export const TQ_ERR_BUILD_FAILED = createError<[string, string]>(
  'TQ_ERR_BUILD_FAILED', 'worker %s failed to build:\n%s')

// Proxy: what a client sees when its request cannot reach a worker.
export const TQ_ERR_PROXY_NO_ROUTE = createError<[string]>(
  'TQ_ERR_PROXY_NO_ROUTE', 'no worker serves %s', 404)
export const TQ_ERR_PROXY_UNAVAILABLE = createError<[string]>(
  'TQ_ERR_PROXY_UNAVAILABLE', 'worker %s has no healthy instance', 503)
export const TQ_ERR_PROXY_HUNG = createError<[string]>(
  'TQ_ERR_PROXY_HUNG', 'an instance of worker %s stopped answering (hung): the request was given up, a new instance takes over', 503)
export const TQ_ERR_PROXY_BAD_GATEWAY = createError<[string, string]>(
  'TQ_ERR_PROXY_BAD_GATEWAY', 'worker %s could not be reached: %s', 502)
export const TQ_ERR_PROXY_TIMEOUT = createError<[string, string]>(
  'TQ_ERR_PROXY_TIMEOUT', 'worker %s did not answer in time: %s', 504)
export const TQ_ERR_PROXY_BAD_PATH = createError<[string]>(
  'TQ_ERR_PROXY_BAD_PATH', 'the path %s is malformed or climbs out of its route', 400)
export const TQ_ERR_PROXY_BODY_TOO_LARGE = createError<[string, number]>(
  'TQ_ERR_PROXY_BODY_TOO_LARGE', 'the request body for worker %s is larger than its limit of %d bytes', 413)
export const TQ_ERR_PROXY_BODY_TIMEOUT = createError<[string, number]>(
  'TQ_ERR_PROXY_BODY_TIMEOUT', 'the request body for worker %s paused for more than %d ms', 408)

// Command line.
export const TQ_ERR_CLI_USAGE = createError<[string]>(
  'TQ_ERR_CLI_USAGE', '%s (see tqserver --help)')
export const TQ_ERR_CLI_INVALID_NAME = createError<[string]>(
  'TQ_ERR_CLI_INVALID_NAME', 'invalid worker name "%s": use lower-case letters, digits, "-" and "_", starting with a letter')
export const TQ_ERR_CLI_RESERVED_NAME = createError<[string, string]>(
  'TQ_ERR_CLI_RESERVED_NAME', 'no worker can be called "%s": %s')
export const TQ_ERR_CLI_WORKER_EXISTS = createError<[string]>(
  'TQ_ERR_CLI_WORKER_EXISTS', '%s already exists')
export const TQ_ERR_CLI_NOT_RUNNING = createError<[string, string]>(
  'TQ_ERR_CLI_NOT_RUNNING', 'no tqserver runs in %s (%s)')
export const TQ_ERR_CLI_NO_CERTIFICATE = createError<[string]>(
  'TQ_ERR_CLI_NO_CERTIFICATE', 'the tqserver at %s completes no TLS handshake: it has no certificate yet (one is being obtained from the ACME CA; its log and tls.acme in server.yaml say more)')
export const TQ_ERR_CLI_SEVERAL_SERVERS = createError<[number, string, string]>(
  'TQ_ERR_CLI_SEVERAL_SERVERS', '%d tqservers run in %s: %s; choose one with --url URL or --port N')
export const TQ_ERR_CLI_RELOAD_FAILED = createError<[string]>(
  'TQ_ERR_CLI_RELOAD_FAILED', 'reload failed: %s')
export const TQ_ERR_CLI_RELOAD_TIMEOUT = createError<[number]>(
  'TQ_ERR_CLI_RELOAD_TIMEOUT', 'the server did not finish the reload within %d ms')

// tqserver deploy.
export const TQ_ERR_DEPLOY_UNKNOWN_TARGET = createError<[string, string, string]>(
  'TQ_ERR_DEPLOY_UNKNOWN_TARGET', 'no target "%s" in %s (targets: %s)')
export const TQ_ERR_DEPLOY_BUILD_FAILED = createError<[string, string]>(
  'TQ_ERR_DEPLOY_BUILD_FAILED', 'the build of %s failed: nothing was copied to %s')
export const TQ_ERR_DEPLOY_UNREACHABLE = createError<[string, string]>(
  'TQ_ERR_DEPLOY_UNREACHABLE', 'cannot reach %s: %s')
export const TQ_ERR_DEPLOY_COPY_FAILED = createError<[string, string]>(
  'TQ_ERR_DEPLOY_COPY_FAILED', 'copying to %s failed: %s')
export const TQ_ERR_DEPLOY_INSTALL_FAILED = createError<[string, string]>(
  'TQ_ERR_DEPLOY_INSTALL_FAILED', 'npm ci --omit=dev failed in %s (%s; its output is above): the server there was not reloaded')
export const TQ_ERR_DEPLOY_RESTART_FAILED = createError<[string, string, string]>(
  'TQ_ERR_DEPLOY_RESTART_FAILED', 'the restart command "%s" failed in %s (%s)')
export const TQ_ERR_DEPLOY_RELOAD_FAILED = createError<[string]>(
  'TQ_ERR_DEPLOY_RELOAD_FAILED', 'the new files are in %s, but the reload there failed (see above; if no server runs there, start it: tqserver start, or systemctl start tqserver)')
