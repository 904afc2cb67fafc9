#!/usr/bin/env node
// The tqserver command: dev, start, build, new. Parses arguments, runs one command, and turns a
// coded error into one line on stderr and a non-zero exit.
import { cp, readFile, stat } from 'node:fs/promises'
import { join, relative, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { Builder } from './builder.js'
import { loadServerConfig, type ServerOverrides } from './config/server-config.js'
import { createLogger } from './logger.js'
import { discoverWorkers } from './worker-discovery.js'
import { TQ_ERR_CLI_INVALID_NAME, TQ_ERR_CLI_USAGE, TQ_ERR_CLI_WORKER_EXISTS, TQ_ERR_WORKER_NOT_FOUND } from './errors.js'

const HELP = `tqserver: serve every folder of workers/ at its route, each in its own process.

Usage: tqserver <command> [options]

Commands:
  dev                 run the server; build every worker first (development)
  start               run the server on existing builds, building what is missing (production)
  build [worker...]   build workers (all when none is named) into workers/<name>/bin/
  new NAME            create workers/NAME from a template that uses tqserver/worker

Options for dev and start (also TQ_PORT, TQ_HOST, TQ_WORKER_PORTS, TQ_CONFIG, then config/server.yaml):
  --port N            port the server listens on (default 8080)
  --host ADDR         address the server listens on (default 127.0.0.1)
  --worker-ports A-B  ports for worker processes (default 9000-9999)
  --config FILE       configuration file (default config/server.yaml)

Options for every command:
  --root DIR          project root holding workers/ and config/ (default: the current folder)
  -h, --help          show this help
  -v, --version       print the version
`

const WORKER_NAME = /^[a-z][a-z0-9_-]*$/

async function main (argv: string[]): Promise<void> {
  const { values, positionals } = parseCommandLine(argv)
  if (values.version) {
    const pkg = JSON.parse(await readFile(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }
    process.stdout.write(`${pkg.version}\n`)
    return
  }
  const [command, ...rest] = positionals
  if (values.help || command === undefined || command === 'help') {
    process.stdout.write(HELP)
    return
  }
  const root = resolve(values.root ?? process.cwd())
  const flags: ServerOverrides = {
    port: values.port === undefined ? undefined : (/^[0-9]+$/.test(values.port) ? Number(values.port) : values.port as unknown as number),
    host: values.host,
    workerPorts: values['worker-ports'],
    config: values.config
  }
  switch (command) {
    case 'dev':
    case 'start': {
      if (rest.length > 0) throw new TQ_ERR_CLI_USAGE(`${command} takes no arguments (got ${rest.join(' ')})`)
      // Loaded only here: the other commands do not need Fastify.
      const { startServer } = await import('../plugins/server.js')
      const mode = command === 'dev' ? 'dev' : 'prod'
      await startServer({ root, mode, flags, prettyLogs: mode === 'dev' && process.stdout.isTTY })
      return
    }
    case 'build':
      return build(root, flags, rest)
    case 'new':
      if (rest.length !== 1) throw new TQ_ERR_CLI_USAGE('new takes one worker name')
      return scaffold(root, flags, rest[0]!)
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
        config: { type: 'string' },
        root: { type: 'string' },
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
  let failed = 0
  for (const spec of chosen) {
    try {
      const result = await builder.build(spec)
      process.stdout.write(`built ${spec.name} -> ${relative(root, result.file)} in ${result.durationMs} ms\n`)
    } catch (err) {
      failed++
      process.stderr.write(`${(err as Error).message}\n`)
    }
  }
  await builder.dispose()
  if (failed > 0) process.exitCode = 1
}

/** Copies the worker template into workers/NAME. */
async function scaffold (root: string, flags: ServerOverrides, name: string): Promise<void> {
  if (!WORKER_NAME.test(name)) throw new TQ_ERR_CLI_INVALID_NAME(name)
  const { config } = await loadServerConfig({ root, overrides: { config: flags.config } })
  const target = join(root, config.workersDir, name)
  if (await stat(target).then(() => true, () => false)) throw new TQ_ERR_CLI_WORKER_EXISTS(relative(root, target))
  await cp(new URL('../../templates/worker/', import.meta.url), target, { recursive: true })
  const route = name === 'index' ? '/' : `/${name}`
  process.stdout.write(`created ${relative(root, target)}: edit src/main.ts; it is served at ${route}\n`)
}

main(process.argv.slice(2)).catch((err: Error & { code?: string }) => {
  const coded = typeof err.code === 'string' && err.code.startsWith('TQ_ERR_')
  process.stderr.write(`tqserver: ${coded ? `${err.message} [${err.code}]` : err.stack ?? err.message}\n`)
  process.exit(err.code === 'TQ_ERR_CLI_USAGE' ? 2 : 1)
})
