// A worker that is down or drops the connection gives a clean 502 or 503 with a JSON body (an HTML
// page for a browser): never a bare 500, never a hang.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { startHost } from '../helpers/host.js'
import { PORTS } from '../helpers/ports.js'
import { useProject } from '../helpers/project.js'

test('a worker without a healthy instance answers 503, one that drops the connection 502, and a 503 is not retried', async (t) => {
  const root = await useProject(t, 'routing', {
    // A long restart delay holds the crashed worker down while the test looks.
    'config/server.yaml': 'restartDelay: 60000\n'
  })
  const host = await startHost(t, { root, workerPorts: PORTS.workerDown })

  const reset = await host.fetch('/api/reset')
  assert.equal(reset.statusCode, 502)
  const resetBody = await reset.body.json() as { code: string, message: string }
  assert.equal(resetBody.code, 'TQ_ERR_PROXY_BAD_GATEWAY')
  assert.match(resetBody.message, /^worker api could not be reached: /)

  const served = async () => (await (await host.fetch('/api/__served')).body.json() as { served: number }).served
  const before = await served()
  const unavailable = await host.fetch('/api/status?code=503')
  assert.equal(unavailable.statusCode, 503, "the worker's own 503 reaches the client")
  await unavailable.body.dump()
  assert.equal(await served(), before + 1, 'and the proxy did not retry it')

  const pid = host.app.tqserver.status().workers.api!.instances[0]!.pid!
  process.kill(pid, 'SIGKILL')
  await host.logs.waitFor((line) => line.worker === 'api' && line.to === 'BACKOFF', 5000, 'the killed worker to be seen as crashed')

  const down = await host.fetch('/api/anything')
  assert.equal(down.statusCode, 503)
  assert.deepEqual(await down.body.json(), {
    statusCode: 503, code: 'TQ_ERR_PROXY_UNAVAILABLE', error: 'Service Unavailable', message: 'worker api has no healthy instance'
  })
  const page = await host.fetch('/api/anything', { headers: { accept: 'text/html' } })
  assert.equal(page.statusCode, 503)
  assert.match(await page.body.text(), /<h1>503 Service Unavailable<\/h1>[\s\S]*worker api has no healthy instance/)

  const other = await host.fetch('/apix/still-up')
  assert.equal(other.statusCode, 200, 'the other workers keep serving')
  await other.body.dump()
  const health = host.app.tqserver.status()
  assert.equal(health.status, 'degraded')
  assert.equal(health.workers.api!.status, 'unhealthy')
})
