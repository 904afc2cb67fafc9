// instances: N: requests are spread over the healthy instances, a reload replaces them one at a
// time without a failed request, and a crashed instance only leaves the rotation.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { startHost } from '../helpers/host.js'
import { PORTS } from '../helpers/ports.js'
import { useProject } from '../helpers/project.js'
import { startTraffic } from '../helpers/traffic.js'

test('a worker with two instances', async (t) => {
  const root = await useProject(t, 'routing', {
    'workers/api/worker.yaml': 'entry: ../../shared/echo.ts\ninstances: 2\n',
    'config/server.yaml': 'restartDelay: 60000\n'
  })
  const host = await startHost(t, { root, workerPorts: PORTS.instances })
  const pids = () => host.app.tqserver.status().workers.api!.instances.map((instance) => instance.pid)

  await t.test('spreads requests over both instances', async () => {
    const traffic = startTraffic(host.url, '/api/slow?ms=20', 4)
    await traffic.answered(40, 5000)
    const result = await traffic.stop()
    assert.deepEqual([...result.pids].sort(), [...pids()].sort())
  })

  await t.test('a restart under load replaces them one at a time, with no failed request', async () => {
    const before = pids()
    const traffic = startTraffic(host.url, '/api/slow?ms=5', 8)
    await host.app.tqserver.restart('api')
    const result = await traffic.stop()
    assert.deepEqual(result.errors, [])
    assert.deepEqual(Object.keys(result.statuses), ['200'])
    const after = pids()
    assert.equal(after.length, 2)
    assert.ok(after.every((pid) => !before.includes(pid)), 'both instances are new')
    const moves = host.logs.transitions('api')
    const firstRetired = moves.indexOf('HEALTHY>DRAINING')
    assert.ok(moves.lastIndexOf('STOPPED>STARTING') > firstRetired, 'the second new instance started after the first old one left')
  })

  await t.test('a crashed instance leaves the rotation; the other keeps serving', async () => {
    const [gone, kept] = pids()
    const crashed = host.logs.next((line) => line.worker === 'api' && line.to === 'CRASHED', 5000, 'the crash to be seen')
    process.kill(gone!, 'SIGKILL')
    await crashed
    const traffic = startTraffic(host.url, '/api/x', 4)
    await traffic.answered(40, 5000)
    const result = await traffic.stop()
    assert.deepEqual(result.errors, [])
    assert.deepEqual(Object.keys(result.statuses), ['200'])
    assert.deepEqual([...result.pids], [kept])
    assert.equal(host.app.tqserver.status().workers.api!.status, 'healthy')
  })
})
