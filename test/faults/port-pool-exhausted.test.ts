// More workers than worker ports: the one that gets no port is reported as such, not as a crash of
// its own, the other serves, and /readyz stays 200.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { cp } from 'node:fs/promises'
import { join } from 'node:path'
import { startHost } from '../helpers/host.js'
import { PORTS } from '../helpers/ports.js'
import { useProject } from '../helpers/project.js'

test('a worker left without a port ends FAILED saying the pool is exhausted; the other serves', async (t) => {
  const root = await useProject(t, 'plain', { 'config/server.yaml': 'restartDelay: 50\ncrashLimit: 2\nfailedRetryDelay: 0\n' })
  await cp(join(root, 'workers', 'hello'), join(root, 'workers', 'zz-hello'), { recursive: true })
  const host = await startHost(t, { root, workerPorts: PORTS.poolExhausted })
  const failed = await host.logs.waitFor((line) => line.to === 'FAILED', 10_000, 'the worker without a port to end FAILED')
  assert.match(String(failed.reason), new RegExp(`^crashed 2 times within \\d+ ms; the last: no free port in ${PORTS.poolExhausted}: 1 leased to workers`))
  const report = host.app.tqserver.status()
  const serving = Object.entries(report.workers).filter(([, worker]) => worker.status === 'healthy').map(([name]) => name)
  assert.equal(serving.length, 1, 'one worker got the port and serves')
  const res = await host.fetch(`/${serving[0]}/x`)
  assert.equal(res.statusCode, 200)
  await res.body.dump()
  // One FAILED worker does not take the host out of a load balancer.
  const ready = await host.fetch('/readyz')
  assert.deepEqual([ready.statusCode, await ready.body.json()], [200, { status: 'ready' }])
  assert.equal(report.status, 'degraded')
})
