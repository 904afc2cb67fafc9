// kill -9 of a worker under load: clients see only clean 502/503 answers during the gap (never a
// reset or a hang), and a new instance takes over.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { startHost } from '../helpers/host.js'
import { PORTS } from '../helpers/ports.js'
import { useProject } from '../helpers/project.js'
import { startTraffic } from '../helpers/traffic.js'
import { within } from '../helpers/wait.js'
import { defer } from '../helpers/cleanup.js'

test('a worker killed under load gives clean 502/503 answers and is replaced', async (t) => {
  const root = await useProject(t, 'routing')
  const host = await startHost(t, { root, workerPorts: PORTS.crashUnderLoad })
  const traffic = startTraffic(host.url, '/api/slow?ms=5', 8)
  defer(t, () => traffic.stop())
  const pid = host.app.tqserver.status().workers.api!.instances[0]!.pid!
  await traffic.answered(50, 5000)

  const healthyAgain = host.logs.next((line) => line.worker === 'api' && line.to === 'HEALTHY', 10_000, 'api to restart')
  process.kill(pid, 'SIGKILL')
  await within(10_000, 'a new instance serving after the kill', healthyAgain)
  await traffic.answered(1, 5000, (answeredBy) => answeredBy !== pid)
  const result = await traffic.stop()
  t.diagnostic(`answers by status: ${JSON.stringify(result.statuses)}`)
  assert.deepEqual(result.errors, [], 'no reset, no hang')
  assert.deepEqual(Object.keys(result.statuses).filter((status) => !['200', '502', '503'].includes(status)), [])
  assert.ok((result.statuses[200] ?? 0) > 0)
  assert.equal(result.pids.size, 2, 'answers came from the killed instance and from its replacement')
})
