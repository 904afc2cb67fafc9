// The README's commands run as written, read from the README itself, in an empty folder with the
// packed tarball. Two changes only: `npm install tqserver` installs the tarball (no registry here
// holds tqserver), and the servers get free ports (TQ_PORT, or fastify-cli's -p), as two test runs
// may share a machine.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { TestContext } from 'node:test'
import { defer } from '../helpers/cleanup.js'
import { clientFor } from '../helpers/host.js'
import { LogRecorder } from '../helpers/logs.js'
import { usePackedFolder } from '../helpers/package.js'
import { freePort, PORTS } from '../helpers/ports.js'
import { REPO_ROOT } from '../helpers/project.js'
import { isAlive, waitForExit, within } from '../helpers/wait.js'

/** The commands of the first ```sh block after the line that contains `after`, without comments. */
async function documented (after: string): Promise<string[]> {
  const readme = await readFile(join(REPO_ROOT, 'README.md'), 'utf8')
  const block = /```sh\n([\s\S]*?)```/.exec(readme.slice(readme.indexOf(after)))
  assert.ok(readme.includes(after) && block, `README.md has a sh block after "${after}"`)
  return block[1]!.trim().split('\n').map((line) => line.replace(/\s+#.*$/, ''))
}

/**
 * Runs a shell command in a process group of its own, as a terminal does (an interactive shell
 * runs each command as a group of its own, not as its child); its stdout parsed as logs.
 */
function shell (t: TestContext, command: string, cwd: string, env: Record<string, string> = {}) {
  const child = spawn('sh', ['-c', command], { cwd, env: { ...process.env, npm_config_prefer_offline: 'true', ...env }, detached: true, stdio: ['ignore', 'pipe', 'pipe'] })
  const logs = new LogRecorder()
  let output = ''
  child.stdout.on('data', (chunk: Buffer) => { logs.write(chunk); output += chunk.toString() })
  child.stderr.on('data', (chunk: Buffer) => { output += chunk.toString() })
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
  defer(t, async () => {
    try { process.kill(-child.pid!, 'SIGKILL') } catch {}
    await exited
  })
  return { child, logs, exited, output: () => output, signal: (signal: NodeJS.Signals) => process.kill(-child.pid!, signal) }
}

async function served (fetch: ReturnType<typeof clientFor>, path: string, match: RegExp): Promise<number[]> {
  const res = await fetch(path)
  assert.equal(res.statusCode, 200)
  assert.match(await res.body.text(), match)
  const health = await (await fetch('/health')).body.json() as { workers: Record<string, { instances: Array<{ pid: number }> }> }
  return Object.values(health.workers).flatMap((worker) => worker.instances.map((instance) => instance.pid))
}

test("the README's quick start and fastify-cli commands work as written in an empty folder", async (t) => {
  const { dir, tarball } = await usePackedFolder(t)
  const [setup, run] = [await documented('In a project of your own'), await documented('fastify-cli is a package of its own')]
  const dev = setup.pop()!
  assert.equal(dev, 'npm run dev')
  const script = setup.join('\n').replace(/^npm install tqserver$/m, `npm install ${tarball}`)
  const installed = shell(t, `set -e\n${script}`, dir)
  assert.equal(await within(90_000, 'the quick start to install', installed.exited), 0, installed.output())
  const shop = join(dir, 'shop')
  const [first, last] = PORTS.docsCommands.split('-').map(Number) as [number, number]
  const workerPorts = `${first}-${first + 9}`

  // Ctrl-C in a terminal signals the whole process group: npm, its shell and the server.
  const port = await freePort()
  const server = shell(t, `exec ${dev}`, shop, { TQ_PORT: String(port), TQ_WORKER_PORTS: workerPorts })
  await server.logs.waitFor((line) => String(line.msg).startsWith('workers started'), 60_000, 'npm run dev to start the workers')
  const pids = await served(clientFor(t, `http://127.0.0.1:${port}`), '/', /<h1>Hello, world<\/h1>/)
  server.signal('SIGINT')
  assert.equal(await within(20_000, 'npm run dev to exit', server.exited), 0, `npm run dev exits 0 on Ctrl-C:\n${server.output()}`)
  for (const pid of pids) assert.equal(isAlive(pid), false, 'no worker is left')

  const [install, start] = run
  assert.equal(install, 'npm install fastify-cli')
  const added = shell(t, install!, shop)
  assert.equal(await within(90_000, 'fastify-cli to install', added.exited), 0, added.output())
  const cliPort = await freePort()
  const cli = shell(t, 'exec ' + start!.replace(/ -p 8080 /, ` -p ${cliPort} `), shop, { TQ_WORKER_PORTS: `${first + 10}-${last}` })
  await cli.logs.waitFor((line) => String(line.msg).startsWith('workers started'), 60_000, 'fastify start to start the workers')
  assert.ok(cli.logs.lines.some((line) => line.msg === `Server listening at http://127.0.0.1:${cliPort}`), '-a 127.0.0.1: this machine only')
  const cliPids = await served(clientFor(t, `http://127.0.0.1:${cliPort}`), '/?name=cli', /<h1>Hello, cli<\/h1>/)
  cli.signal('SIGTERM')
  await within(20_000, 'fastify start to exit', cli.exited)
  for (const pid of cliPids) await waitForExit(pid, 5000)
})
