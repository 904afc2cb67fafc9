// Signals to `tqserver start`, beyond plain SIGTERM (cli-shutdown.test.ts): SIGINT is a SIGTERM, a
// second signal during the drain exits at once, /readyz never says ready once the shutdown has
// begun, and a request that outlives drainTimeout does not hold the shutdown.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { request } from 'undici'
import { startCliServer } from '../helpers/cli.js'
import { clientFor } from '../helpers/host.js'
import type { LogLine } from '../helpers/logs.js'
import { PORTS } from '../helpers/ports.js'
import { useProject } from '../helpers/project.js'
import { until, waitForExit, within } from '../helpers/wait.js'

/**
 * Node's timers count from the event loop's clock, read at the start of a loop turn, so a timer
 * may fire a few ms before its delay has passed by the wall clock that log times use.
 */
const TIMER_SLACK_MS = 50

interface Health { workers: { app: { instances: Array<{ pid: number, inflight: number }> } } }

/** Starts `tqserver start` on the sdk fixture; `settings` is its config/server.yaml. */
async function startServer (t: Parameters<typeof useProject>[0], settings = '') {
  const root = await useProject(t, 'sdk', settings ? { 'config/server.yaml': settings } : {})
  const server = await startCliServer(t, 'start', root, PORTS.shutdownSignals)
  const fetch = clientFor(t, server.url)
  const health = async () => await (await fetch('/health')).body.json() as Health
  const worker = (await health()).workers.app.instances[0]!.pid
  /** Sends GET /app/slow?ms=N and resolves once the host counts it in flight; `answer` settles with its status (0: no answer). */
  const slow = async (ms: number) => {
    const answer: Promise<{ status: number, body: string }> = fetch(`/app/slow?ms=${ms}`).then(async (res) => ({ status: res.statusCode, body: await res.body.text() }), (err: Error) => ({ status: 0, body: err.message }))
    await until(5000, 'the slow request to be in flight', async () => (await health()).workers.app.instances[0]!.inflight > 0)
    return { answer }
  }
  const shuttingDown = (signal: string) => server.logs.waitFor((line) => line.msg === 'shutting down: draining workers' && line.signal === signal, 5000, `${signal} to begin the shutdown`)
  return { server, worker, slow, shuttingDown }
}

test('SIGINT drains like SIGTERM: the request in flight finishes, the worker stops, exit 0', async (t) => {
  const { server, worker, slow, shuttingDown } = await startServer(t)
  const { answer } = await slow(1500)
  server.child.kill('SIGINT')
  await shuttingDown('SIGINT')
  assert.deepEqual(await answer, { status: 200, body: JSON.stringify({ slow: true, ms: 1500 }) })
  assert.deepEqual(await within(15_000, 'the server to exit', server.exited), { code: 0, signal: null })
  await waitForExit(worker, 5000)
})

test('a second signal during the drain exits at once, without waiting for the request in flight', async (t) => {
  // Every bound long: only the second signal can end this shutdown soon.
  const { server, worker, slow, shuttingDown } = await startServer(t, 'drainTimeout: 60000\n')
  const { answer } = await slow(60_000)
  server.child.kill('SIGTERM')
  await shuttingDown('SIGTERM')
  server.child.kill('SIGTERM')
  assert.deepEqual(await within(10_000, 'the server to exit on the second signal', server.exited), { code: 1, signal: null })
  assert.equal((await within(10_000, 'the slow request to end', answer)).status, 0, 'the request in flight was cut off')
  await waitForExit(worker, 5000)
})

test('/readyz never answers 200 once the shutdown has begun, while a request holds the drain', async (t) => {
  const { server, slow, shuttingDown } = await startServer(t)
  const { answer } = await slow(3000)
  server.child.kill('SIGTERM')
  await shuttingDown('SIGTERM')
  const seen: string[] = []
  let held = 0
  let done = false
  void answer.then(() => { done = true })
  // A new connection each time: whatever the host still accepts must say "not ready".
  while (!done) {
    const res = await request(`${server.url}/readyz`, { reset: true }).then(async (r) => `${r.statusCode} ${await r.body.text()}`, (err: Error & { code?: string }) => err.code ?? err.message)
    if (!done) held++
    seen.push(res)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  assert.ok(held > 0, 'asked while the drain was held')
  assert.deepEqual(seen.filter((res) => res.startsWith('200')), [], `answers: ${[...new Set(seen)].join(', ')}`)
  assert.equal((await answer).status, 200)
  assert.deepEqual(await within(15_000, 'the server to exit', server.exited), { code: 0, signal: null })
})

test('a request that outlives drainTimeout does not hold the shutdown: it is cut off, the worker stopped, exit 0', async (t) => {
  const drainTimeoutMs = 1000
  const { server, worker, slow, shuttingDown } = await startServer(t, `drainTimeout: ${drainTimeoutMs}\nkillTimeout: 1000\n`)
  const { answer } = await slow(60_000)
  server.child.kill('SIGTERM')
  await shuttingDown('SIGTERM')
  const is = (msg: string) => (line: LogLine) => line.msg === msg && line.worker === 'app'
  const timedOut = await server.logs.waitFor(is('drain timed out; stopping with requests in flight'), 15_000, 'the drain to time out')
  const draining = await server.logs.waitFor((line) => is('worker state changed')(line) && line.to === 'DRAINING', 0, 'the worker to drain')
  assert.ok(timedOut.time as number - (draining.time as number) >= drainTimeoutMs - TIMER_SLACK_MS, 'the drain waited drainTimeout')
  assert.equal((await within(10_000, 'the slow request to end', answer)).status, 502)
  assert.deepEqual(await within(15_000, 'the server to exit', server.exited), { code: 0, signal: null })
  await waitForExit(worker, 5000)
})

test('a second SIGINT while a worker is being stopped (no request in flight) exits with 1, not killed by it', async (t) => {
  // The worker ignores SIGTERM, so the shutdown waits out the long killTimeout: only the second signal can end it.
  const root = await useProject(t, 'ignores-sigterm', { 'config/server.yaml': 'killTimeout: 60000\n' })
  const server = await startCliServer(t, 'start', root, PORTS.shutdownSignals)
  server.child.kill('SIGINT')
  const draining = await server.logs.waitFor((line) => line.msg === 'worker state changed' && line.to === 'DRAINING', 5000, 'the worker to be stopped')
  server.child.kill('SIGINT')
  assert.deepEqual(await within(10_000, 'the server to exit on the second signal', server.exited), { code: 1, signal: null })
  await waitForExit(Number(draining.pid), 5000)
})
