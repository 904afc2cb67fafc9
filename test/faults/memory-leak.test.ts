// A worker that leaks memory past maxMemoryMb under load: it is replaced at the next health check,
// through the switch, so no request fails.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { defer } from '../helpers/cleanup.js'
import { startHost } from '../helpers/host.js'
import { PORTS } from '../helpers/ports.js'
import { useProject } from '../helpers/project.js'
import { startTraffic } from '../helpers/traffic.js'

test('maxMemoryMb: an instance that grows past it under load is replaced at the next health check, no request failing', async (t) => {
  const root = await useProject(t, 'routing', { 'workers/api/worker.yaml': 'entry: ../../shared/echo.ts\nmaxMemoryMb: 120\n' })
  const host = await startHost(t, { root, workerPorts: PORTS.memoryLeak, health: { interval: 100, timeout: 1000, fall: 3, rise: 2, grace: 30_000, token: '' } })
  const first = host.app.tqserver.status().workers.api!.instances[0]!.pid!
  const traffic = startTraffic(host.url, '/api/slow?ms=5', 4)
  defer(t, () => traffic.stop())
  const replaced = host.logs.next((line) => line.worker === 'api' && line.msg === 'worker switched', 10_000, 'the instance to be recycled')
  await (await host.fetch('/api/grow?mb=150')).body.dump()
  assert.equal((await replaced).reason, 'uses more than 120 MB')
  await traffic.answered(1, 5000, (pid) => pid !== first)
  const result = await traffic.stop()
  assert.deepEqual(result.errors, [])
  assert.deepEqual(Object.keys(result.statuses), ['200'])
})
