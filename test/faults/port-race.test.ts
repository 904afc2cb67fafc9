// A worker port taken by another program between the pool's check and the worker's bind (the
// race of a range inside the kernel's ephemeral ports): the instance is started again at once on
// another port, neither counted as a crash nor reported as a failed start, at first start and in
// a reload. The fixture forces the race: its squatter binds the worker's port before it does.
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { defer } from '../helpers/cleanup.js'
import { startHost, type Host } from '../helpers/host.js'
import type { LogLine } from '../helpers/logs.js'
import { PORTS } from '../helpers/ports.js'
import { useProject } from '../helpers/project.js'
import { isAlive, waitForExit } from '../helpers/wait.js'

const PID_FILE = 'squatter.pid'
const RETRIED = 'worker port taken before the worker could bind it; retrying on another port'
const FIRST_PORT = Number(PORTS.portRace.split('-')[0])

/** worker.yaml for racer; with `squat`, its next process has its port taken first. */
const settings = (version: number, squat: boolean) =>
  `env:\n  VERSION: "${version}"\n${squat ? `  SQUATTER_PID_FILE: "../../${PID_FILE}"\n` : ''}`

/** A copy of the port-race fixture; the squatter, once there is one, is killed after the test. */
async function project (t: TestContext, yaml: string): Promise<string> {
  const root = await useProject(t, 'port-race', { 'workers/racer/worker.yaml': yaml })
  defer(t, async () => {
    const pid = await squatterPid(root).catch(() => undefined)
    if (pid === undefined) return
    try {
      process.kill(pid, 'SIGKILL')
    } catch {} // already gone
    await waitForExit(pid, 5000)
  })
  return root
}

async function squatterPid (root: string): Promise<number> {
  return Number(await readFile(join(root, PID_FILE), 'utf8'))
}

async function answer (host: Host): Promise<{ version: string, pid: number, port: number }> {
  const res = await host.fetch('/racer/')
  assert.equal(res.statusCode, 200)
  return await res.body.json() as { version: string, pid: number, port: number }
}

/** Nothing in /health says the worker crashed, restarted or failed to start. */
function assertNoFault (host: Host): void {
  const report = host.app.tqserver.status()
  const racer = report.workers.racer!
  assert.equal(racer.status, 'healthy')
  assert.equal(racer.lastError, null)
  assert.deepEqual(racer.instances.map((instance) => [instance.state, instance.restarts]), [['HEALTHY', 0]])
  assert.deepEqual(report.events.filter((event) => ['crashed', 'start-failed', 'failed'].includes(event.type)), [])
}

const retried = (line: LogLine) => line.msg === RETRIED && line.worker === 'racer'

test('at first start, a worker whose port was taken serves on another port, with no crash', async (t) => {
  const root = await project(t, settings(1, true))
  const host = await startHost(t, { root, workerPorts: PORTS.portRace })
  await host.app.tqserver.idle()
  assertNoFault(host)

  const squatter = await squatterPid(root)
  assert.ok(isAlive(squatter), 'the squatter still holds the port')
  const warned = host.logs.lines.filter(retried)
  assert.equal(warned.length, 1)
  assert.equal(warned[0]!.level, 40, 'logged at warn')
  assert.equal(warned[0]!.port, FIRST_PORT, 'the first port leased is the one taken')
  const served = await answer(host)
  assert.equal(served.version, '1')
  assert.equal(served.port, warned[0]!.nextPort)
  assert.notEqual(served.port, FIRST_PORT)
  assert.deepEqual(host.logs.transitions('racer'), ['STOPPED>STARTING', 'STARTING>HEALTHY'])
})

test('in a production reload, a new version whose port was taken still switches in', async (t) => {
  const root = await project(t, settings(1, false))
  const host = await startHost(t, { root, workerPorts: PORTS.portRace })
  await host.app.tqserver.idle()
  const before = await answer(host)
  assert.equal(before.version, '1')

  await writeFile(join(root, 'workers', 'racer', 'worker.yaml'), settings(2, true))
  const summary = await host.app.tqserver.reload()
  assert.deepEqual(summary.failed, [])
  assert.deepEqual(summary.switched, ['racer'])

  const warned = host.logs.lines.filter(retried)
  assert.equal(warned.length, 1)
  assert.ok(isAlive(await squatterPid(root)), 'the squatter still holds the port')
  const after = await answer(host)
  assert.equal(after.version, '2')
  assert.equal(after.port, warned[0]!.nextPort)
  assert.notEqual(after.pid, before.pid)
  assert.equal(isAlive(before.pid), false, 'the old version is gone')
  assertNoFault(host)
})
