// tqserver init: make a project (or add tqserver to one) without overwriting anything the user has:
// config/server.yaml, an example worker, package.json scripts, and .gitignore lines for build output.
import { existsSync } from 'node:fs'
import { cp, readFile, readdir, writeFile } from 'node:fs/promises'
import { basename, join } from 'node:path'
import { loadServerConfig } from '../config/server-config.js'
import { ownVersion, PACKAGE_ROOT } from './own-package.js'

// `exec`: npm's shell would otherwise die of the Ctrl-C that npm passes on, and npm exit 130
// after the server drained and exited 0.
const SCRIPTS = { dev: 'exec tqserver dev', start: 'exec tqserver start', build: 'tqserver build' }
const IGNORED = ['node_modules/', 'workers/*/bin/', '.tqserver/', 'logs/']

/** Runs each step in `root` and prints one line per file: created, updated or kept. */
export async function init (root: string): Promise<void> {
  const lines = [
    await copyIfMissing(join(PACKAGE_ROOT, 'config', 'server.yaml'), root, 'config/server.yaml'),
    await exampleWorker(root),
    await packageJson(root),
    await gitignore(root)
  ]
  // The next step as this project has it: its own dev script may be another tool's, its port another.
  const pkg = JSON.parse(await readFile(join(root, 'package.json'), 'utf8')) as { scripts?: Record<string, string> }
  const command = pkg.scripts?.dev === SCRIPTS.dev ? 'npm run dev' : 'npx tqserver dev'
  const url = await loadServerConfig({ root }).then(({ config }) => ` and open http://${config.host.includes(':') ? `[${config.host}]` : config.host}:${config.port}/`, () => '')
  process.stdout.write(`${lines.join('\n')}\nnext: ${command}${url}\n`)
}

async function copyIfMissing (from: string, root: string, to: string): Promise<string> {
  if (existsSync(join(root, to))) return `kept    ${to}`
  await cp(from, join(root, to), { recursive: true, errorOnExist: true, force: false })
  return `created ${to}`
}

/** workers/index from the html template, unless workers/ already holds a worker. */
async function exampleWorker (root: string): Promise<string> {
  const workers = await readdir(join(root, 'workers')).catch(() => [])
  if (workers.length > 0) return `kept    workers/ (${workers.join(', ')})`
  return await copyIfMissing(join(PACKAGE_ROOT, 'templates', 'html'), root, 'workers/index')
}

/** Adds the scripts that are missing; a package.json is written when there is none. */
async function packageJson (root: string): Promise<string> {
  const path = join(root, 'package.json')
  const text = await readFile(path, 'utf8').catch(() => undefined)
  if (text === undefined) {
    const name = basename(root).toLowerCase().replace(/[^a-z0-9._-]+/g, '-')
    const pkg = { name, version: '1.0.0', private: true, type: 'module', scripts: SCRIPTS, dependencies: { tqserver: `^${await ownVersion()}` } }
    await writeFile(path, `${JSON.stringify(pkg, null, 2)}\n`)
    return 'created package.json (run npm install)'
  }
  const pkg = JSON.parse(text) as { scripts?: Record<string, string> }
  const scripts = pkg.scripts ?? {}
  const added = Object.entries(SCRIPTS).filter(([name]) => scripts[name] === undefined)
  const kept = Object.keys(SCRIPTS).filter((name) => scripts[name] !== undefined && scripts[name] !== SCRIPTS[name as keyof typeof SCRIPTS])
  if (added.length > 0) {
    pkg.scripts = { ...scripts, ...Object.fromEntries(added) }
    // Keep the file's own indentation (npm writes two spaces; some projects use tabs or four).
    const indent = /^[ \t]+(?=")/m.exec(text)?.[0] ?? '  '
    await writeFile(path, `${JSON.stringify(pkg, null, indent)}\n`)
  }
  const notes = [
    ...(added.length > 0 ? [`added scripts ${added.map(([name]) => name).join(', ')}`] : []),
    ...(kept.length > 0 ? [`kept your scripts ${kept.join(', ')} (tqserver's: ${kept.map((name) => `"${SCRIPTS[name as keyof typeof SCRIPTS]}"`).join(', ')})`] : [])
  ]
  return `${added.length > 0 ? 'updated' : 'kept   '} package.json${notes.length > 0 ? `: ${notes.join('; ')}` : ''}`
}

/** Appends the build-output lines that .gitignore lacks. */
async function gitignore (root: string): Promise<string> {
  const path = join(root, '.gitignore')
  const text = await readFile(path, 'utf8').catch(() => undefined)
  const present = new Set((text ?? '').split(/\r?\n/).map((line) => line.trim()))
  const missing = IGNORED.filter((line) => !present.has(line) && !present.has(line.replace(/\/$/, '')))
  if (missing.length === 0) return 'kept    .gitignore'
  const head = text === undefined || text === '' || text.endsWith('\n') ? (text ?? '') : `${text}\n`
  await writeFile(path, `${head}${text === undefined ? '' : '# tqserver\n'}${missing.join('\n')}\n`)
  return `${text === undefined ? 'created' : 'updated'} .gitignore`
}
