// Connection hand-off (handoff: true) at its edges, against `tqserver start`: the front refuses a
// request line over 16 KiB, cuts off a client that has not sent its request line within
// headersTimeout (silent, half a line, or trickling it), answers 503 itself for a route with no
// healthy instance, and when an instance drains, its idle handed-off connections are closed after
// the 1 s grace, not before, and long before drainTimeout.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { cp, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { runCliToEnd, startCliServer } from '../helpers/cli.js'
import { clientFor } from '../helpers/host.js'
import { PORTS } from '../helpers/ports.js'
import { FIXTURES, useProject } from '../helpers/project.js'
import { openRaw } from '../helpers/raw-http.js'
import { until, waitForExit } from '../helpers/wait.js'

const HEADERS_TIMEOUT_MS = 2000
/** The worker's grace before it closes idle handed-off connections (src/worker/handoff-receiver.ts). */
const DRAIN_GRACE_MS = 1000
const DRAIN_TIMEOUT_MS = 30_000

interface Health { workers: Record<string, { instances: Array<{ pid: number, requests: number, state: string }> }> }

test('connection hand-off at its edges', async (t) => {
  const root = await useProject(t, 'held-answer', {
    'config/server.yaml': [
      'handoff: true',
      `headersTimeout: ${HEADERS_TIMEOUT_MS}`,
      `drainTimeout: ${DRAIN_TIMEOUT_MS}`,
      // A killed instance stays down for the test's length.
      'restartDelay: 600000',
      'restartDelayMax: 600000',
      ''
    ].join('\n')
  })
  await cp(join(FIXTURES, 'sdk', 'workers', 'app'), join(root, 'workers', 'spare'), { recursive: true })
  assert.equal((await runCliToEnd(t, ['build'], { cwd: root })).code, 0)
  const server = await startCliServer(t, 'start', root, PORTS.handoffEdges)
  const fetch = clientFor(t, server.url)
  const health = async () => await (await fetch('/health')).body.json() as Health

  await t.test('a request line over 16 KiB is refused: the connection is closed, unanswered', async () => {
    // Sent after a silent connection opened: the long line is refused on sight, not at headersTimeout.
    const silent = await openRaw(t, server.url)
    const long = await openRaw(t, server.url)
    long.send(`GET /app/${'a'.repeat(17 * 1024)}`)
    const longClosed = await long.whenClosed(15_000, 'the long request line to be refused')
    assert.equal(long.received, '')
    assert.ok(longClosed < await silent.whenClosed(15_000, 'the silent client to be cut off'), 'refused before the timeout')

    const complete = await openRaw(t, server.url)
    complete.send(`GET /app/version?pad=${'a'.repeat(17 * 1024)} HTTP/1.1\r\nHost: tq.test\r\n\r\n`)
    await complete.whenClosed(15_000, 'the long request line to be refused')
    assert.doesNotMatch(complete.received, /^HTTP\/1\.1 2/, 'never served')
  })

  await t.test('a client that sends nothing, or half a request line, is cut off after headersTimeout', async () => {
    const opened = Date.now()
    const silent = await openRaw(t, server.url)
    const half = await openRaw(t, server.url)
    half.send('GET /app/ver')
    for (const [client, what] of [[silent, 'silent'], [half, 'half a line']] as const) {
      const closedAt = await client.whenClosed(15_000, `the ${what} client to be cut off`)
      assert.ok(closedAt - opened >= HEADERS_TIMEOUT_MS - 50, `${what}: cut off after ${closedAt - opened} ms`)
      assert.equal(client.received, '', `${what}: no answer`)
    }
  })

  await t.test('a client trickling its request line is cut off after headersTimeout, not kept alive by each byte', async () => {
    const client = await openRaw(t, server.url)
    const opened = Date.now()
    const line = 'GET /app/version HTTP/1.1'
    let sent = 0
    // Time itself is under test: a byte every 300 ms, for about twice as long as headersTimeout.
    while (!client.isClosed && sent < line.length) {
      client.send(line[sent++]!)
      await new Promise((resolve) => setTimeout(resolve, 300))
    }
    assert.ok(client.isClosed, `still open after ${Date.now() - opened} ms and the whole line`)
    assert.ok(await client.closed - opened >= HEADERS_TIMEOUT_MS - 50)
    assert.equal(client.received, '')
  })

  await t.test('after a drain starts, idle handed-off connections close after the grace, long before drainTimeout', async () => {
    const before = (await health()).workers.app!.instances[0]!.pid
    const idle = await openRaw(t, server.url)
    idle.send('GET /app/version HTTP/1.1\r\nHost: tq.test\r\n\r\n')
    const answer = await idle.response(10_000, 'the first answer')
    assert.equal(JSON.parse(answer.body).pid, before)
    assert.equal((await health()).workers.app!.instances[0]!.requests, 0, 'the connection was handed off, not proxied')

    await writeFile(join(root, 'workers', 'app', 'src', 'version.ts'), 'export const VERSION = 1\n')
    assert.equal((await runCliToEnd(t, ['build', 'app'], { cwd: root })).code, 0)
    const draining = server.logs.next((line) => line.msg === 'worker state changed' && line.worker === 'app' && line.pid === before && line.to === 'DRAINING', 30_000, 'the old instance to drain')
    const reload = runCliToEnd(t, ['reload'], { cwd: root })
    const drainStartedAt = Number((await draining).time)
    const closedAt = await idle.whenClosed(DRAIN_TIMEOUT_MS - 5000, 'the idle handed-off connection to be closed')
    assert.ok(closedAt - drainStartedAt >= DRAIN_GRACE_MS - 20, `closed ${closedAt - drainStartedAt} ms after the drain began`)
    assert.equal(idle.received.slice(-answer.body.length), answer.body, 'nothing was sent after the first answer')

    assert.match((await reload).stdout, /switched app/)
    assert.equal(server.logs.count((line) => line.msg === 'drain timed out; stopping with requests in flight'), 0)
    await waitForExit(before, 10_000)
  })

  await t.test('a request in flight when the drain starts is answered with Connection: close, and its connection closes', async () => {
    const before = (await health()).workers.app!.instances[0]!.pid
    const busy = await openRaw(t, server.url)
    const holding = server.logs.next((line) => line.worker === 'app' && line.msg === 'holding', 10_000, 'the request to reach the worker')
    busy.send('GET /app/hold HTTP/1.1\r\nHost: tq.test\r\n\r\n')
    await holding

    await writeFile(join(root, 'workers', 'app', 'src', 'version.ts'), 'export const VERSION = 2\n')
    assert.equal((await runCliToEnd(t, ['build', 'app'], { cwd: root })).code, 0)
    const draining = server.logs.next((line) => line.msg === 'worker state changed' && line.worker === 'app' && line.pid === before && line.to === 'DRAINING', 30_000, 'the old instance to drain')
    const reload = runCliToEnd(t, ['reload'], { cwd: root })
    await draining
    process.kill(before, 'SIGUSR2')
    const answer = await busy.response(10_000, 'the held answer')
    assert.deepEqual([answer.status, JSON.parse(answer.body).version, answer.headers.connection], [200, 1, 'close'])
    await busy.whenClosed(DRAIN_TIMEOUT_MS - 5000, 'the connection to close after its answer')

    assert.match((await reload).stdout, /switched app/)
    assert.equal(server.logs.count((line) => line.msg === 'drain timed out; stopping with requests in flight'), 0)
    await waitForExit(before, 10_000)
  })

  await t.test('a route with no healthy instance gets 503 JSON from the host, on a new or a handed-off connection', async () => {
    const [spare] = (await health()).workers.spare!.instances
    process.kill(spare!.pid, 'SIGKILL')
    await until(15_000, 'spare to have no healthy instance', async () => (await health()).workers.spare!.instances.every((instance) => instance.state !== 'HEALTHY'))

    const fresh = await openRaw(t, server.url)
    fresh.send('GET /spare/ HTTP/1.1\r\nHost: tq.test\r\n\r\n')
    const answer = await fresh.response(10_000, 'an answer for a route with no healthy instance')
    assert.equal(answer.status, 503)
    assert.match(answer.headers['content-type'] ?? '', /^application\/json/)
    assert.equal((JSON.parse(answer.body) as { code: string }).code, 'TQ_ERR_PROXY_UNAVAILABLE')

    const handedOff = await openRaw(t, server.url)
    handedOff.send('GET /app/version HTTP/1.1\r\nHost: tq.test\r\n\r\nGET /spare/ HTTP/1.1\r\nHost: tq.test\r\n\r\n')
    assert.equal((await handedOff.response(10_000, 'the app answer')).status, 200)
    const passedBack = await handedOff.response(10_000, 'the answer passed back through the host')
    assert.equal(passedBack.status, 503)
    assert.equal((JSON.parse(passedBack.body) as { code: string }).code, 'TQ_ERR_PROXY_UNAVAILABLE')
  })
})
