// Active and passive health checks, the /health report and its codes, and who may see details.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { startHost, type Host } from '../helpers/host.js'
import type { LogLine } from '../helpers/logs.js'
import { PORTS } from '../helpers/ports.js'
import { useProject } from '../helpers/project.js'

const FAST_CHECKS = { interval: 100, timeout: 2000, fall: 3, rise: 2, grace: 60_000, token: 's3cret' }

interface Report {
  status: string
  workers: Record<string, {
    status: string
    state: string
    instances: Array<Record<string, unknown> & { pid: number, state: string, restarts: number }>
    output: Array<{ text: string }>
  }>
  events: Array<{ type: string, worker: string | null }>
}

const transitionOf = (worker: string, to: string) => (line: LogLine) => line.worker === worker && line.to === to
async function report (host: Host, headers: Record<string, string> = {}): Promise<{ code: number, body: Report }> {
  const res = await host.fetch('/health', { headers })
  return { code: res.statusCode, body: await res.body.json() as Report }
}

test('health checks and the /health report', async (t) => {
  const root = await useProject(t, 'health')
  const host = await startHost(t, { root, workerPorts: PORTS.healthChecks, health: FAST_CHECKS, restartDelay: 300 })

  await t.test('reports every instance with its numbers', async () => {
    await (await host.fetch('/steady/hello')).body.dump()
    // CPU use is the difference between two samples, taken with two probes.
    await host.logs.waitForCount((line) => line.msg === 'health check passed' && line.worker === 'steady', 2, 5000, 'two probes of steady')
    const { code, body } = await report(host)
    assert.equal(code, 200)
    assert.equal(body.status, 'healthy')
    const instance = body.workers.steady!.instances[0]!
    for (const key of ['pid', 'port', 'state', 'since', 'restarts', 'uptimeMs', 'rssBytes', 'cpuPercent', 'requests', 'errors', 'inflight', 'latencyMs', 'build', 'lastCheck']) {
      assert.ok(key in instance, `instance report has ${key}`)
    }
    assert.equal(instance.state, 'HEALTHY')
    assert.ok(Number(instance.rssBytes) > 10_000_000, 'RSS is read from the process')
    assert.equal(typeof instance.cpuPercent, 'number')
    assert.equal(instance.requests, 1)
    assert.ok((instance.latencyMs as { p50: number }).p50 >= 0)
    assert.deepEqual(body.workers.steady!.output.map((line) => line.text), ['steady served GET /hello'])
    assert.deepEqual(body.events.filter((e) => e.type === 'started').map((e) => e.worker).sort(), ['steady', 'toggle'])
  })

  await t.test('an instance whose /health fails is UNHEALTHY after `fall` probes and HEALTHY again after `rise`', async () => {
    const unhealthy = host.logs.next(transitionOf('toggle', 'UNHEALTHY'), 5000, 'toggle to become UNHEALTHY')
    await (await host.fetch('/toggle/toggle', { method: 'POST' })).body.dump()
    assert.equal((await unhealthy).reason, '3 health checks failed: GET /health answered 503')
    const failedProbes = host.logs.count((line) => line.msg === 'health check failed' && line.worker === 'toggle')
    assert.equal(failedProbes, 3)
    const { code, body } = await report(host)
    assert.deepEqual([code, body.status, body.workers.toggle!.status, body.workers.toggle!.state], [200, 'degraded', 'unhealthy', 'UNHEALTHY'])
    assert.equal((await host.fetch('/readyz')).statusCode, 200, 'the host still serves steady')

    // With no healthy instance left, the unhealthy one still gets the requests.
    const healthy = host.logs.next(transitionOf('toggle', 'HEALTHY'), 5000, 'toggle to recover')
    await (await host.fetch('/toggle/toggle', { method: 'POST' })).body.dump()
    assert.equal((await healthy).reason, '2 health checks passed')
    assert.equal((await report(host)).body.status, 'healthy')
    assert.ok((await report(host)).body.events.some((e) => e.type === 'recovered' && e.worker === 'toggle'))
  })

  await t.test('a killed worker shows as crashed, then serves again with a restart counted', async () => {
    const pid = (await report(host)).body.workers.steady!.instances[0]!.pid
    const backoff = host.logs.next(transitionOf('steady', 'BACKOFF'), 5000, 'steady to back off')
    process.kill(pid, 'SIGKILL')
    await backoff
    const down = await report(host)
    assert.deepEqual([down.body.status, down.body.workers.steady!.state], ['degraded', 'BACKOFF'])
    await host.logs.next(transitionOf('steady', 'HEALTHY'), 5000, 'steady to come back')
    const up = (await report(host)).body.workers.steady!.instances[0]!
    assert.deepEqual([up.state, up.restarts], ['HEALTHY', 1])
    assert.notEqual(up.pid, pid)
  })

  await t.test('details only for loopback or the token; the status for everyone', async () => {
    const relayed = { 'x-forwarded-for': '203.0.113.9' }
    assert.deepEqual((await report(host, relayed)).body, { status: 'healthy' })
    assert.deepEqual((await report(host, { ...relayed, authorization: 'Bearer wrong' })).body, { status: 'healthy' })
    assert.ok('workers' in (await report(host, { ...relayed, authorization: 'Bearer s3cret' })).body)
    const viaQuery = await host.fetch('/health?token=s3cret', { headers: relayed })
    assert.ok('workers' in (await viaQuery.body.json() as object))
    const stream = await host.fetch('/__tqserver/health/stream', { headers: relayed })
    assert.equal(stream.statusCode, 403)
    await stream.body.dump()
    const text = JSON.stringify((await report(host)).body)
    assert.ok(!text.includes('PATH') && !text.includes(process.env.HOME ?? '/root'), 'no environment values in the report')
  })
})

test('no worker healthy: /health and /readyz answer 503; an instance unhealthy past the grace period is replaced', async (t) => {
  const root = await useProject(t, 'health', { 'workers/steady/worker.yaml': 'enabled: false\n' })
  const host = await startHost(t, { root, workerPorts: PORTS.healthChecks, health: { ...FAST_CHECKS, grace: 600 } })
  const before = (await report(host)).body.workers.toggle!.instances[0]!.pid
  const unhealthy = host.logs.next(transitionOf('toggle', 'UNHEALTHY'), 5000, 'toggle to become UNHEALTHY')
  await (await host.fetch('/toggle/toggle', { method: 'POST' })).body.dump()
  await unhealthy
  const { code, body } = await report(host)
  assert.deepEqual([code, body.status, body.workers.steady!.status], [503, 'unhealthy', 'disabled'])
  assert.equal((await host.fetch('/readyz')).statusCode, 503)

  const replaced = await host.logs.next((line) => line.worker === 'toggle' && line.msg === 'worker switched', 10_000, 'the unhealthy instance to be replaced')
  assert.equal(replaced.reason, 'unhealthy for too long')
  const after = (await report(host)).body
  assert.equal(after.status, 'healthy')
  assert.notEqual(after.workers.toggle!.instances[0]!.pid, before)
  assert.ok(after.events.some((e) => e.type === 'replaced'))
})

test('a request that cannot reach an instance makes it suspect: one failed probe then takes it out', async (t) => {
  // Active checks far apart, so that only the suspect probe can see the failure; fall: 3 would
  // need three of them.
  const root = await useProject(t, 'health')
  const host = await startHost(t, { root, workerPorts: PORTS.healthChecks, health: { ...FAST_CHECKS, interval: 600_000 } })
  await (await host.fetch('/toggle/toggle', { method: 'POST' })).body.dump()
  const unhealthy = host.logs.next(transitionOf('toggle', 'UNHEALTHY'), 5000, 'toggle to be taken out after one probe')
  const res = await host.fetch('/toggle/reset')
  assert.equal(res.statusCode, 502)
  await res.body.dump()
  assert.match(String((await unhealthy).reason), /^a request failed and the health check too: GET \/health answered 503$/)
  assert.equal((await report(host)).body.workers.toggle!.instances[0]!.state, 'UNHEALTHY')
})
