// The worker contract needs no SDK: a plain node:http program is started, found ready, routed to
// and stopped like any other.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { startHost } from '../helpers/host.js'
import { PORTS } from '../helpers/ports.js'
import { useProject } from '../helpers/project.js'
import { isAlive, waitForExit } from '../helpers/wait.js'

test('a worker written with plain node:http is served and stopped like an SDK worker', async (t) => {
  const root = await useProject(t, 'plain')
  const host = await startHost(t, { root, workerPorts: PORTS.plainWorker })
  const res = await host.fetch('/hello/there?x=1')
  assert.equal(res.statusCode, 200)
  const body = await res.body.json() as { plain: boolean, url: string, pid: number }
  assert.deepEqual([body.plain, body.url], [true, '/there?x=1'])
  assert.ok(isAlive(body.pid))

  await host.app.close()
  await waitForExit(body.pid, 10_000)
  assert.deepEqual(host.logs.transitions('hello'), ['STOPPED>STARTING', 'STARTING>HEALTHY', 'HEALTHY>DRAINING', 'DRAINING>STOPPED'])
})
