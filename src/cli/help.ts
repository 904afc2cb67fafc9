// The command's help texts: `tqserver --help` lists each command with a one-line summary.
import { serverConfigSchema } from '../config/schema.js'
import { DEFAULT_CONFIG_FILE } from '../config/server-config.js'
import { CONFIG_ENV, HOST_ENV } from '../env-names.js'

export const DEFAULT_RELOAD_TIMEOUT_MS = 120_000

/** A server key's default, as the schema gives it. */
const fallback = (key: 'port' | 'host' | 'workerPorts' | 'trustProxy' | 'proxies') => String((serverConfigSchema.properties[key] as { default: unknown }).default)

const SERVER_OPTIONS = `Options (also ${[...Object.keys(HOST_ENV), CONFIG_ENV].join(', ')}, then ${DEFAULT_CONFIG_FILE}):
  --port N            port the server listens on (default ${fallback('port')})
  --host ADDR         address the server listens on (default ${fallback('host')})
  --worker-ports A-B  ports for worker processes (default ${fallback('workerPorts')})
  --proxies N|auto    processes serving the port (default ${fallback('proxies')}: one per core; 1 in dev)
  --trust-proxy LIST  proxies whose X-Forwarded-* headers count: true, a hop count, or
                      addresses/CIDRs with commas (default ${fallback('trustProxy')}: none)
  --tls-cert FILE     serve HTTPS (HTTP/2 and HTTP/1.1) with this certificate chain (PEM)
  --tls-key FILE      and this private key (PEM); docs/tls.md, also for ACME
  --tls-http-port N   plain-HTTP port: redirects to HTTPS, answers ACME challenges
  --config FILE       configuration file (default ${DEFAULT_CONFIG_FILE})
  --root DIR          project root holding workers/ and config/ (default: the current folder)`

/** Each command's help, shown by `tqserver COMMAND --help`; the first line is its summary. */
export const COMMAND_HELP: Record<string, string> = {
  init: `tqserver init [--root DIR]
Make this folder a tqserver project, keeping every file it already has: config/server.yaml, an
example worker (workers/index, unless workers/ has one), the package.json scripts dev, start and
build, and .gitignore lines for build output.`,
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
  reload: `tqserver reload [--url URL | --port N] [--token TOKEN] [--no-wait] [--timeout MS] [--root DIR]
Make the server running in this root (found through .tqserver/servers/<port>.json) reload what
changed, wait until it has, and print what was switched. Exits non-zero if a worker failed to
switch. With several servers in the root, name one with --url or --port.
  --url URL           this server: signalled if it runs in this root, else asked over HTTP
                      (POST /__tqserver/reload: from its machine, or with its health.token)
  --port N            the server of this root that listens on port N
  --token TOKEN       health.token, for a server that is not on this machine (or TQ_HEALTH_TOKEN)
  --no-wait           ask for the reload and return
  --timeout MS        how long to wait for the reload (default ${DEFAULT_RELOAD_TIMEOUT_MS})`,
  status: `tqserver status [--url URL | --port N] [--token TOKEN] [--json] [--root DIR]
Print the running server's /health as a table: each worker's instances with state, pid, port,
uptime, memory, CPU, requests, errors and p99 latency. Exits 1 when the server is unhealthy.
  --url URL           ask this server (default: the one running in this root)
  --port N            the server of this root that listens on port N (when several run there)
  --token TOKEN       health.token, for a server that is not on this machine (or TQ_HEALTH_TOKEN)
  --json              print the report as JSON`,
  deploy: `tqserver deploy TARGET [--port N] [--timeout MS] [--root DIR] [--config FILE]
Build every worker, copy what runs to TARGET (from config/deployment.yaml: a folder, or
user@host:/path over ssh) with rsync, run npm ci --omit=dev there when package.json or the lockfile
changed, and make the server there reload (or run the target's restart: command when the tqserver
package itself changed). Copies package.json, package-lock.json, config/ and per worker
worker.yaml, the current build, public/, private/ and its files: (command: workers: all but src/).
  --port N            the server there that listens on port N (when several run there)
  --timeout MS        how long to wait for the reload there (default ${DEFAULT_RELOAD_TIMEOUT_MS})`,
  new: `tqserver new NAME [--template api|html] [--root DIR]
Create workers/NAME from a template; it is served at /NAME (index: at /).
  --template api      a JSON API with a schema-validated route (default)
  --template html     an HTML page with a form, and a stylesheet in public/`
}

/** One line per command for `tqserver --help`. */
const SUMMARY: Record<string, string> = {
  init: 'make this folder a tqserver project (keeps what is there)',
  dev: 'serve the workers, rebuilding and switching a worker when its files change',
  start: 'serve the production builds; SIGHUP switches what changed',
  build: 'build production bundles into workers/<name>/bin/',
  reload: 'make the running server switch what changed, and wait',
  status: "the running server's workers and instances, as a table",
  new: 'create workers/NAME from a template',
  deploy: 'build, copy to a target, install and reload there'
}

export const HELP = `tqserver: serve every folder of workers/ at its route, each in its own process.

Usage: tqserver <command> [options]

Commands:
${Object.entries(SUMMARY).filter(([name]) => name in COMMAND_HELP).map(([name, summary]) => `  ${name.padEnd(10)}${summary}`).join('\n')}

Run tqserver <command> --help for a command's options.
  -h, --help          show help
  -v, --version       print the version
`
