// GET /metrics: Prometheus text with tqserver_ names, counting what really happened (requests by
// status class, builds, switches, a crash and its restart), and the exposure rule of /health.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { startHost, type Host } from '../helpers/host.js'
import { PORTS } from '../helpers/ports.js'
import { useProject } from '../helpers/project.js'

async function scrape (host: Host): Promise<Map<string, number>> {
  const res = await host.fetch('/metrics')
  assert.equal(res.statusCode, 200)
  assert.match(String(res.headers['content-type']), /^text\/plain; version=0\.0\.4/)
  const samples = new Map<string, number>()
  for (const line of (await res.body.text()).split('\n')) {
    if (line === '' || line.startsWith('#')) continue
    const space = line.lastIndexOf(' ')
    samples.set(line.slice(0, space), Number(line.slice(space + 1)))
  }
  return samples
}

test('/metrics counts requests, builds, switches and restarts, for loopback or the token only; the access log', async (t) => {
  const root = await useProject(t, 'health')
  const host = await startHost(t, { root, workerPorts: PORTS.metrics, health: { interval: 10_000, timeout: 2_000, fall: 3, rise: 2, grace: 30_000, token: 's3cret' }, restartDelay: 50, accessLog: true })

  for (let i = 0; i < 3; i++) await (await host.fetch('/steady/hello')).body.dump()
  let samples = await scrape(host)
  assert.equal(samples.get('tqserver_requests_total{worker="steady",status_class="2xx"}'), 3)
  assert.equal(samples.get('tqserver_request_duration_seconds_count{worker="steady"}'), 3)
  assert.equal(samples.get('tqserver_request_duration_seconds_bucket{le="+Inf",worker="steady"}'), 3)
  assert.equal(samples.get('tqserver_requests_in_flight{worker="steady"}'), 0)
  const access = host.logs.lines.filter((line) => line.msg === 'request')
  assert.deepEqual(access.map(({ worker, method, url, statusCode }) => [worker, method, url, statusCode]), Array(3).fill(['steady', 'GET', '/steady/hello', 200]))
  assert.equal(typeof access[0]!.durationMs, 'number')
  assert.equal(samples.get('tqserver_instances{worker="steady",state="HEALTHY"}'), 1)
  assert.equal(samples.get('tqserver_worker_up{worker="toggle"}'), 1)
  assert.equal(samples.get('tqserver_builds_total{worker="steady",result="ok"}'), 1)
  assert.equal(samples.get('tqserver_switches_total{worker="steady",outcome="switched"}'), 1)
  assert.ok(samples.get('tqserver_process_resident_memory_bytes')! > 10_000_000, 'the host process metrics are there too')
  for (const name of samples.keys()) assert.match(name, /^tqserver_/)

  const steady = host.app.tqserver.status().workers.steady!.instances[0]!
  const restarted = host.logs.next((line) => line.worker === 'steady' && line.to === 'HEALTHY', 5000, 'steady restarted')
  process.kill(steady.pid!, 'SIGKILL')
  await restarted
  samples = await scrape(host)
  assert.equal(samples.get('tqserver_restarts_total{worker="steady"}'), 1)
  assert.equal(samples.get('tqserver_requests_total{worker="steady",status_class="2xx"}'), 3, 'counters survive the instance')

  // Relayed by a proxy on this machine: not local, so the token is needed.
  const relayed = await host.fetch('/metrics', { headers: { 'x-forwarded-for': '203.0.113.9' } })
  assert.equal(relayed.statusCode, 403)
  assert.doesNotMatch(await relayed.body.text(), /tqserver_/)
  const withToken = await host.fetch('/metrics', { headers: { 'x-forwarded-for': '203.0.113.9', authorization: 'Bearer s3cret' } })
  assert.equal(withToken.statusCode, 200)
  assert.match(await withToken.body.text(), /^tqserver_requests_total\{worker="steady",status_class="2xx"\} 3$/m)
})
