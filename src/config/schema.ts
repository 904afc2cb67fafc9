// Every configuration key, with its type, default, unit and meaning. The only place defaults live:
// server.yaml, the environment, the CLI flags, plugin options and worker.yaml are all checked
// against these schemas, and docs/configuration.md and config/server.yaml are written from them.
import { Type, type Static, type TInteger, type TOptional, type TSchema } from '@sinclair/typebox'
import { LOG_LEVELS, type LogLevel } from '../logger.js'


const Milliseconds = (fallback: number, description: string) =>
  Type.Integer({ minimum: 1, maximum: 3_600_000, default: fallback, description: `${description} (ms)` })

/** Timeouts that server.yaml sets for every worker and worker.yaml may override for one. */
const timeoutKeys = {
  startTimeout: Milliseconds(10_000, 'How long a new instance may take to answer GET /health with 200'),
  drainTimeout: Milliseconds(10_000, 'How long a retiring instance may take to finish its in-flight requests'),
  killTimeout: Milliseconds(5_000, 'How long a worker may take to exit after SIGTERM before it is killed'),
  upstreamTimeout: Milliseconds(60_000, 'How long a worker may take to start its answer, and the longest pause within it, before the client gets 504')
}

const PROXIES_RULE = 'must be auto or a whole number from 1 to 64'

const BodyLimit = Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER, default: 1024 ** 3, description: 'Largest request body passed to a worker, in bytes (413 beyond; 0: no limit)' })

export const serverConfigSchema = Type.Object({
  port: Type.Integer({ minimum: 0, maximum: 65535, default: 8080, description: 'Port the server listens on (0 picks a free one)' }),
  host: Type.String({ minLength: 1, default: '127.0.0.1', description: 'Address the server listens on (0.0.0.0 for every interface)' }),
  workerPorts: Type.String({
    pattern: '^[0-9]+-[0-9]+$',
    'x-rule': 'must be a range such as 9000-9999',
    default: '9000-9999',
    description: 'Ports handed to worker instances, as from-to; used in turn, so a released port is not reused at once'
  }),
  bodyLimit: BodyLimit,
  trustProxy: Type.Union([
    Type.Boolean(),
    Type.Integer({ minimum: 0, maximum: 100 }),
    Type.String(),
    Type.Array(Type.String({ minLength: 1 }))
  ], {
    'x-rule': 'must be true, false, a hop count, or addresses and CIDR ranges (a list, or one string with commas)',
    default: false,
    description: 'Peers whose X-Forwarded-For, -Proto, -Host, -Prefix, X-Real-IP and Forwarded headers are kept (a proxy in front): false (none: they are replaced with what the host saw), true (every peer), a hop count, or addresses and CIDR ranges such as 127.0.0.1, 10.0.0.0/8 or loopback; see docs/scale-out.md'
  }),
  handoff: Type.Boolean({
    default: false,
    description: 'Hand client connections to SDK workers, so that the host does no work per request (plain HTTP only; see docs/performance.md for what it costs)'
  }),
  // The rule on each branch too: a failed union reports the branch it tried, not the union.
  proxies: Type.Union([Type.Literal('auto', { 'x-rule': PROXIES_RULE }), Type.Integer({ minimum: 1, maximum: 64, 'x-rule': PROXIES_RULE })], {
    'x-rule': PROXIES_RULE,
    default: 'auto',
    description: "Processes that serve the port and proxy requests to workers (data planes), the server's own process included, 1 to 64: auto is one per core available (cgroup CPU quota included); 1 in dev and with handoff; see docs/performance.md"
  }),
  tls: Type.Object({
    cert: Type.String({ default: '', description: 'Certificate chain file, PEM, relative to the root: the server speaks HTTPS on port (HTTP/2 and HTTP/1.1, chosen by ALPN); a new file is served to new connections without a restart' }),
    key: Type.String({ default: '', description: 'Private key file of cert, PEM' }),
    httpPort: Type.Integer({ minimum: 0, maximum: 65535, default: 0, description: 'Plain-HTTP port that answers ACME HTTP-01 challenges and redirects every other request to HTTPS (308); 0: none. ACME needs it: 80 for a public CA' }),
    hsts: Type.Integer({ minimum: 0, maximum: 63_072_000, default: 0, description: 'Strict-Transport-Security max-age sent with HTTPS answers, in seconds (0: no header)' }),
    acme: Type.Object({
      domains: Type.Array(Type.String({ pattern: '^(?![0-9.]+$)[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)+$', 'x-rule': 'must list domain names such as example.com (a CA certifies no IP address over HTTP-01)' }), { default: [], description: 'Domains one certificate is obtained for from the ACME CA, and renewed; empty: no ACME' }),
      email: Type.String({ default: '', description: 'Contact address given to the CA (optional)' }),
      directory: Type.String({ pattern: '^https://', 'x-rule': 'must be an https:// URL', default: 'https://acme-v02.api.letsencrypt.org/directory', description: "The CA's ACME directory (default: Let's Encrypt)" }),
      renewBefore: Type.Integer({ minimum: 1, maximum: 3650, default: 30, description: 'Days before expiry at which the certificate is renewed' }),
      ca: Type.String({ default: '', description: "Extra CA certificate file, PEM, trusted for the directory's HTTPS (a private CA); empty: the system's" })
    }, { additionalProperties: false, default: {}, description: 'Certificates from an ACME CA (RFC 8555), stored in .tqserver/certs/' })
  }, { additionalProperties: false, default: {}, description: 'HTTPS on port, with certificate files or from an ACME CA; off when neither is set (see docs/tls.md)' }),
  headersTimeout: Milliseconds(10_000, 'How long a client may take to send the request headers (slow clients are cut off)'),
  requestTimeout: Milliseconds(300_000, 'How long a client may take to send its whole request, body included'),
  // Slow clients (docs/security.md): what they may hold of the connections to workers, and for how long.
  requestBuffer: Type.Integer({ minimum: 0, maximum: 64 * 1024 ** 2, default: 64 * 1024, description: 'Request bodies up to this size are read whole before a connection to the worker is taken, so a client sending slowly holds none; a longer body is streamed once this much has arrived (bytes; 0: stream every body at once)' }),
  bodyIdleTimeout: Milliseconds(30_000, 'Longest pause within a request body before the client gets 408 (the whole request is bounded by requestTimeout)'),
  responseBuffer: Type.Integer({ minimum: 0, maximum: 64 * 1024 ** 2, default: 64 * 1024, description: "Response bytes the host keeps for a client that reads slowly before it stops reading the worker's answer, so that a short answer frees its worker connection at once (bytes; 0: only the client socket's own 16 KB)" }),
  sendTimeout: Milliseconds(60_000, 'A client that leaves the response bytes the host holds for it unread this long is cut off'),
  upstreamConnections: Type.Integer({ minimum: 0, maximum: 1_000_000, default: 0, description: 'Connections the host opens to one worker instance at most; more requests wait in the host for a free one (0: no limit, one per request in flight)' }),
  workersDir: Type.String({ minLength: 1, default: 'workers', description: 'Folder holding one sub-folder per worker, relative to the root' }),
  logLevel: Type.Unsafe<LogLevel>({
    type: 'string',
    enum: LOG_LEVELS,
    default: 'info',
    description: 'Lowest level written to the log: trace, debug, info, warn, error, fatal or silent'
  }),
  logFile: Type.Object({
    path: Type.String({ default: '', description: 'Also write the log, as JSON lines, to this file (relative to the root; a number is added: server.1.log); empty: stdout only' }),
    maxSize: Type.String({ pattern: '^[1-9][0-9]*[kmg]$', 'x-rule': 'must be a size such as 512k, 10m or 1g', default: '10m', description: 'Size at which the file is rotated (k, m or g)' }),
    keep: Type.Integer({ minimum: 1, maximum: 1000, default: 5, description: 'Log files kept, the current one included; older ones are deleted, also those of earlier runs' })
  }, { additionalProperties: false, default: {}, description: 'Log file with rotation, for `tqserver dev` and `tqserver start` (the log also goes to stdout)' }),
  restartDelay: Milliseconds(100, 'Wait before restarting a crashed instance; doubles with each crash in crashWindow'),
  restartDelayMax: Milliseconds(30_000, 'Longest wait before restarting a crashed instance'),
  crashLimit: Type.Integer({ minimum: 1, maximum: 1000, default: 5, description: 'Crashes within crashWindow that mark a worker FAILED (a crash loop)' }),
  crashWindow: Milliseconds(60_000, 'Window in which crashes are counted, however long each run lasted'),
  failedRetryDelay: Type.Integer({ minimum: 0, maximum: 3_600_000, default: 30_000, description: 'Wait before a FAILED worker (a crash loop) is started again; doubles with each loop (0: only a save or a reload retries it) (ms)' }),
  failedRetryDelayMax: Milliseconds(600_000, 'Longest wait before a FAILED worker is started again'),
  reloadDebounce: Type.Integer({ minimum: 0, maximum: 10_000, default: 10, description: 'Dev: quiet time after a file change before the worker is rebuilt, so a burst of saves gives one build (ms)' }),
  standbys: Type.Integer({ minimum: 0, maximum: 8, default: 1, description: 'Dev: warm Node processes kept ready to take a new worker version (each takes the memory of a worker, see docs/performance.md; 0 turns them off)' }),
  accessLog: Type.Boolean({ default: false, description: 'Log one line per proxied request (worker, method, url, client address, status, duration); off by default, as it costs the proxy CPU' }),
  liveReload: Type.Boolean({ default: true, description: 'Dev: pages served by tqserver reload themselves after their worker switched' }),
  health: Type.Object({
    interval: Milliseconds(10_000, 'Time between two GET /health probes of each instance'),
    timeout: Milliseconds(2_000, 'A probe that takes longer has failed'),
    fall: Type.Integer({ minimum: 1, maximum: 100, default: 3, description: 'Failed probes in a row that make a healthy instance UNHEALTHY (out of rotation while another is healthy)' }),
    rise: Type.Integer({ minimum: 1, maximum: 100, default: 2, description: 'Passed probes in a row that make an UNHEALTHY instance HEALTHY again' }),
    grace: Milliseconds(30_000, 'An instance UNHEALTHY for this long is replaced by a new one'),
    hangAfter: Milliseconds(1_000, 'Requests waiting this long on an instance that answers nothing make it suspect: GET /health at once, and no answer within this time either means it hangs (taken out, what waits on it answered 503, replaced at once)'),
    token: Type.String({ default: '', description: 'Requests carrying it (Authorization: Bearer <token>; /health also takes ?token=, /metrics does not) see /health details and /metrics, and may POST /__tqserver/reload, from anywhere; without it only requests from this machine do' })
  }, { additionalProperties: false, default: {}, description: 'Active health checks of worker instances, and who may see /health details' }),
  outputLines: Type.Integer({ minimum: 0, maximum: 10_000, default: 200, description: 'Last output lines kept per worker, shown when it fails to start' }),
  ...timeoutKeys
}, { additionalProperties: false })

export const workerConfigSchema = Type.Object({
  path: Type.Optional(Type.String({
    pattern: '^/([A-Za-z0-9._~!$&\'()*+,;=:@-]+(/[A-Za-z0-9._~!$&\'()*+,;=:@-]+)*)?$',
    'x-rule': 'must be a URL path such as /api or /api/v2 (no trailing slash, no spaces or %-escapes)',
    description: 'URL prefix the worker is served at (default: /<folder name>, or / for the folder "index")'
  })),
  enabled: Type.Boolean({ default: true, description: 'false keeps the worker out of service without deleting it' }),
  instances: Type.Integer({ minimum: 1, maximum: 64, default: 1, description: 'Processes started for this worker; requests go to the least busy' }),
  entry: Type.String({ minLength: 1, default: 'src/main.ts', description: 'Source file esbuild bundles, relative to the worker folder' }),
  command: Type.Optional(Type.Union([Type.String({ minLength: 1 }), Type.Array(Type.String({ minLength: 1 }), { minItems: 1 })], {
    description: 'Runs a worker that is not TypeScript (a binary, Python, Go...): a shell command line, or a list (program and arguments); no esbuild build'
  })),
  build: Type.Optional(Type.String({ minLength: 1, description: 'Shell command that builds a `command` worker (tqserver build, and dev on change)' })),
  files: Type.Optional(Type.Array(Type.String({
    minLength: 1,
    pattern: '^(?!/)(?!(.*/)?\\.\\.(/|$))[^\\n]+$',
    'x-rule': 'must list paths or globs inside the worker folder (no leading /, no ..)'
  }), {
    description: 'What `tqserver deploy` copies of the worker folder besides worker.yaml, the current build in bin/, public/ and private/: paths or rsync patterns (* within a name, ** across folders) relative to it; dot-files, node_modules/ and logs are never copied. Default: nothing more for a TypeScript worker (its bundle holds its code); everything but src/ for a `command` worker'
  })),
  maxRequests: Type.Integer({ minimum: 0, default: 0, description: 'Replace an instance after it has served this many requests (0: never)' }),
  maxMemoryMb: Type.Integer({ minimum: 0, default: 0, description: 'Replace an instance whose memory (RSS) exceeds this, checked with each health check (0: never)' }),
  bodyLimit: Type.Optional(Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER, description: "Largest request body for this worker, in bytes; default: the server's value" })),
  external: Type.Array(Type.String({ minLength: 1 }), {
    default: [],
    description: 'Packages left out of the bundle and loaded from node_modules at run time (native addons, dynamic requires)'
  }),
  env: Type.Record(Type.String({ pattern: '^[A-Za-z_][A-Za-z0-9_]*$' }), Type.Union([Type.String(), Type.Number(), Type.Boolean()]), {
    default: {},
    description: 'Extra environment variables for the worker process'
  }),
  // No defaults here: a timeout left out takes the server's value.
  ...Object.fromEntries(Object.entries(timeoutKeys).map(([key, schema]) => {
    const { default: _serverDefault, ...rest } = schema
    return [key, Type.Optional(Type.Integer({ ...rest, description: `${String(rest.description)}; default: the server's value` }))]
  })) as { [Key in keyof typeof timeoutKeys]: TOptional<TInteger> }
}, { additionalProperties: false })

/** One target of config/deployment.yaml in its long form (the short form is the path alone). */
export const deployTargetSchema = Type.Object({
  path: Type.String({ minLength: 1, description: 'The project folder there: a local path (absolute, or relative to the project root) or user@host:/path over ssh' }),
  restart: Type.Optional(Type.String({ minLength: 1, description: 'Shell command run in that folder when the tqserver package itself changed (a reload does not load new server code), e.g. sudo systemctl restart tqserver' }))
}, { additionalProperties: false })

export type ServerConfig = Readonly<Static<typeof serverConfigSchema>>
export type WorkerConfig = Static<typeof workerConfigSchema>
export type DeployTargetConfig = Static<typeof deployTargetSchema>
export type Timeouts = Pick<ServerConfig, keyof typeof timeoutKeys>
export const timeoutNames = Object.keys(timeoutKeys) as Array<keyof Timeouts>

/** The same schema with nothing required and no defaults: one layer (a file, the environment) is checked alone. */
export function partialSchema (schema: TSchema): TSchema {
  const copy: Record<string, unknown> = { ...schema }
  delete copy.required
  delete copy.default
  if (schema.properties) {
    copy.properties = Object.fromEntries(Object.entries(schema.properties as Record<string, TSchema>)
      .map(([key, value]) => [key, partialSchema(value)]))
  }
  return copy as TSchema
}
