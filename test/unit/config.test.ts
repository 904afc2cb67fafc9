// Configuration: precedence of flags, environment, file and defaults; each kind of mistake stops
// start-up with one message naming where it came from and the key.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { loadServerConfig } from '../../src/config/server-config.js'
import { discoverWorkers } from '../../src/config/worker-discovery.js'
import { deployTargetSchema } from '../../src/config/schema.js'
import { validate } from '../../src/config/validate.js'
import { useProject } from '../helpers/project.js'

const MAIN = { 'workers/api/src/main.ts': 'export {}\n' }

test('defaults apply when there is no server.yaml', async (t) => {
  const root = await useProject(t, undefined, MAIN)
  const { config, file } = await loadServerConfig({ root, env: {} })
  assert.equal(file, undefined)
  assert.deepEqual({ port: config.port, host: config.host, workerPorts: config.workerPorts, workersDir: config.workersDir },
    { port: 8080, host: '127.0.0.1', workerPorts: '9000-9999', workersDir: 'workers' })
  assert.ok(Object.isFrozen(config))
})

test('flags win over the environment, which wins over server.yaml, which wins over defaults', async (t) => {
  const root = await useProject(t, undefined, { 'config/server.yaml': 'port: 7000\nhost: 0.0.0.0\nworkerPorts: 9100-9199\nkillTimeout: 1234\n' })
  const env = { TQ_PORT: '7001', TQ_WORKER_PORTS: '9200-9299' }
  const { config } = await loadServerConfig({ root, env, overrides: { port: 7002 } })
  assert.deepEqual({ port: config.port, host: config.host, workerPorts: config.workerPorts, killTimeout: config.killTimeout, drainTimeout: config.drainTimeout },
    { port: 7002, host: '0.0.0.0', workerPorts: '9200-9299', killTimeout: 1234, drainTimeout: 10000 })
})

test('TQ_CONFIG and --config name another file; a named file that is missing is an error', async (t) => {
  const root = await useProject(t, undefined, { 'config/other.yaml': 'port: 7100\n' })
  assert.equal((await loadServerConfig({ root, env: { TQ_CONFIG: 'config/other.yaml' } })).config.port, 7100)
  assert.equal((await loadServerConfig({ root, env: {}, overrides: { config: 'config/other.yaml' } })).config.port, 7100)
  await assert.rejects(loadServerConfig({ root, env: { TQ_CONFIG: 'config/nope.yaml' } }),
    { code: 'TQ_ERR_CONFIG_FILE_MISSING', message: `TQ_CONFIG: configuration file ${root}/config/nope.yaml does not exist` })
})

const serverErrors: Array<[string, string | Record<string, string>, string, string]> = [
  ['bad YAML', 'port: 8080\n  host: x\n', 'TQ_ERR_CONFIG_INVALID_YAML', 'config/server.yaml: invalid YAML: Nested mappings are not allowed in compact mappings at line 1, column 7:'],
  ['a file that is not a mapping', '- port\n', 'TQ_ERR_CONFIG_INVALID_VALUE', 'config/server.yaml: key "(root)" must be a mapping of keys to values (got ["port"])'],
  ['an unknown key', 'prot: 80\n', 'TQ_ERR_CONFIG_UNKNOWN_KEY', 'config/server.yaml: unknown key "prot" (did you mean "port"?)'],
  ['a wrong type', 'port: eighty\n', 'TQ_ERR_CONFIG_INVALID_VALUE', 'config/server.yaml: key "port" must be of type integer (got "eighty")'],
  ['a value out of range', 'killTimeout: 0\n', 'TQ_ERR_CONFIG_INVALID_VALUE', 'config/server.yaml: key "killTimeout" must be >= 1 (got 0)'],
  ['a wrong log level', 'logLevel: loud\n', 'TQ_ERR_CONFIG_INVALID_VALUE', 'config/server.yaml: key "logLevel" must be one of trace, debug, info, warn, error, fatal, silent (got "loud")'],
  ['a port range that is not a range', 'workerPorts: "9000"\n', 'TQ_ERR_CONFIG_INVALID_VALUE', 'config/server.yaml: key "workerPorts" must be a range such as 9000-9999 (got "9000")'],
  ['a reversed port range', 'workerPorts: 9999-9000\n', 'TQ_ERR_CONFIG_PORT_RANGE', 'config/server.yaml: key "workerPorts" is reversed or empty: the first port must not be above the last (got "9999-9000")'],
  ['a port range past 65535', 'workerPorts: 65000-70000\n', 'TQ_ERR_CONFIG_PORT_RANGE', 'config/server.yaml: key "workerPorts" must lie within 1-65535 (got "65000-70000")'],
  ['a server port inside the worker range', 'port: 9500\n', 'TQ_ERR_CONFIG_PORT_RANGE', 'config/server.yaml: key "port" puts the server\'s port 9500 inside the worker port range 9000-9999'],
  ['a worker range over the server port', 'workerPorts: 8000-8100\n', 'TQ_ERR_CONFIG_PORT_RANGE', 'config/server.yaml: key "workerPorts" puts the server\'s port 8080 inside the worker port range 8000-8100'],
  ['a bad environment variable', { TQ_PORT: 'http' }, 'TQ_ERR_CONFIG_INVALID_VALUE', 'environment variable TQ_PORT: key "port" must be of type integer (got "http")'],
  ['a reversed range in the environment', { TQ_WORKER_PORTS: '10-5' }, 'TQ_ERR_CONFIG_PORT_RANGE', 'environment variable TQ_WORKER_PORTS: key "workerPorts" is reversed or empty: the first port must not be above the last (got "10-5")'],
  ['a negative plain port in the environment', { TQ_TLS_HTTP_PORT: '-1' }, 'TQ_ERR_CONFIG_INVALID_VALUE', 'environment variable TQ_TLS_HTTP_PORT: key "tls.httpPort" must be >= 0 (got -1)'],
  ['a key file without its certificate', { TQ_TLS_KEY: 'key.pem' }, 'TQ_ERR_CONFIG_INVALID_VALUE', 'environment variable TQ_TLS_KEY: key "tls.cert" must be set with tls.key'],
  ['an IP address as an ACME domain', 'tls:\n  httpPort: 80\n  acme:\n    domains: [127.0.0.1]\n', 'TQ_ERR_CONFIG_INVALID_VALUE', 'config/server.yaml: key "tls.acme.domains.0" must list domain names such as example.com (a CA certifies no IP address over HTTP-01)'],
  ['ACME without the plain port', 'tls:\n  acme:\n    domains: [example.com]\n', 'TQ_ERR_CONFIG_INVALID_VALUE', 'config/server.yaml: key "tls.httpPort" must be set for tls.acme'],
  ['certificate files and ACME at once', 'tls:\n  cert: a.pem\n  key: b.pem\n  acme:\n    domains: [example.com]\n', 'TQ_ERR_CONFIG_INVALID_VALUE', 'config/server.yaml: key "tls.acme" obtains the certificate itself']
]

for (const [what, input, code, message] of serverErrors) {
  test(`server configuration: ${what} stops start-up with ${code}`, async (t) => {
    const yaml = typeof input === 'string' ? input : undefined
    const root = await useProject(t, undefined, yaml ? { 'config/server.yaml': yaml } : {})
    const env = typeof input === 'string' ? {} : input
    await assert.rejects(loadServerConfig({ root, env }), (err: Error & { code: string }) => {
      assert.equal(err.code, code)
      assert.ok(err.message.startsWith(message), `message was: ${err.message}`)
      return true
    })
  })
}

test('a flag or plugin option is named in its own message', async (t) => {
  const root = await useProject(t, undefined, {})
  await assert.rejects(loadServerConfig({ root, env: {}, overrides: { host: '' }, overrideLabel: (key) => `--${key}` }),
    { code: 'TQ_ERR_CONFIG_INVALID_VALUE', message: '--host: key "host" must NOT have fewer than 1 characters (got "")' })
  await assert.rejects(loadServerConfig({ root, env: {}, overrides: { workerPorts: '5-1' } }),
    { code: 'TQ_ERR_CONFIG_PORT_RANGE', message: 'option "workerPorts": key "workerPorts" is reversed or empty: the first port must not be above the last (got "5-1")' })
})

test('proxies: auto or 1 to 64, and a wrong value says so whichever way it is wrong', async (t) => {
  const root = await useProject(t, undefined, {})
  for (const proxies of [0, 65, 'lots', 'AUTO', 1.5]) {
    await assert.rejects(loadServerConfig({ root, env: {}, overrides: { proxies: proxies as number } }),
      { code: 'TQ_ERR_CONFIG_INVALID_VALUE', message: `option "proxies": key "proxies" must be auto or a whole number from 1 to 64 (got ${JSON.stringify(proxies)})` })
  }
  assert.equal((await loadServerConfig({ root, env: { TQ_PROXIES: '4' } })).config.proxies, 4)
  assert.equal((await loadServerConfig({ root, env: {} })).config.proxies, 'auto')
})

test('workers: folders with src/main.ts or an entry, routes from folder names or path', async (t) => {
  const root = await useProject(t, undefined, {
    'workers/index/src/main.ts': '',
    'workers/api/src/main.ts': '',
    'workers/admin/worker.yaml': 'path: /backoffice/admin\nentry: server.ts\ninstances: 2\nenv:\n  DEBUG: 1\n  FLAG: true\n',
    'workers/admin/server.ts': '',
    'workers/notes/README.md': 'not a worker: no src/main.ts, no worker.yaml',
    'workers/.hidden/src/main.ts': ''
  })
  const { config } = await loadServerConfig({ root, env: {} })
  const specs = await discoverWorkers(root, config)
  assert.deepEqual(specs.map((spec) => [spec.name, spec.route, spec.instances]), [['admin', '/backoffice/admin', 2], ['api', '/api', 1], ['index', '/', 1]])
  const admin = specs[0]!
  assert.equal(admin.entry, `${root}/workers/admin/server.ts`)
  assert.deepEqual(admin.env, { DEBUG: '1', FLAG: 'true' })
  assert.deepEqual(admin.timeouts, { startTimeout: 10000, drainTimeout: 10000, killTimeout: 5000, upstreamTimeout: 60000 })
})

const workerErrors: Array<[string, Record<string, string>, string, string]> = [
  ['bad YAML in worker.yaml', { 'workers/api/src/main.ts': '', 'workers/api/worker.yaml': 'path: [\n' }, 'TQ_ERR_CONFIG_INVALID_YAML', 'workers/api/worker.yaml: invalid YAML: '],
  ['an unknown key in worker.yaml', { 'workers/api/src/main.ts': '', 'workers/api/worker.yaml': 'instance: 2\n' }, 'TQ_ERR_CONFIG_UNKNOWN_KEY', 'workers/api/worker.yaml: unknown key "instance" (did you mean "instances"?)'],
  ['a wrong type in worker.yaml', { 'workers/api/src/main.ts': '', 'workers/api/worker.yaml': 'instances: many\n' }, 'TQ_ERR_CONFIG_INVALID_VALUE', 'workers/api/worker.yaml: key "instances" must be of type integer (got "many")'],
  ['a bad path', { 'workers/api/src/main.ts': '', 'workers/api/worker.yaml': 'path: api/\n' }, 'TQ_ERR_CONFIG_INVALID_VALUE', 'workers/api/worker.yaml: key "path" must be a URL path such as /api or /api/v2'],
  ['an entry that does not exist', { 'workers/api/worker.yaml': 'entry: src/server.ts\n' }, 'TQ_ERR_CONFIG_ENTRY_MISSING', 'workers/api/worker.yaml: key "entry" names workers/api/src/server.ts, which does not exist'],
  ['a reserved path', { 'workers/api/src/main.ts': '', 'workers/api/worker.yaml': 'path: /health\n' }, 'TQ_ERR_CONFIG_RESERVED_ROUTE', 'workers/api/worker.yaml: key "path" is "/health", which the server itself answers'],
  ['two workers on one path', { 'workers/api/src/main.ts': '', 'workers/api2/src/main.ts': '', 'workers/api2/worker.yaml': 'path: /api\n' }, 'TQ_ERR_CONFIG_DUPLICATE_ROUTE', 'two workers are served at path "/api": workers/api/ and workers/api2/worker.yaml (set "path" in a worker.yaml)'],
  ['a folder name that is no URL path', { 'workers/my api/src/main.ts': '' }, 'TQ_ERR_CONFIG_INVALID_VALUE', 'workers/my api/worker.yaml: key "path" must be set: the folder name "my api" is not usable as a URL path']
]

for (const [what, files, code, message] of workerErrors) {
  test(`workers: ${what} stops start-up with ${code}`, async (t) => {
    const root = await useProject(t, undefined, files)
    const { config } = await loadServerConfig({ root, env: {} })
    await assert.rejects(discoverWorkers(root, config), (err: Error & { code: string }) => {
      assert.equal(err.code, code)
      assert.ok(err.message.startsWith(message), `message was: ${err.message}`)
      return true
    })
  })
}

test("a worker's timeouts are the server's unless its worker.yaml sets them", async (t) => {
  const root = await useProject(t, undefined, {
    'config/server.yaml': 'killTimeout: 1500\nstartTimeout: 20000\n',
    'workers/api/src/main.ts': '',
    'workers/slow/src/main.ts': '',
    'workers/slow/worker.yaml': 'startTimeout: 60000\n'
  })
  const { config } = await loadServerConfig({ root, env: {} })
  const [api, slow] = await discoverWorkers(root, config)
  assert.deepEqual(api!.timeouts, { startTimeout: 20000, drainTimeout: 10000, killTimeout: 1500, upstreamTimeout: 60000 })
  assert.deepEqual(slow!.timeouts, { startTimeout: 60000, drainTimeout: 10000, killTimeout: 1500, upstreamTimeout: 60000 })
})

test('a disabled worker may share a path with an enabled one', async (t) => {
  const root = await useProject(t, undefined, { ...MAIN, 'workers/old-api/src/main.ts': '', 'workers/old-api/worker.yaml': 'path: /api\nenabled: false\n' })
  const { config } = await loadServerConfig({ root, env: {} })
  assert.deepEqual((await discoverWorkers(root, config)).map((spec) => [spec.name, spec.enabled]), [['api', true], ['old-api', false]])
})

test('a missing workers folder is an error that names it', async (t) => {
  const root = await useProject(t, undefined, {})
  const { config } = await loadServerConfig({ root, env: {} })
  await assert.rejects(discoverWorkers(root, config), { code: 'TQ_ERR_CONFIG_WORKERS_DIR_MISSING' })
})

test('a missing required key is named by its path, not by the schema', () => {
  assert.throws(() => validate(deployTargetSchema, { restart: 'echo hi' }, 'config/deployment.yaml: targets.local'),
    { message: 'config/deployment.yaml: targets.local: key "path" is required' })
})
