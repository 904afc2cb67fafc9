// The port pool: ports in turn around the range, a port held by another program skipped, and an
// exhausted pool reported at once.
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { createServer, type Server } from 'node:net'
import { once } from 'node:events'
import { PortPool } from '../../src/process/port-pool.js'
import { PORTS } from '../helpers/ports.js'
import { parsePortRange } from '../../src/config/server-config.js'
import { defer } from '../helpers/cleanup.js'

const { from } = parsePortRange(PORTS.portPool)
const range = (size: number) => ({ from, to: from + size - 1 })

async function squat (t: TestContext, port: number): Promise<Server> {
  const server = createServer()
  server.listen(port, '127.0.0.1')
  await once(server, 'listening')
  defer(t, () => server.close())
  return server
}

test('hands out ports in turn and does not reuse a released port at once', async () => {
  const pool = new PortPool(range(3), '127.0.0.1')
  const a = await pool.acquire()
  const b = await pool.acquire()
  pool.release(a)
  const c = await pool.acquire()
  assert.deepEqual([a, b, c], [from, from + 1, from + 2])
  assert.equal(await pool.acquire(), from, 'the released port comes back only after going round the range')
  assert.equal(pool.leased, 3)
})

test('skips a port that another program holds', async (t) => {
  await squat(t, from)
  const pool = new PortPool(range(3), '127.0.0.1')
  assert.equal(await pool.acquire(), from + 1)
})

test('an exhausted pool is an error that says why, never a wait', async (t) => {
  await squat(t, from + 1)
  const pool = new PortPool(range(2), '127.0.0.1')
  await pool.acquire()
  await assert.rejects(pool.acquire(), {
    code: 'TQ_ERR_PORT_POOL_EXHAUSTED',
    message: `no free port in ${from}-${from + 1}: 1 leased to workers, 1 held by other programs`
  })
})

test('concurrent acquires never share a port', async () => {
  const pool = new PortPool(range(20), '127.0.0.1')
  const ports = await Promise.all(Array.from({ length: 20 }, () => pool.acquire()))
  assert.equal(new Set(ports).size, 20)
})
