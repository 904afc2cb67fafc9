// Connection hand-off (handoff: true): SDK workers serve client connections directly, requests
// for other routes or public/ files on such a connection still get the right answer, the host's
// own paths still work, and a reload under keep-alive load fails no request.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { cp, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { Agent } from 'undici'
import { runCliToEnd, startCliServer } from '../helpers/cli.js'
import { startLoad } from '../helpers/load.js'
import { PORTS } from '../helpers/ports.js'
import { FIXTURES, useProject } from '../helpers/project.js'
import { defer } from '../helpers/cleanup.js'
import { waitForExit } from '../helpers/wait.js'

interface Health { workers: Record<string, { instances: Array<{ pid: number, requests: number }> }> }

test('connection hand-off', async (t) => {
  const root = await useProject(t, 'versioned', {
    'config/server.yaml': 'handoff: true\n',
    'workers/app/public/file.txt': 'a public file\n'
  })
  await cp(join(FIXTURES, 'plain', 'workers', 'hello'), join(root, 'workers', 'hello'), { recursive: true })
  assert.equal((await runCliToEnd(t, ['build'], { cwd: root })).code, 0)
  const server = await startCliServer(t, 'start', root, PORTS.handoff)
  // One connection, kept alive: every request below travels on it.
  const agent = new Agent({ connections: 1, pipelining: 1 })
  defer(t, () => agent.close())
  const get = async (path: string, init: { method?: 'GET' | 'POST', body?: string } = {}) => {
    const res = await agent.request({ origin: server.url, path, method: init.method ?? 'GET', body: init.body, headers: init.body ? { 'content-type': 'application/json' } : {} })
    return { status: res.statusCode, text: await res.body.text() }
  }
  const health = async () => JSON.parse((await get('/health')).text) as Health

  await t.test('an SDK worker serves the connection itself, with its prefix removed', async () => {
    const answer = JSON.parse((await get('/app/env/TQ_WORKER_ROUTE')).text) as { value: string }
    assert.equal(answer.value, '/app')
    const echoed = JSON.parse((await get('/app/echo', { method: 'POST', body: '{"a":1}' })).text) as { echo: unknown }
    assert.deepEqual(echoed.echo, { a: 1 })
    assert.equal((await health()).workers.app!.instances[0]!.requests, 0, 'the host proxied none of them')
  })

  await t.test('on the same connection: another worker, a public file, the host itself', async () => {
    assert.equal(JSON.parse((await get('/hello/x')).text).plain, true)
    assert.equal((await get('/app/file.txt')).text, 'a public file\n')
    assert.equal((await get('/livez')).status, 200)
    assert.equal(JSON.parse((await get('/app/version')).text).version, 0)
  })

  await t.test('a reload under keep-alive load fails no request, and handed-off connections leave the old instance', async () => {
    const before = (await health()).workers.app!.instances[0]!.pid
    const load = startLoad(server.url, '/app', 8)
    defer(t, () => load.stop())
    await load.reached(0, 5000)
    await writeFile(join(root, 'workers', 'app', 'src', 'version.ts'), 'export const VERSION = 1\n')
    assert.equal((await runCliToEnd(t, ['build', 'app'], { cwd: root })).code, 0)
    const reload = await runCliToEnd(t, ['reload'], { cwd: root })
    assert.match(reload.stdout, /switched app/)
    await load.reached(1, 10_000)
    const { ok, failures } = await load.stop()
    assert.deepEqual(failures, [])
    assert.ok(ok > 0)
    assert.notEqual((await health()).workers.app!.instances[0]!.pid, before)
    // The drain ended because the old instance's connections closed, not at drainTimeout (10 s).
    assert.equal(server.logs.count((line) => line.msg === 'drain timed out; stopping with requests in flight'), 0)
    await waitForExit(before, 5000)
  })
})
