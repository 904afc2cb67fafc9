// 200 restarts leave the host's file descriptors, port pool, per-upstream counters, worker
// processes and memory where they started. The host runs in this process (embedded), so its
// numbers are this process's. bench/leaks.ts runs 1000 against `tqserver start` and checks the same.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readdirSync } from 'node:fs'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { startHost } from '../helpers/host.js'
import { PORTS } from '../helpers/ports.js'
import { useProject } from '../helpers/project.js'
import { childPids } from '../helpers/wait.js'

const RESTARTS = 200
// A full collection before each look at memory, so that garbage not yet collected is not taken
// for a leak (RSS alone moves by tens of MB with the collector's timing).
setFlagsFromString('--expose-gc')
const collectGarbage = runInNewContext('gc') as () => void

test(`${RESTARTS} restarts leave file descriptors, ports, worker processes and memory where they were`, async (t) => {
  const root = await useProject(t, 'plain')
  const host = await startHost(t, { root, workerPorts: PORTS.noLeaks })
  const restart = async (times: number) => {
    for (let i = 0; i < times; i++) {
      await host.app.tqserver.restart('hello')
      await (await host.fetch('/hello/x')).body.dump()
    }
  }
  const measure = async () => {
    collectGarbage()
    const memory = process.memoryUsage()
    return {
      workerProcesses: childPids(process.pid).length,
      fds: readdirSync('/proc/self/fd').length,
      leasedPorts: host.app.tqserver.status().ports.leased,
      upstreamCounters: host.app.tqserver.routes.traffic.size,
      instances: host.app.tqserver.status().workers.hello!.instances.length,
      heapMb: (memory.heapUsed + memory.external) / 1048576,
      rssMb: memory.rss / 1048576
    }
  }
  await restart(20) // warm up: JIT, pools, buffers
  const before = await measure()
  await restart(RESTARTS)
  const after = await measure()
  t.diagnostic(`before ${JSON.stringify(before)} after ${JSON.stringify(after)}`)
  assert.deepEqual({ ...after, heapMb: 0, rssMb: 0 }, { ...before, heapMb: 0, rssMb: 0 })
  assert.ok(after.heapMb - before.heapMb < 5, `host heap grew by ${(after.heapMb - before.heapMb).toFixed(1)} MB`)
  // RSS follows the collector and the allocator; a leak of one buffer per restart would still show.
  assert.ok(after.rssMb - before.rssMb < 40, `host RSS grew by ${(after.rssMb - before.rssMb).toFixed(1)} MB`)
})
