// Start-up never depends on every worker, and a signal at any phase stops the server promptly:
// during start-up, during a production reload or a dev switch whose new instance is still
// starting, and a second signal exits at once; during a build: command too. Nothing is left
// running afterwards.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { runCli, startCliServer, workersStarted, type CliProcess } from '../helpers/cli.js'
import { defer } from '../helpers/cleanup.js'
import { clientFor } from '../helpers/host.js'
import { PORTS } from '../helpers/ports.js'
import { useProject } from '../helpers/project.js'
import { isAlive, until, within } from '../helpers/wait.js'

interface Instance { pid: number, state: string }
interface Health { workers: Record<string, { instances: Instance[] }> }

/** The start-up fixture; `healthyAfterMs` for the slow worker (-1: never), with its start timeout. */
function project (t: Parameters<typeof useProject>[0], healthyAfterMs: number, startTimeout = 60_000) {
  return useProject(t, 'start-up', {
    'config/server.yaml': 'killTimeout: 2000\n',
    'workers/slow/worker.yaml': `startTimeout: ${startTimeout}\nenv:\n  HEALTHY_AFTER_MS: "${healthyAfterMs}"\n`
  })
}

const health = async (fetch: ReturnType<typeof clientFor>) => await (await fetch('/health')).body.json() as Health

/** Every worker pid the server reports, whatever the instance's state. */
const pidsOf = (report: Health) => Object.values(report.workers).flatMap((worker) => worker.instances.map((instance) => instance.pid)).filter(Boolean)

/** SIGTERM; the server exits 0 within `ms` and every pid in `pids` is gone. */
async function stopsPromptly (server: CliProcess, pids: number[], ms: number) {
  server.child.kill('SIGTERM')
  assert.deepEqual(await within(ms, 'the server to exit after SIGTERM', server.exited), { code: 0, signal: null })
  await until(2000, 'every worker process to be gone', () => pids.every((pid) => !isAlive(pid)))
}

test('a worker that never becomes healthy holds up nobody: the others serve, it answers 503, SIGTERM still stops at once', async (t) => {
  const root = await project(t, -1)
  const server = await startCliServer(t, 'start', root, PORTS.startUp, [], { wait: false })
  const fetch = clientFor(t, server.url)
  await until(20_000, 'the quick worker to serve', async () => {
    const res = await fetch('/quick/')
    await res.body.dump()
    return res.statusCode === 200
  })

  const slow = await fetch('/slow/')
  assert.equal(slow.statusCode, 503)
  assert.equal(slow.headers['retry-after'], '1')
  await slow.body.dump()
  const ready = await fetch('/readyz')
  assert.equal(ready.statusCode, 200, 'the host can serve: one worker still starting does not make it unready')
  await ready.body.dump()
  const report = await health(fetch)
  assert.equal(report.workers.slow!.instances[0]!.state, 'STARTING')

  // The start in progress is given up, not waited for (startTimeout is 60 s).
  await stopsPromptly(server, pidsOf(report), 8000)
})

test('a worker that takes 12 s to become healthy is served once it is, with no plugin or onReady timeout', async (t) => {
  const root = await project(t, 12_000, 30_000)
  const server = await startCliServer(t, 'start', root, PORTS.startUp, [], { wait: false })
  const started = await within(40_000, 'the first start to end', workersStarted(server.logs))
  assert.equal(started.msg, 'workers started', 'every worker serves')
  const fetch = clientFor(t, server.url)
  const res = await fetch('/slow/')
  assert.equal(res.statusCode, 200)
  await res.body.dump()
  assert.equal(server.child.exitCode, null, 'the server still runs')
  await stopsPromptly(server, pidsOf(await health(fetch)), 8000)
})

for (const mode of ['start', 'dev'] as const) {
  const during = mode === 'start' ? 'a production reload' : 'a dev switch'
  test(`SIGTERM during ${during} whose new instance is still starting: exit 0 promptly, old and new processes gone`, async (t) => {
    const root = await project(t, 0)
    const server = await startCliServer(t, mode, root, PORTS.startUp)
    const fetch = clientFor(t, server.url)
    // The new version never becomes healthy: the switch waits on it.
    await writeFile(join(root, 'workers', 'slow', 'worker.yaml'), 'startTimeout: 60000\nenv:\n  HEALTHY_AFTER_MS: "-1"\n')
    // `tqserver reload` sends SIGHUP and follows the reload; it must say so when the server goes.
    const reload = mode === 'start' ? runCli(t, ['reload'], { cwd: root }) : undefined
    let report: Health | undefined
    await until(10_000, 'a second instance of slow to be starting', async () => {
      report = await health(fetch)
      return report.workers.slow!.instances.some((instance) => instance.state === 'STARTING' && instance.pid > 0)
    })
    assert.equal(report!.workers.slow!.instances.length, 2, 'the old instance still serves beside the new one')
    await stopsPromptly(server, pidsOf(report!), 8000)
    if (reload) {
      assert.equal((await within(10_000, 'tqserver reload to end', reload.exited)).code, 1)
      assert.match(reload.stderr(), /^tqserver: .* stopped answering during the reload: .*\[TQ_ERR_CLI_NOT_RUNNING\]\n$/)
    }
  })
}

test('a second SIGTERM exits at once, even with a request holding the drain, and leaves no worker', async (t) => {
  const root = await useProject(t, 'start-up', { 'config/server.yaml': 'drainTimeout: 60000\n' })
  const server = await startCliServer(t, 'start', root, PORTS.startUp)
  const fetch = clientFor(t, server.url)
  const pids = pidsOf(await health(fetch))
  const held = fetch('/quick/hold?ms=60000').catch(() => undefined)
  await until(5000, 'the held request to be in flight', async () =>
    (await (await fetch('/metrics')).body.text()).includes('tqserver_requests_in_flight{worker="quick"} 1'))
  server.child.kill('SIGTERM')
  await server.logs.waitFor((line) => line.msg === 'shutting down: draining workers', 5000, 'the drain to begin')
  server.child.kill('SIGTERM')
  const exit = await within(2000, 'the server to exit on the second signal', server.exited)
  assert.equal(exit.code, 1)
  await held
  await until(2000, 'every worker process to be gone', () => pids.every((pid) => !isAlive(pid)))
})

/** A command worker whose `build:` runs until killed, writing its shell's pid first. */
const SLOW_BUILD = {
  'workers/slowb/worker.yaml': 'command: node server.js\nbuild: echo $$ > build.pid && exec sleep 300\n',
  'workers/slowb/server.js': "require('http').createServer((q, r) => r.end('ok')).listen(process.env.PORT, process.env.HOST)\n"
}

for (const command of ['build', 'dev'] as const) {
  test(`SIGTERM to tqserver ${command} while a build: command runs: it stops at once and the command with it`, async (t) => {
    const root = await useProject(t, undefined, SLOW_BUILD)
    const cli = runCli(t, command === 'dev' ? ['dev', '--port', '0', '--worker-ports', PORTS.startUp] : ['build'], { cwd: root })
    const pidFile = join(root, 'workers', 'slowb', 'build.pid')
    const builder = await until(20_000, 'the build: command to run', async () => Number(await readFile(pidFile, 'utf8').catch(() => '')) || false)
    defer(t, () => { if (isAlive(builder)) process.kill(builder, 'SIGKILL') })
    cli.child.kill('SIGTERM')
    const exit = await within(8000, `tqserver ${command} to exit`, cli.exited)
    assert.deepEqual(exit, command === 'dev' ? { code: 0, signal: null } : { code: 143, signal: null })
    await until(2000, 'the build: command to be gone', () => !isAlive(builder))
  })
}
