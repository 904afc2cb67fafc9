#!/usr/bin/env node
// The tqserver command: init, dev, start, build, new, reload, status, deploy. Parses arguments, runs one command, and turns a
// coded error into one line on stderr and a non-zero exit.
import { resolve } from 'node:path'
import { parseArgs } from 'node:util'
import type { ServerOverrides } from '../config/server-config.js'
import { TQ_ERR_CLI_USAGE } from '../errors.js'
import { build } from './build-command.js'
import { deploy } from './deploy.js'
import { COMMAND_HELP, DEFAULT_RELOAD_TIMEOUT_MS, HELP } from './help.js'
import { init } from './init.js'
import { ownVersion } from './own-package.js'
import { scaffold } from './scaffold.js'
import { reload, status } from './server-control.js'

async function main (argv: string[]): Promise<void> {
  const { values, positionals } = parseCommandLine(argv)
  if (values.version) {
    process.stdout.write(`${await ownVersion()}\n`)
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
  // A number where the schema takes one; anything else is left for the schema to refuse, by name.
  const numeric = (value: string | undefined) => value === undefined ? undefined : (/^[0-9]+$/.test(value) ? Number(value) : value) as number
  const flags: ServerOverrides = {
    port: numeric(values.port),
    proxies: numeric(values.proxies),
    host: values.host,
    workerPorts: values['worker-ports'],
    trustProxy: values['trust-proxy'],
    tls: definedOnly({ cert: values['tls-cert'], key: values['tls-key'], httpPort: numeric(values['tls-http-port']) }),
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
    case 'init':
      if (rest.length > 0) throw new TQ_ERR_CLI_USAGE(`init takes no arguments (got ${rest.join(' ')})`)
      return init(root)
    case 'new':
      if (rest.length !== 1) throw new TQ_ERR_CLI_USAGE('new takes one worker name')
      return scaffold(root, flags, rest[0]!, values.template ?? 'api')
    case 'status':
      return status(root, values)
    case 'reload':
      return reload(root, { ...values, wait: !values['no-wait'], timeoutMs: Number(values.timeout ?? DEFAULT_RELOAD_TIMEOUT_MS) })
    case 'deploy':
      if (rest.length !== 1) throw new TQ_ERR_CLI_USAGE('deploy takes one target name (targets are listed in config/deployment.yaml)')
      return deploy(root, flags, rest[0]!, { timeoutMs: Number(values.timeout ?? DEFAULT_RELOAD_TIMEOUT_MS), port: values.port })
    default:
      throw new TQ_ERR_CLI_USAGE(`unknown command "${command}"`)
  }
}

/** The keys given a value, or undefined when none is: a section the flags leave alone. */
function definedOnly<T extends object> (section: T): Partial<T> | undefined {
  const given = Object.entries(section).filter(([, value]) => value !== undefined)
  return given.length === 0 ? undefined : Object.fromEntries(given) as Partial<T>
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
        proxies: { type: 'string' },
        'trust-proxy': { type: 'string' },
        'tls-cert': { type: 'string' },
        'tls-key': { type: 'string' },
        'tls-http-port': { type: 'string' },
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

main(process.argv.slice(2)).catch((err: Error & { code?: string }) => {
  const coded = typeof err.code === 'string' && err.code.startsWith('TQ_ERR_')
  process.stderr.write(`tqserver: ${coded ? `${err.message} [${err.code}]` : err.stack ?? err.message}\n`)
  // 2: the command line needs changing (a wrong flag, or --url to pick one of several servers).
  process.exit(err.code === 'TQ_ERR_CLI_USAGE' || err.code === 'TQ_ERR_CLI_SEVERAL_SERVERS' ? 2 : 1)
})
