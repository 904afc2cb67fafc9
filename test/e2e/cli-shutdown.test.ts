// Signals to `tqserver start`: SIGTERM drains in-flight requests, stops the workers and exits 0;
// SIGHUP does not stop the server; SIGKILL leaves no worker behind.
import { test } from 'node:test'
import { cp, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import assert from 'node:assert/strict'
import { startCliServer } from '../helpers/cli.js'
import { clientFor } from '../helpers/host.js'
import { PORTS } from '../helpers/ports.js'
import { REPO_ROOT, useProject } from '../helpers/project.js'
import { isAlive, until, waitForExit, within } from '../helpers/wait.js'

interface Health { workers: Record<string, { instances: Array<{ pid: number }> }> }

async function workerPids (fetch: ReturnType<typeof clientFor>): Promise<number[]> {
  const report = await (await fetch('/health')).body.json() as Health
  return Object.values(report.workers).flatMap((worker) => worker.instances.map((instance) => instance.pid))
}

test('SIGTERM lets in-flight requests finish, stops the workers and exits 0', async (t) => {
  const root = await useProject(t, 'sdk')
  const server = await startCliServer(t, 'start', root, PORTS.cliShutdown)
  const fetch = clientFor(t, server.url)
  const pids = await workerPids(fetch)
  assert.equal(pids.length, 1)
  const slow = fetch('/app/slow?ms=800')
  // Signal only once the host counts the request in flight.
  await until(5000, 'the slow request to be in flight', async () =>
    (await (await fetch('/health')).body.json() as { workers: { app: { instances: Array<{ inflight: number }> } } }).workers.app.instances[0]!.inflight > 0)
  server.child.kill('SIGTERM')
  await server.logs.waitFor((line) => line.msg === 'shutting down: draining workers', 5000, 'the shutdown to begin')

  const res = await slow
  assert.equal(res.statusCode, 200)
  assert.deepEqual(await res.body.json(), { slow: true, ms: 800 })
  assert.deepEqual(await within(15_000, 'the server to exit', server.exited), { code: 0, signal: null })
  for (const pid of pids) assert.equal(isAlive(pid), false, `worker ${pid} is gone`)
})

test('SIGHUP reloads instead of stopping the server', async (t) => {
  const root = await useProject(t, 'sdk')
  const server = await startCliServer(t, 'start', root, PORTS.cliShutdown)
  server.child.kill('SIGHUP')
  await server.logs.waitFor((line) => line.msg === 'reload finished' && line.trigger === 'SIGHUP', 5000, 'SIGHUP to reload')
  const res = await clientFor(t, server.url)('/app/')
  assert.equal(res.statusCode, 200)
  await res.body.dump()
})

test('a server killed with SIGKILL leaves no worker process behind, Node or not, a shell string too', async (t) => {
  const root = await useProject(t, 'routing')
  await cp(join(REPO_ROOT, 'workers', 'py'), join(root, 'workers', 'py'), { recursive: true })
  // The same program as a shell string: sh -c, then python3 as the shell's child.
  await cp(join(REPO_ROOT, 'workers', 'py'), join(root, 'workers', 'pysh'), { recursive: true })
  await writeFile(join(root, 'workers', 'pysh', 'worker.yaml'), 'command: python3 server.py\n')
  const server = await startCliServer(t, 'start', root, PORTS.cliShutdown)
  const fetch = clientFor(t, server.url)
  const pids = await workerPids(fetch)
  assert.equal(pids.length, 6)
  const programs = await Promise.all(['/py/', '/pysh/'].map(async (path) => (await (await fetch(path)).body.json() as { pid: number }).pid))
  server.child.kill('SIGKILL')
  await server.exited
  for (const pid of [...pids, ...programs]) await waitForExit(pid, 5000)
})
