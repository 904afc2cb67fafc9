#!/usr/bin/env node
// The tqserver command: dev, start, build, new, reload. Parses arguments, runs one command, and turns a
// coded error into one line on stderr and a non-zero exit.
import { cp, readFile, stat } from 'node:fs/promises'
import { join, relative, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { Builder } from '../build/builder.js'
import { serverConfigSchema } from '../config/schema.js'
import { DEFAULT_CONFIG_FILE, loadServerConfig, type ServerOverrides } from '../config/server-config.js'
import { CONFIG_ENV, HOST_ENV } from '../env-names.js'
import { createLogger } from '../logger.js'
import { discoverWorkers } from '../config/worker-discovery.js'
import type { HealthReport } from '../report/health-report.js'
import { readServerFile } from '../server-file.js'
import { formatStatus } from './status-table.js'
import {
  TQ_ERR_CLI_INVALID_NAME, TQ_ERR_CLI_NOT_RUNNING, TQ_ERR_CLI_RELOAD_FAILED, TQ_ERR_CLI_RELOAD_TIMEOUT, TQ_ERR_CLI_USAGE,
  TQ_ERR_CLI_WORKER_EXISTS, TQ_ERR_WORKER_NOT_FOUND
} from '../errors.js'

const DEFAULT_RELOAD_TIMEOUT_MS = 120_000

/** A server key's default, as the schema gives it. */
const fallback = (key: 'port' | 'host' | 'workerPorts' | 'trustProxy') => String((serverConfigSchema.properties[key] as { default: unknown }).default)

const SERVER_OPTIONS = `Options (also ${[...Object.keys(HOST_ENV), CONFIG_ENV].join(', ')}, then ${DEFAULT_CONFIG_FILE}):
  --port N            port the server listens on (default ${fallback('port')})
  --host ADDR         address the server listens on (default ${fallback('host')})
  --worker-ports A-B  ports for worker processes (default ${fallback('workerPorts')})
  --trust-proxy LIST  proxies whose X-Forwarded-* headers count: true, a hop count, or
                      addresses/CIDRs with commas (default ${fallback('trustProxy')}: none)
  --config FILE       configuration file (default ${DEFAULT_CONFIG_FILE})
  --root DIR          project root holding workers/ and config/ (default: the current folder)`

/** Each command's help, shown by `tqserver COMMAND --help`; the first line is its summary. */
const COMMAND_HELP: Record<string, string> = {
  dev: `tqserver dev [options]
Run the server for development: build every worker, watch workers/ and reload a worker in
milliseconds when one of its files is saved (a build error keeps the running version serving).

${SERVER_OPTIONS}`,
  start: `tqserver start [options]
Run the server in production: serve existing builds (building what is missing), no watcher.
SIGHUP (or \`tqserver reload\`) switches the workers whose build or settings changed; SIGTERM drains
and stops.

${SERVER_OPTIONS}`,
  build: `tqserver build [worker...] [--root DIR] [--config FILE]
Build production bundles (minified, source maps, dependencies bundled) of the named workers, or of
every enabled worker, into workers/<name>/bin/. A running server picks them up on reload.`,
  reload: `tqserver reload [--no-wait] [--timeout MS] [--root DIR]
Make the server running in this root (found through .tqserver/server.json) reload what changed,
wait until it has, and print what was switched. Exits non-zero if a worker failed to switch.
  --no-wait           send the signal and return
  --timeout MS        how long to wait for the reload (default ${DEFAULT_RELOAD_TIMEOUT_MS})`,
  status: `tqserver status [--url URL] [--token TOKEN] [--json] [--root DIR]
Print the running server's /health as a table: each worker's instances with state, pid, port,
uptime, memory, CPU, requests, errors and p99 latency. Exits 1 when the server is unhealthy.
  --url URL           ask this server (default: the one running in this root)
  --token TOKEN       health.token, for a server that is not on this machine (or TQ_HEALTH_TOKEN)
  --json              print the report as JSON`,
  new: `tqserver new NAME [--template api|html] [--root DIR]
Create workers/NAME from a template; it is served at /NAME (index: at /).
  --template api      a JSON API with a schema-validated route (default)
  --template html     an HTML page with a form, and a stylesheet in public/`
}

const HELP = `tqserver: serve every folder of workers/ at its route, each in its own process.

Usage: tqserver <command> [options]

Commands:
${Object.entries(COMMAND_HELP).map(([name, help]) => `  ${name.padEnd(10)}${help.split('\n')[1]}`).join('\n')}

Run tqserver <command> --help for a command's options.
  -h, --help          show help
  -v, --version       print the version
`

const TEMPLATES = ['api', 'html']
const WORKER_NAME = /^[a-z][a-z0-9_-]*$/
const RELOAD_POLL_MS = 100

async function main (argv: string[]): Promise<void> {
  const { values, positionals } = parseCommandLine(argv)
  if (values.version) {
    const pkg = JSON.parse(await readFile(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string }
    process.stdout.write(`${pkg.version}\n`)
    return
  }
  const [command, ...rest] = positionals
  if (command === 'help' || command === undefined || (values.help && !(command in COMMAND_HELP))) {
    process.stdout.write(COMMAND_HELP[rest[0] ?? ''] ? `${COMMAND_HELP[rest[0]!]}\n` : HELP)
    return
  }
  if (values.help) {
    process.stdout.write(`${COMMAND_HELP[command]}\n`)
    return
  }
  const root = resolve(values.root ?? process.cwd())
  const flags: ServerOverrides = {
    port: values.port === undefined ? undefined : (/^[0-9]+$/.test(values.port) ? Number(values.port) : values.port as unknown as number),
    host: values.host,
    workerPorts: values['worker-ports'],
    trustProxy: values['trust-proxy'],
    config: values.config
  }
  switch (command) {
    case 'dev':
    case 'start': {
      if (rest.length > 0) throw new TQ_ERR_CLI_USAGE(`${command} takes no arguments (got ${rest.join(' ')})`)
      // Loaded only here: the other commands do not need Fastify.
      const { startServer } = await import('../../plugins/standalone-server.js')
      const mode = command === 'dev' ? 'dev' : 'prod'
      await startServer({ root, mode, flags, prettyLogs: mode === 'dev' && process.stdout.isTTY })
      return
    }
    case 'build':
      return build(root, flags, rest)
    case 'new':
      if (rest.length !== 1) throw new TQ_ERR_CLI_USAGE('new takes one worker name')
      return scaffold(root, flags, rest[0]!, values.template ?? 'api')
    case 'status':
      return status(root, values)
    case 'reload':
      return reload(root, !values['no-wait'], Number(values.timeout ?? DEFAULT_RELOAD_TIMEOUT_MS))
    default:
      throw new TQ_ERR_CLI_USAGE(`unknown command "${command}"`)
  }
}

function parseCommandLine (argv: string[]) {
  try {
    return parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        port: { type: 'string' },
        host: { type: 'string' },
        'worker-ports': { type: 'string' },
        'trust-proxy': { type: 'string' },
        config: { type: 'string' },
        root: { type: 'string' },
        'no-wait': { type: 'boolean' },
        timeout: { type: 'string' },
        template: { type: 'string' },
        url: { type: 'string' },
        token: { type: 'string' },
        json: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean', short: 'v' }
      }
    })
  } catch (err) {
    throw new TQ_ERR_CLI_USAGE((err as Error).message)
  }
}

/** Production builds of the named workers (all enabled ones when none is named). */
async function build (root: string, flags: ServerOverrides, names: string[]): Promise<void> {
  const { config } = await loadServerConfig({ root, overrides: { config: flags.config } })
  const specs = await discoverWorkers(root, config)
  for (const name of names) {
    if (!specs.some((spec) => spec.name === name)) throw new TQ_ERR_WORKER_NOT_FOUND(name)
  }
  const chosen = names.length > 0 ? specs.filter((spec) => names.includes(spec.name)) : specs.filter((spec) => spec.enabled)
  const builder = new Builder('prod', createLogger(config.logLevel))
  // A signal stops the `build:` commands too: they run in groups of their own, which no
  // terminal or supervisor signal reaches.
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => { builder.abort(); process.exit(128 + (signal === 'SIGINT' ? 2 : 15)) })
  let failed = 0
  for (const spec of chosen) {
    try {
      const result = await builder.build(spec)
      // A command: worker runs its own program: its "build" is a version id of its files.
      const output = result.file === '' ? `version ${result.id} (command: ${JSON.stringify(spec.command)})` : relative(root, result.file)
      process.stdout.write(`built ${spec.name} -> ${output} in ${result.durationMs} ms\n`)
    } catch (err) {
      failed++
      process.stderr.write(`${(err as Error).message}\n`)
    }
  }
  await builder.dispose()
  if (failed > 0) process.exitCode = 1
}

/** Copies a worker template (templates/<template>) into workers/NAME. */
async function scaffold (root: string, flags: ServerOverrides, name: string, template: string): Promise<void> {
  if (!TEMPLATES.includes(template)) throw new TQ_ERR_CLI_USAGE(`--template must be one of ${TEMPLATES.join(', ')} (got "${template}")`)
  if (!WORKER_NAME.test(name)) throw new TQ_ERR_CLI_INVALID_NAME(name)
  const { config } = await loadServerConfig({ root, overrides: { config: flags.config } })
  const target = join(root, config.workersDir, name)
  if (await stat(target).then(() => true, () => false)) throw new TQ_ERR_CLI_WORKER_EXISTS(relative(root, target))
  await cp(new URL(`../../../templates/${template}/`, import.meta.url), target, { recursive: true })
  const route = name === 'index' ? '/' : `/${name}`
  process.stdout.write(`created ${relative(root, target)}: edit src/main.ts; it is served at ${route}\n`)
}

/** The /health report as JSON (details: from this machine, or with the token). */
async function healthReport (url: string, token?: string): Promise<HealthReport> {
  const res = await fetch(`${url}/health`, { headers: { accept: 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) } })
  return await res.json() as HealthReport
}

/** Prints the running server's /health as a table (or JSON); exits 1 when it is unhealthy. */
async function status (root: string, options: { url?: string, token?: string, json?: boolean }): Promise<void> {
  const url = options.url ?? (await readServerFile(root))?.url
  if (url === undefined) throw new TQ_ERR_CLI_NOT_RUNNING(root, 'no .tqserver/server.json (or pass --url)')
  const token = options.token ?? process.env.TQ_HEALTH_TOKEN
  let report: HealthReport
  try {
    report = await healthReport(url, token)
  } catch (err) {
    throw new TQ_ERR_CLI_NOT_RUNNING(root, `${url} does not answer: ${(err as Error).message}`)
  }
  if (report.workers === undefined) throw new TQ_ERR_CLI_USAGE(`${url}/health shows only its status (${report.status}): pass --token`)
  process.stdout.write(options.json ? `${JSON.stringify(report, null, 2)}\n` : formatStatus(report, url))
  if (report.status === 'unhealthy') process.exitCode = 1
}

/** Signals the server in `root` to reload; with `wait`, follows /health until the reload is done. */
async function reload (root: string, wait: boolean, timeoutMs: number): Promise<void> {
  const server = await readServerFile(root)
  if (!server) throw new TQ_ERR_CLI_NOT_RUNNING(root, 'no .tqserver/server.json')
  let signalledAt: number
  try {
    await healthReport(server.url)
    // Only a reload begun after the signal serves this command: one already running when it
    // arrives read the files before this command was run, and the server runs one more after it.
    signalledAt = Date.now()
    process.kill(server.pid, 'SIGHUP')
  } catch (err) {
    throw new TQ_ERR_CLI_NOT_RUNNING(root, `pid ${server.pid} at ${server.url} does not answer: ${(err as Error).message}`)
  }
  if (!wait) {
    process.stdout.write(`signalled tqserver (pid ${server.pid}) to reload\n`)
    return
  }
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, RELOAD_POLL_MS))
    const report = await healthReport(server.url)
    const summary = report.lastReload
    if (!summary || summary.at < signalledAt) continue
    const list = (label: string, names: string[]) => names.length > 0 ? [`${label} ${names.join(', ')}`] : []
    process.stdout.write(`reloaded in ${summary.durationMs} ms: ${[
      ...list('switched', summary.switched), ...list('started', summary.started), ...list('stopped', summary.stopped),
      ...list('unchanged', summary.unchanged)
    ].join('; ') || 'nothing to do'}\n`)
    if (summary.needsRestart.length > 0) process.stdout.write(`changed settings that need a restart: ${summary.needsRestart.join(', ')}\n`)
    const problems = [
      ...(summary.error ? [summary.error] : []),
      ...summary.failed.map((failure) => `${failure.worker}: ${failure.reason}`),
      ...Object.entries(report.workers).filter(([, worker]) => worker.status === 'unhealthy').map(([name]) => `${name} has no healthy instance`)
    ]
    if (problems.length > 0) throw new TQ_ERR_CLI_RELOAD_FAILED(problems.join('; '))
    return
  }
  throw new TQ_ERR_CLI_RELOAD_TIMEOUT(timeoutMs)
}

main(process.argv.slice(2)).catch((err: Error & { code?: string }) => {
  const coded = typeof err.code === 'string' && err.code.startsWith('TQ_ERR_')
  process.stderr.write(`tqserver: ${coded ? `${err.message} [${err.code}]` : err.stack ?? err.message}\n`)
  process.exit(err.code === 'TQ_ERR_CLI_USAGE' ? 2 : 1)
})
