// Production reload: `tqserver build` then `tqserver reload` (SIGHUP to `tqserver start`) switches
// exactly the workers that changed, under load without a failed request; the others keep their
// processes. One server; the subtests run in order on the same project.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { cp, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { runCliToEnd, startCliServer } from '../helpers/cli.js'
import { clientFor } from '../helpers/host.js'
import { startLoad } from '../helpers/load.js'
import type { LogLine } from '../helpers/logs.js'
import { PORTS } from '../helpers/ports.js'
import { FIXTURES, useProject, writeFiles } from '../helpers/project.js'
import { isAlive } from '../helpers/wait.js'
import { defer } from '../helpers/cleanup.js'

interface Health { workers: Record<string, { status: string, instances: Array<{ pid: number }> }> }

/** killTimeout at start, and after the reload that changes it. */
const KILL_TIMEOUT_MS = 1000
const NEW_KILL_TIMEOUT_MS = 3000

test('production reload', async (t) => {
  const root = await useProject(t, 'multi', { 'config/server.yaml': `killTimeout: ${KILL_TIMEOUT_MS}\n` })
  const cli = (...args: string[]) => runCliToEnd(t, args, { cwd: root })
  assert.equal((await cli('build')).code, 0)
  const server = await startCliServer(t, 'start', root, PORTS.prodReload)
  const fetch = clientFor(t, server.url)
  const pids = async () => {
    const report = await (await fetch('/health')).body.json() as Health
    return Object.fromEntries(Object.entries(report.workers).map(([name, worker]) => [name, worker.instances.map((i) => i.pid).join(',')]))
  }
  const answer = async (path: string) => await (await fetch(path)).body.json() as { version: number, greeting: string | null }
  const setVersion = (worker: string, version: number) => writeFile(join(root, 'workers', worker, 'src', 'version.ts'), `export const VERSION = ${version}\n`)

  await t.test('with nothing changed, a reload restarts nothing', async () => {
    const before = await pids()
    const result = await cli('reload')
    assert.match(result.stdout, /^reloaded in \d+ ms: unchanged a, b, c\n$/)
    assert.deepEqual(await pids(), before)
  })

  await t.test('a source edit without a build changes nothing', async () => {
    const before = await pids()
    await setVersion('a', 2)
    assert.match((await cli('reload')).stdout, /unchanged a, b, c/)
    assert.equal((await answer('/a/')).version, 1)
    assert.deepEqual(await pids(), before)
  })

  await t.test('a new build of one worker, under load: only it is switched, and no request fails', async () => {
    const before = await pids()
    const loadA = startLoad(server.url, '/a', 4)
    const loadB = startLoad(server.url, '/b', 4)
    defer(t, () => Promise.all([loadA.stop(), loadB.stop()]))
    await loadA.reached(1, 5000)
    assert.equal((await cli('build', 'a')).code, 0)
    const result = await cli('reload')
    assert.match(result.stdout, /^reloaded in \d+ ms: switched a; unchanged b, c\n$/)
    await loadA.reached(2, 5000)
    const [a, b] = await Promise.all([loadA.stop(), loadB.stop()])
    assert.deepEqual([...a.failures, ...b.failures], [])
    assert.ok(a.ok > 0 && b.ok > 0)
    const after = await pids()
    assert.notEqual(after.a, before.a)
    assert.deepEqual([after.b, after.c], [before.b, before.c], 'the other workers keep their processes')
    assert.equal(isAlive(Number(before.a)), false, 'the old instance of a is gone')
  })

  await t.test('a new worker is started and a removed one drained and stopped', async () => {
    const before = await pids()
    await cp(join(root, 'workers', 'b'), join(root, 'workers', 'd'), { recursive: true })
    assert.equal((await cli('build', 'd')).code, 0)
    await rm(join(root, 'workers', 'c'), { recursive: true })
    assert.match((await cli('reload')).stdout, /^reloaded in \d+ ms: started d; stopped c; unchanged a, b\n$/)
    assert.equal((await answer('/d/')).version, 1)
    const gone = await fetch('/c/')
    assert.equal(gone.statusCode, 404)
    await gone.body.dump()
    assert.equal(isAlive(Number(before.c)), false)
  })

  await t.test('a worker.yaml change switches that worker', async () => {
    await writeFile(join(root, 'workers', 'b', 'worker.yaml'), 'env:\n  GREETING: hello\n')
    assert.match((await cli('reload')).stdout, /switched b; unchanged a, d/)
    assert.equal((await answer('/b/')).greeting, 'hello')
  })

  await t.test('an invalid configuration is refused and the running one stays', async () => {
    const before = await pids()
    await writeFile(join(root, 'workers', 'a', 'worker.yaml'), 'instancez: 2\n')
    const result = await cli('reload')
    assert.equal(result.code, 1)
    assert.match(result.stderr, /^tqserver: reload failed: workers\/a\/worker\.yaml: unknown key "instancez" \(did you mean "instances"\?\) \[TQ_ERR_CLI_RELOAD_FAILED\]\n$/)
    assert.equal(result.stdout, '', 'no "reloaded" line for a reload that was refused')
    assert.deepEqual(await pids(), before)
    assert.equal((await answer('/a/')).version, 2)
    await rm(join(root, 'workers', 'a', 'worker.yaml'))
  })

  await t.test('changed server settings that need a restart are reported, and timeouts are applied', async () => {
    // A worker that ignores SIGTERM shows which killTimeout its stop uses.
    await cp(join(FIXTURES, 'ignores-sigterm', 'workers', 'stubborn'), join(root, 'workers', 'stubborn'), { recursive: true })
    assert.equal((await cli('build', 'stubborn')).code, 0)
    assert.match((await cli('reload')).stdout, /started stubborn/)
    await writeFiles(root, { 'config/server.yaml': `restartDelay: 200\nkillTimeout: ${NEW_KILL_TIMEOUT_MS}\nhealth:\n  token: rotated\n` })
    const result = await cli('reload')
    assert.match(result.stdout, /switched a, b, d, stubborn/, 'a new killTimeout reaches every worker')
    assert.match(result.stdout, /changed settings that need a restart: restartDelay, health\.token\n$/)

    const stubborn = (await pids()).stubborn!
    await rm(join(root, 'workers', 'stubborn'), { recursive: true })
    const again = (await cli('reload')).stdout
    assert.match(again, /stopped stubborn/)
    assert.match(again, /need a restart: restartDelay, health\.token\n$/, 'still not applied: still reported')
    const state = (to: string) => (line: LogLine) => line.msg === 'worker state changed' && line.pid === Number(stubborn) && line.to === to
    const draining = await server.logs.waitFor(state('DRAINING'), 5000, 'stubborn to drain')
    const stopped = await server.logs.waitFor(state('STOPPED'), 5000, 'stubborn to stop')
    assert.equal(stopped.reason, 'process signal SIGKILL')
    const waitedMs = (stopped.time as number) - (draining.time as number)
    // Node's timers may fire a few ms early by the wall clock of the log's times.
    assert.ok(waitedMs >= NEW_KILL_TIMEOUT_MS - 50, `killed ${waitedMs} ms after it left the rotation: the reloaded killTimeout, not the first one (${KILL_TIMEOUT_MS} ms)`)
    assert.equal(isAlive(Number(stubborn)), false)
  })
})

test('reload without a running server says so', async (t) => {
  const root = await useProject(t, 'multi')
  const result = await runCliToEnd(t, ['reload'], { cwd: root })
  assert.equal(result.code, 1)
  assert.match(result.stderr, /^tqserver: no tqserver runs in .* \(no \.tqserver\/servers\/<port>\.json names a running process; or pass --url\) \[TQ_ERR_CLI_NOT_RUNNING\]\n$/)
})
