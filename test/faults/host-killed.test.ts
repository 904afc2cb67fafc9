// The host dies by SIGKILL, which runs none of its cleanup: every worker's process group goes with
// it, a Node worker whose event loop is blocked too (its preload never sees the IPC channel close),
// and so do command: workers and what they started, in dev a worker in an adopted standby, and the
// groups listed before the reaper itself was killed. Stopping a command that ignores SIGTERM, or
// killing its shim, leaves nothing behind either; nor does a Node worker whose helper ignores SIGTERM.
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { startCliServer } from '../helpers/cli.js'
import { clientFor } from '../helpers/host.js'
import { PORTS } from '../helpers/ports.js'
import { descendantPids, groupsLedBelow, killLeftoverGroups, liveMembers } from '../helpers/process-groups.js'
import { useProject } from '../helpers/project.js'
import { until, waitForExit, within } from '../helpers/wait.js'
import { isPortFree } from '../../src/process/port-pool.js'

interface Health { workers: Record<string, { status: string, instances: Array<{ pid: number, port: number }> }> }

/** Long enough for a loaded machine; the reaper acts as soon as the host is gone. */
const GONE_WITHIN_MS = 5000

async function healthOf (fetch: ReturnType<typeof clientFor>): Promise<Health> {
  return await (await fetch('/health')).body.json() as Health
}

function commandLine (pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ')
  } catch {
    return '' // gone
  }
}

/** The host's reaper: the shell running src/process/group-reaper.ts's script. */
function reaperBelow (host: number): number | undefined {
  return descendantPids(host).find((pid) => commandLine(pid).includes("trap '' INT TERM HUP QUIT"))
}

/** `tqserver <command>` on the project, its workers' groups killed after the test whatever happens. */
async function startWatched (t: TestContext, command: 'start' | 'dev', root: string) {
  const server = await startCliServer(t, command, root, PORTS.hostKilled)
  const groups = new Set<number>()
  killLeftoverGroups(t, server, groups)
  return { server, groups, fetch: clientFor(t, server.url) }
}

/** The health report once every worker is healthy. */
function allHealthy (fetch: ReturnType<typeof clientFor>): Promise<Health> {
  return until(15_000, 'every worker to be healthy', async () => {
    const report = await healthOf(fetch)
    return Object.values(report.workers).every((worker) => worker.status === 'healthy') && report
  })
}

async function expectGone (groups: Set<number>, ports: number[]): Promise<void> {
  await until(GONE_WITHIN_MS, 'every process of the workers\' groups to be gone', () => liveMembers(groups).length === 0)
    .catch((err: Error) => { throw new Error(`${err.message}; still running: ${liveMembers(groups).join(', ')}`) })
  await until(GONE_WITHIN_MS, `the worker ports ${ports.join(', ')} to be free`, async () =>
    (await Promise.all(ports.map((port) => isPortFree(port, '127.0.0.1')))).every(Boolean))
}

test('kill -9 of the host takes every worker group with it: a spinning Node worker, a shell string, a list', async (t) => {
  const root = await useProject(t, 'host-killed')
  const { server, groups, fetch } = await startWatched(t, 'start', root)
  const health = await allHealthy(fetch)
  assert.deepEqual(Object.keys(health.workers).sort(), ['list', 'shell', 'spinner'])
  const ports = Object.values(health.workers).flatMap((worker) => worker.instances.map((instance) => instance.port))

  // The request never gets an answer; it fails when the host goes.
  const spin = fetch('/spinner/spin').then(() => assert.fail('the spinning worker answered'), () => {})
  await server.logs.waitFor((line) => line.worker === 'spinner' && line.msg === 'spinning', 10_000, 'the spinner to block its event loop')
  for (const group of groupsLedBelow(server.child.pid!)) groups.add(group)
  // Each worker's group, the shell's and the list program's own groups (and the reaper's).
  assert.ok(groups.size >= 5, `groups led below the host: ${[...groups].join(', ')}`)

  server.child.kill('SIGKILL')
  await within(5000, 'the host to die', server.exited)
  await expectGone(groups, ports)
  await spin
})

test('a command worker that ignores SIGTERM is killed with everything it started after killTimeout', async (t) => {
  const root = await useProject(t, 'command-ignores-sigterm', { 'config/server.yaml': 'killTimeout: 500\n' })
  const { server, groups, fetch } = await startWatched(t, 'start', root)
  const health = await until(15_000, 'the worker to be healthy', async () => {
    const report = await healthOf(fetch)
    return report.workers.stubborn?.status === 'healthy' && report
  })
  const ports = health.workers.stubborn!.instances.map((instance) => instance.port)
  for (const group of groupsLedBelow(server.child.pid!)) groups.add(group)
  // The shim's group and the program's.
  assert.ok(groups.size >= 2, `groups led below the host: ${[...groups].join(', ')}`)

  server.child.kill('SIGTERM')
  assert.deepEqual(await within(15_000, 'the host to exit', server.exited), { code: 0, signal: null })
  await expectGone(groups, ports)
})

test('in dev, kill -9 of the host takes a spinning worker that runs in a warm standby, and the next standby', async (t) => {
  const root = await useProject(t, 'host-killed', { 'config/server.yaml': 'logLevel: debug\n' })
  const { server, groups, fetch } = await startWatched(t, 'dev', root)
  await server.logs.waitFor((line) => line.msg === 'standby ready', 30_000, 'a standby to be ready')

  const switched = server.logs.next((line) => line.worker === 'spinner' && line.msg === 'worker switched', 30_000, 'the spinner to switch')
  const source = join(root, 'workers', 'spinner', 'src', 'main.ts')
  await writeFile(source, (await readFile(source, 'utf8')).replace("console.log('spinning')", "console.log('spinning', 2)"))
  await switched
  const health = await healthOf(fetch)
  const spinner = health.workers.spinner!.instances[0]!.pid
  assert.match(commandLine(spinner), /standby\.js/, 'the new version runs in an adopted standby')
  await server.logs.waitForCount((line) => line.msg === 'standby ready', 2, 30_000, 'the next standby to be ready')
  const ports = Object.values(health.workers).flatMap((worker) => worker.instances.map((instance) => instance.port))

  const spin = fetch('/spinner/spin').then(() => assert.fail('the spinning worker answered'), () => {})
  await server.logs.waitFor((line) => line.worker === 'spinner' && line.msg === 'spinning 2', 10_000, 'the spinner to block its event loop')
  for (const group of groupsLedBelow(server.child.pid!)) groups.add(group)
  server.child.kill('SIGKILL')
  await within(5000, 'the host to die', server.exited)
  await expectGone(groups, ports)
  await spin
})

test('a killed reaper is started again at the next registration and told every live group; a killed shim takes its program along', async (t) => {
  const root = await useProject(t, 'host-killed')
  const { server, groups, fetch } = await startWatched(t, 'start', root)
  const health = await allHealthy(fetch)
  const host = server.child.pid!
  for (const group of groupsLedBelow(host)) groups.add(group)
  const firstReaper = reaperBelow(host)
  assert.ok(firstReaper, 'the host runs a reaper')
  process.kill(firstReaper, 'SIGKILL')
  await waitForExit(firstReaper, 5000)

  // Killed from outside, the list worker's shim runs no exit handler: the host kills its
  // program's group (python3 and the sleep). Its restart registers new groups: a new reaper.
  const shim = health.workers.list!.instances[0]!.pid
  const programGroups = groupsLedBelow(shim)
  assert.equal(programGroups.length, 1, 'the program leads a group of its own')
  process.kill(shim, 'SIGKILL')
  await until(GONE_WITHIN_MS, 'the killed shim\'s program group to be gone', () => liveMembers(programGroups).length === 0)
    .catch((err: Error) => { throw new Error(`${err.message}; still running: ${liveMembers(programGroups).join(', ')}`) })
  const restarted = await until(15_000, 'the list worker to run again', async () => {
    const report = await healthOf(fetch)
    const instance = report.workers.list!.instances[0]
    return report.workers.list!.status === 'healthy' && instance && instance.pid !== shim && report
  })
  const secondReaper = reaperBelow(host)
  assert.ok(secondReaper !== undefined && secondReaper !== firstReaper, 'a new reaper runs')
  const ports = Object.values(restarted.workers).flatMap((worker) => worker.instances.map((instance) => instance.port))

  // The spinner was registered with the first reaper only: the second must have been told.
  const spin = fetch('/spinner/spin').then(() => assert.fail('the spinning worker answered'), () => {})
  await server.logs.waitFor((line) => line.worker === 'spinner' && line.msg === 'spinning', 10_000, 'the spinner to block its event loop')
  for (const group of groupsLedBelow(host)) groups.add(group)
  server.child.kill('SIGKILL')
  await within(5000, 'the host to die', server.exited)
  await expectGone(groups, ports)
  await spin
})

test('a Node worker that exits on SIGTERM leaves nothing of its group: a child that ignores SIGTERM goes with it', async (t) => {
  const root = await useProject(t, undefined, {
    'workers/parent/src/main.ts': `import { spawn } from 'node:child_process'
import { createServer } from 'node:http'
// A helper that ignores SIGTERM, in the worker's own group; the worker exits on SIGTERM's default.
spawn('sh', ['-c', 'trap "" TERM; while :; do sleep 1; done'], { stdio: 'ignore' })
createServer((req, res) => res.end(String(process.pid))).listen(Number(process.env.PORT), process.env.HOST)
`
  })
  const { server, groups, fetch } = await startWatched(t, 'start', root)
  const pid = Number(await (await fetch('/parent/')).body.text())
  groups.add(pid)
  await until(5000, 'the helper to run in the worker\'s group', () => liveMembers(groups).length >= 2)
  server.child.kill('SIGTERM')
  assert.deepEqual(await within(15_000, 'the server to exit', server.exited), { code: 0, signal: null })
  await until(GONE_WITHIN_MS, 'the worker\'s group to be empty', () => liveMembers(groups).length === 0)
})
