// Stopping a command that ignores SIGTERM leaves nothing behind: killTimeout's SIGKILL reaches the
// program's own process group, not only the shim's.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { startCliServer } from '../helpers/cli.js'
import { clientFor } from '../helpers/host.js'
import { PORTS } from '../helpers/ports.js'
import { groupsLedBelow, killLeftoverGroups, liveMembers } from '../helpers/process-groups.js'
import { useProject } from '../helpers/project.js'
import { until, within } from '../helpers/wait.js'
import { isPortFree } from '../../src/process/port-pool.js'

interface Health { workers: Record<string, { status: string, instances: Array<{ pid: number, port: number }> }> }

/** Long enough for a loaded machine; the reaper acts as soon as the host is gone. */
const GONE_WITHIN_MS = 5000

async function healthOf (fetch: ReturnType<typeof clientFor>): Promise<Health> {
  return await (await fetch('/health')).body.json() as Health
}

async function expectGone (groups: Set<number>, ports: number[]): Promise<void> {
  await until(GONE_WITHIN_MS, 'every process of the workers\' groups to be gone', () => liveMembers(groups).length === 0)
    .catch((err: Error) => { throw new Error(`${err.message}; still running: ${liveMembers(groups).join(', ')}`) })
  await until(GONE_WITHIN_MS, `the worker ports ${ports.join(', ')} to be free`, async () =>
    (await Promise.all(ports.map((port) => isPortFree(port, '127.0.0.1')))).every(Boolean))
}

test('a command worker that ignores SIGTERM is killed with everything it started after killTimeout', async (t) => {
  const root = await useProject(t, 'command-ignores-sigterm', { 'config/server.yaml': 'killTimeout: 500\n' })
  const server = await startCliServer(t, 'start', root, PORTS.hostKilled)
  const groups = new Set<number>()
  killLeftoverGroups(t, server, groups)
  const fetch = clientFor(t, server.url)
  const health = await until(15_000, 'the worker to be healthy', async () => {
    const report = await healthOf(fetch)
    return report.workers.stubborn?.status === 'healthy' && report
  })
  const ports = health.workers.stubborn!.instances.map((instance) => instance.port)
  for (const group of groupsLedBelow(server.child.pid!)) groups.add(group)
  // The shim's group and the program's.
  assert.ok(groups.size >= 2, `groups led below the host: ${[...groups].join(', ')}`)

  server.child.kill('SIGTERM')
  assert.deepEqual(await within(15_000, 'the host to exit', server.exited), { code: 0, signal: null })
  await expectGone(groups, ports)
})
