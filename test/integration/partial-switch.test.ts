// A switch of a worker with two instances whose second new instance fails to start, after the
// first new one has taken its place: no request fails, the failure is reported, the failed
// process is gone, and two instances keep serving (the new one beside an old one) until a later
// reload completes the switch.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { startHost } from '../helpers/host.js'
import { PORTS } from '../helpers/ports.js'
import { useProject } from '../helpers/project.js'
import { startTraffic } from '../helpers/traffic.js'
import { isAlive } from '../helpers/wait.js'
import { defer } from '../helpers/cleanup.js'

/**
 * While private/only-once exists, version 2 starts only once: its first process leaves a mark, and
 * later ones crash at boot.
 */
const PAIR = `import { existsSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:http'

const version = Number(process.env.VERSION)
if (version === 2 && existsSync('private/only-once')) {
  if (existsSync('private/v2-started')) {
    console.error('version 2 already started once')
    process.exit(1)
  }
  writeFileSync('private/v2-started', String(process.pid))
}
createServer((req, res) => {
  if (req.url === '/health') return res.end('ok')
  res.setHeader('content-type', 'application/json')
  res.end(JSON.stringify({ version, pid: process.pid }))
}).listen(Number(process.env.PORT), process.env.HOST, () => process.send?.({ type: 'ready' }))
`
const settings = (version: number) => `instances: 2\nenv:\n  VERSION: "${version}"\n`

test('instances: 2, the second new instance fails after the first has switched', async (t) => {
  const root = await useProject(t, undefined, {
    'workers/pair/src/main.ts': PAIR,
    'workers/pair/worker.yaml': settings(1),
    'workers/pair/private/only-once': ''
  })
  const host = await startHost(t, { root, workerPorts: PORTS.partialSwitch })
  const instances = () => host.app.tqserver.status().workers.pair!.instances
  const [old1, old2] = instances().map((instance) => instance.pid)

  const traffic = startTraffic(host.url, '/pair/', 4)
  defer(t, () => traffic.stop())
  await traffic.answered(20, 5000)
  await writeFile(join(root, 'workers', 'pair', 'worker.yaml'), settings(2))
  const summary = await host.app.tqserver.reload()
  await traffic.answered(20, 5000)
  const result = await traffic.stop()

  assert.deepEqual(summary.failed, [{ worker: 'pair', reason: 'the new version failed to start' }])
  assert.deepEqual(result.errors, [], 'no transport error')
  assert.deepEqual(Object.keys(result.statuses), ['200'], 'every request answered 200')

  // The first new instance took the first old one's place; the second old one still serves.
  const lines = host.logs.lines.filter((line) => line.msg === 'worker state changed' && line.worker === 'pair')
  const firstNew = lines.find((line) => line.to === 'HEALTHY' && line.pid !== old1 && line.pid !== old2)!
  const failed = lines.find((line) => line.to === 'CRASHED')!
  assert.ok(lines.indexOf(firstNew) < lines.findIndex((line) => line.pid === old1 && line.to === 'DRAINING'), 'the first new instance served before the first old one drained')
  assert.ok(lines.indexOf(firstNew) < lines.indexOf(failed), 'the second new instance failed after the first had switched')
  assert.deepEqual(lines.filter((line) => line.pid === failed.pid).map((line) => `${String(line.from)}>${String(line.to)}`), ['STARTING>CRASHED', 'CRASHED>STOPPED'], 'it crashed at boot and was stopped, not restarted')
  assert.equal(isAlive(failed.pid as number), false, 'the failed process is gone')
  assert.equal(isAlive(old1!), false, 'the replaced old instance is gone')

  const now = instances()
  assert.deepEqual(now.map((instance) => instance.state), ['HEALTHY', 'HEALTHY'])
  assert.deepEqual(new Set(now.map((instance) => instance.pid)), new Set([firstNew.pid, old2]))
  const report = host.app.tqserver.status().workers.pair!
  assert.equal(report.status, 'healthy')
  assert.match(report.lastError!.message, /exited during start-up with code 1; its last output:\nversion 2 already started once/)

  // Once version 2 can start again, a reload completes the switch.
  await rm(join(root, 'workers', 'pair', 'private', 'only-once'))
  const retried = await host.app.tqserver.reload()
  assert.deepEqual([retried.switched, retried.failed], [['pair'], []])
  const after = instances()
  assert.equal(after.length, 2)
  for (const { pid } of after) {
    assert.ok(![old1, old2, firstNew.pid].includes(pid), 'both instances are new')
  }
  assert.equal(isAlive(old2!), false)
})
