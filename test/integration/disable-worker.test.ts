// `enabled: false` in a running worker's worker.yaml, then a reload: the worker leaves its route
// at once (404), its requests in flight finish (the drain), its process stops; `enabled: true`
// and a reload start it again.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { startHost } from '../helpers/host.js'
import { PORTS } from '../helpers/ports.js'
import { useProject } from '../helpers/project.js'
import { isAlive, until, waitForExit } from '../helpers/wait.js'

test('disabling a running worker drains and stops it, and its route answers 404', async (t) => {
  const root = await useProject(t, 'long-requests')
  const host = await startHost(t, { root, workerPorts: PORTS.disableWorker })
  const pid = host.app.tqserver.status().workers.app!.instances[0]!.pid!
  const inflight = () => host.app.tqserver.status().workers.app!.instances[0]?.inflight ?? 0
  const slow = host.fetch('/app/slow?ms=3000').then(async (res) => ({ status: res.statusCode, body: await res.body.json() as { pid: number } }))
  await until(5000, 'the slow request to be in flight', () => inflight() > 0)

  await writeFile(join(root, 'workers', 'app', 'worker.yaml'), 'enabled: false\n')
  const reloaded = host.app.tqserver.reload()
  // The route goes before the drain ends: a new request is not routed to the draining instance.
  await host.logs.waitFor((line) => line.worker === 'app' && line.pid === pid && line.to === 'DRAINING', 10_000, 'the instance to drain')
  const during = await host.fetch('/app/')
  assert.equal(during.statusCode, 404)
  await during.body.dump()

  const summary = await reloaded
  assert.deepEqual([summary.switched, summary.failed], [['app'], []])
  assert.deepEqual(await slow, { status: 200, body: { slow: true, ms: 3000, pid } }, 'the request in flight finished')
  const stopped = host.logs.lines.find((line) => line.worker === 'app' && line.pid === pid && line.to === 'STOPPED')
  assert.equal(stopped?.reason, 'process code 0', 'stopped by SIGTERM after the drain, not killed')
  await waitForExit(pid, 5000)
  assert.equal(isAlive(pid), false)

  const gone = await host.fetch('/app/')
  assert.equal(gone.statusCode, 404)
  await gone.body.dump()
  const report = host.app.tqserver.status()
  assert.deepEqual([report.workers.app!.status, report.workers.app!.instances], ['disabled', []])

  await writeFile(join(root, 'workers', 'app', 'worker.yaml'), 'enabled: true\n')
  assert.deepEqual((await host.app.tqserver.reload()).switched, ['app'])
  const back = await host.fetch('/app/')
  assert.equal(back.statusCode, 200)
  assert.notEqual((await back.body.json() as { pid: number }).pid, pid)
})
