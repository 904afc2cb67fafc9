// drainTimeout bounds how long a retiring instance may keep its requests: a switch waits for them
// up to drainTimeout, then stops the old instance anyway; a server-sent event stream (a response
// that never ends by itself) holds the drain exactly that long.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { startHost, type Host } from '../helpers/host.js'
import type { LogLine } from '../helpers/logs.js'
import { PORTS } from '../helpers/ports.js'
import { useProject } from '../helpers/project.js'
import { isAlive, until, waitForExit, within } from '../helpers/wait.js'

const DRAIN_TIMEOUT_MS = 1000
/**
 * Node's timers count from the event loop's clock, read at the start of a loop turn, so a timer
 * may fire a few ms before its delay has passed by the wall clock that log times use.
 */
const TIMER_SLACK_MS = 50
const DRAIN_TIMED_OUT = 'drain timed out; stopping with requests in flight'

const settings = `drainTimeout: ${DRAIN_TIMEOUT_MS}\nkillTimeout: 1000\n`

function state (pid: number, to: string) {
  return (line: LogLine) => line.msg === 'worker state changed' && line.worker === 'app' && line.pid === pid && line.to === to
}

async function appPid (host: Host): Promise<number> {
  return (await (await host.fetch('/app/')).body.json() as { pid: number }).pid
}

async function inflight (host: Host, pid: number): Promise<number> {
  return host.app.tqserver.status().workers.app!.instances.find((instance) => instance.pid === pid)?.inflight ?? 0
}

test('a switch waits for a request in flight up to drainTimeout, then stops the old instance anyway', async (t) => {
  const root = await useProject(t, 'long-requests', { 'config/server.yaml': settings })
  const host = await startHost(t, { root, workerPorts: PORTS.drainTimeout })
  const old = await appPid(host)
  // Far longer than the drain: only the drain's bound can end it.
  const slow = host.fetch('/app/slow?ms=60000').then(async (res) => ({ status: res.statusCode, body: await res.body.text() }), (err: Error) => ({ status: 0, body: err.message }))
  await until(5000, 'the slow request to be in flight', async () => await inflight(host, old) > 0)

  const switched = host.app.tqserver.restart('app')
  const timedOut = await host.logs.waitFor((line) => line.msg === DRAIN_TIMED_OUT && line.pid === old, 15_000, 'the drain to time out')
  const draining = await host.logs.waitFor(state(old, 'DRAINING'), 0, 'the old instance to drain')
  assert.equal(timedOut.inflight, 1)
  assert.equal(timedOut.drainTimeout, DRAIN_TIMEOUT_MS)
  assert.ok(timedOut.time as number - (draining.time as number) >= DRAIN_TIMEOUT_MS - TIMER_SLACK_MS,
    `the drain lasted ${timedOut.time as number - (draining.time as number)} ms, at least drainTimeout`)

  await within(15_000, 'the switch to end', switched)
  await waitForExit(old, 5000)
  const cut = await within(10_000, 'the slow request to end', slow)
  assert.equal(cut.status, 502, `the slow request was cut off, not answered: ${cut.body}`)
  assert.notEqual(await appPid(host), old, 'the new instance serves')
  assert.equal(isAlive(old), false)
})

test('a server-sent event stream holds a switch\'s drain until drainTimeout, then ends', async (t) => {
  const root = await useProject(t, 'long-requests', { 'config/server.yaml': settings })
  const host = await startHost(t, { root, workerPorts: PORTS.drainTimeout })
  const res = await host.fetch('/app/events', { headers: { accept: 'text/event-stream' } })
  assert.equal(res.headers['content-type'], 'text/event-stream')
  let text = ''
  let endedAt: number | undefined
  const ended = new Promise<void>((resolve) => {
    res.body.on('data', (chunk: Buffer) => { text += chunk.toString() })
    res.body.once('close', () => {
      endedAt = Date.now()
      resolve()
    })
    res.body.once('error', () => {})
  })
  await until(5000, 'the first event', () => text.includes('\n\n'))
  const old = (JSON.parse(text.slice('data: '.length, text.indexOf('\n'))) as { pid: number }).pid

  const switched = host.app.tqserver.restart('app')
  const draining = await host.logs.waitFor(state(old, 'DRAINING'), 15_000, 'the old instance to drain')
  // Meanwhile the new instance serves, and the stream still flows from the old one.
  assert.notEqual(await appPid(host), old)
  const ticks = text.length
  await until(5000, 'more events from the draining instance', () => text.length > ticks)
  assert.equal(endedAt, undefined, 'the stream is still open while the drain lasts')

  const timedOut = await host.logs.waitFor((line) => line.msg === DRAIN_TIMED_OUT && line.pid === old, 15_000, 'the drain to time out')
  assert.ok(timedOut.time as number - (draining.time as number) >= DRAIN_TIMEOUT_MS - TIMER_SLACK_MS)
  await within(15_000, 'the stream to end', ended)
  assert.ok(endedAt! - (draining.time as number) >= DRAIN_TIMEOUT_MS - TIMER_SLACK_MS, 'the stream ended only after drainTimeout')
  await within(15_000, 'the switch to end', switched)
  await waitForExit(old, 5000)
})

test('closing the app waits for a request in flight up to drainTimeout, then stops the worker anyway', async (t) => {
  const root = await useProject(t, 'long-requests', { 'config/server.yaml': settings })
  const host = await startHost(t, { root, workerPorts: PORTS.drainTimeout })
  const pid = await appPid(host)
  const slow = host.fetch('/app/slow?ms=60000').then((res) => res.statusCode, () => 0)
  await until(5000, 'the slow request to be in flight', async () => await inflight(host, pid) > 0)

  await within(15_000, 'the app to close', host.app.close())
  const draining = await host.logs.waitFor(state(pid, 'DRAINING'), 0, 'the worker to drain')
  const timedOut = await host.logs.waitFor((line) => line.msg === DRAIN_TIMED_OUT && line.pid === pid, 0, 'the drain to time out')
  assert.ok(timedOut.time as number - (draining.time as number) >= DRAIN_TIMEOUT_MS - TIMER_SLACK_MS)
  assert.equal(await within(5000, 'the slow request to end', slow), 502)
  await waitForExit(pid, 5000)
})
