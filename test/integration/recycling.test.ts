// maxRequests replaces an instance with the switch (maxMemoryMb: test/faults/memory-leak): a fresh one takes over, the old
// one finishes what it has, and no request fails.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { startHost } from '../helpers/host.js'
import { PORTS } from '../helpers/ports.js'
import { useProject } from '../helpers/project.js'
import { startTraffic } from '../helpers/traffic.js'
import { defer } from '../helpers/cleanup.js'

test('maxRequests: an instance is replaced after serving that many requests', async (t) => {
  const root = await useProject(t, 'routing', { 'workers/api/worker.yaml': 'entry: ../../shared/echo.ts\nmaxRequests: 50\n' })
  const host = await startHost(t, { root, workerPorts: PORTS.recycling })
  const first = host.app.tqserver.status().workers.api!.instances[0]!.pid!
  const replaced = host.logs.next((line) => line.worker === 'api' && line.msg === 'worker switched', 10_000, 'the instance to be recycled')
  const traffic = startTraffic(host.url, '/api/slow?ms=2', 4)
  defer(t, () => traffic.stop())
  assert.equal((await replaced).reason, 'served its maxRequests')
  await traffic.answered(1, 5000, (pid) => pid !== first)
  const result = await traffic.stop()
  assert.deepEqual(result.errors, [])
  assert.deepEqual(Object.keys(result.statuses), ['200'])
  assert.ok(host.app.tqserver.status().events.some((event) => event.type === 'replaced' && event.message.includes('maxRequests')))
})
