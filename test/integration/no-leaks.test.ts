// 200 restarts leave the host's file descriptors, port pool, per-upstream counters and memory
// where they started (bench/leaks.ts runs 1000 and reports the figures).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readdirSync } from 'node:fs'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { startHost } from '../helpers/host.js'
import { PORTS } from '../helpers/ports.js'
import { useProject } from '../helpers/project.js'

const RESTARTS = 200
// A full collection before each look at memory, so that garbage not yet collected is not taken
// for a leak (RSS alone moves by tens of MB with the collector's timing).
setFlagsFromString('--expose-gc')
const collectGarbage = runInNewContext('gc') as () => void

test(`${RESTARTS} restarts leave file descriptors, ports and memory where they were`, async (t) => {
  const root = await useProject(t, 'plain')
  const host = await startHost(t, { root, workerPorts: PORTS.noLeaks })
  const restart = async (times: number) => {
    for (let i = 0; i < times; i++) {
      await host.app.tqserver.restart('hello')
      await (await host.fetch('/hello/x')).body.dump()
    }
  }
  const measure = () => {
    collectGarbage()
    const memory = process.memoryUsage()
    return {
      fds: readdirSync('/proc/self/fd').length,
      leasedPorts: host.app.tqserver.status().ports.leased,
      upstreamCounters: host.app.tqserver.routes.traffic.size,
      instances: host.app.tqserver.status().workers.hello!.instances.length,
      heapMb: (memory.heapUsed + memory.external) / 1048576,
      rssMb: memory.rss / 1048576
    }
  }
  await restart(20) // warm up: JIT, pools, buffers
  const before = measure()
  await restart(RESTARTS)
  const after = measure()
  t.diagnostic(`before ${JSON.stringify(before)} after ${JSON.stringify(after)}`)
  assert.deepEqual({ ...after, heapMb: 0, rssMb: 0 }, { ...before, heapMb: 0, rssMb: 0 })
  assert.ok(after.heapMb - before.heapMb < 5, `host heap grew by ${(after.heapMb - before.heapMb).toFixed(1)} MB`)
})
