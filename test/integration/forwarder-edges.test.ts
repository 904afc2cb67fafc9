// The forwarder's edges, through a real host and real workers: a client that goes away cancels
// the worker's request, a worker that breaks off after its headers breaks the client's answer
// off too (never a second status line), hop-by-hop headers stop at the proxy both ways, Expect:
// 100-continue is the host's to answer, and a worker that stalls longer than upstreamTimeout is
// cut off (504 before its headers).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { startHost } from '../helpers/host.js'
import type { LogLine } from '../helpers/logs.js'
import { PORTS } from '../helpers/ports.js'
import { useProject } from '../helpers/project.js'
import { openRaw, rawRequest } from '../helpers/raw-http.js'
import { until, within } from '../helpers/wait.js'

/** upstreamTimeout of the impatient worker (test/fixtures/misbehaving-upstream). */
const IMPATIENT_TIMEOUT_MS = 1000

test('forwarder edges', async (t) => {
  // patient: upstreamTimeout 60 s, so that only the client can end its requests; impatient: 1 s.
  const root = await useProject(t, 'misbehaving-upstream')
  const host = await startHost(t, { root, workerPorts: PORTS.forwarderEdges })
  const printed = (worker: string, text: string) => (line: LogLine) => line.worker === worker && line.msg === text
  const inflight = (worker: string) => host.app.tqserver.status().workers[worker]!.instances.reduce((sum, instance) => sum + instance.inflight, 0)

  await t.test('a client that goes away while waiting cancels the request to the worker', async () => {
    const client = await openRaw(t, host.url)
    const arrived = host.logs.waitFor(printed('patient', 'got GET /hang?id=waiting'), 10_000, 'the request to reach the worker')
    client.send('GET /patient/hang?id=waiting HTTP/1.1\r\nHost: tq.test\r\n\r\n')
    await arrived
    assert.equal(inflight('patient'), 1)
    const cancelled = host.logs.waitFor(printed('patient', 'closed before answering /hang?id=waiting'), 10_000, 'the worker to see its request closed')
    client.socket.destroy()
    await cancelled
    await until(10_000, 'the request to leave the in-flight count', () => inflight('patient') === 0)
  })

  await t.test('a client that goes away in the middle of its upload cancels the upload to the worker', async () => {
    const client = await openRaw(t, host.url)
    const arrived = host.logs.waitFor(printed('patient', 'got POST /upload?id=half'), 10_000, 'the upload to reach the worker')
    client.send(`POST /patient/upload?id=half HTTP/1.1\r\nHost: tq.test\r\nContent-Length: 1000000\r\n\r\n${'x'.repeat(64 * 1024)}`)
    await arrived
    const cut = host.logs.waitFor((line) => line.worker === 'patient' && /^upload cut off after \d+ bytes \/upload\?id=half$/.test(String(line.msg)), 10_000, 'the worker to see its upload cut off')
    client.socket.destroy()
    const bytes = Number(/after (\d+) bytes/.exec(String((await cut).msg))![1])
    assert.ok(bytes < 1_000_000, `the worker got ${bytes} bytes`)
    await until(10_000, 'the request to leave the in-flight count', () => inflight('patient') === 0)
  })

  await t.test('hop-by-hop request headers, and those the Connection header names, do not reach the worker', async () => {
    const answer = await rawRequest(t, host.url, 'GET', '/patient/hop', [
      'Connection: keep-alive, X-Hop-In',
      'Connection: x-hop-in-two',
      'X-Hop-In: secret',
      'X-Hop-In-Two: secret',
      'Keep-Alive: timeout=9, max=7',
      'Proxy-Connection: keep-alive',
      'TE: trailers',
      'Trailer: X-Checksum',
      'Upgrade: h2c',
      'X-End-To-End: kept'
    ])
    assert.equal(answer.status, 200)
    const seen = JSON.parse(answer.body) as Record<string, string>
    for (const name of ['x-hop-in', 'x-hop-in-two', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'upgrade']) {
      assert.equal(seen[name], undefined, `${name} reached the worker`)
    }
    assert.doesNotMatch(seen.connection ?? '', /hop/i, "the client's Connection header reached the worker")
    assert.equal(seen['x-end-to-end'], 'kept')
  })

  await t.test('Expect: 100-continue is answered by the host, and the body then reaches the worker', async () => {
    const client = await openRaw(t, host.url)
    client.send('POST /patient/upload?id=expect HTTP/1.1\r\nHost: tq.test\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n')
    assert.equal((await client.response(10_000, 'the 100 Continue')).status, 100)
    client.send('hello')
    const answer = await client.response(10_000, 'the answer to the upload')
    assert.equal(answer.status, 200, answer.body)
    assert.deepEqual(JSON.parse(answer.body), { bytes: 5 })
  })

  await t.test('hop-by-hop answer headers, and those the Connection header names, do not reach the client', async () => {
    const answer = await rawRequest(t, host.url, 'GET', '/patient/hop')
    assert.equal(answer.status, 200)
    for (const name of ['x-hop-out', 'x-hop-out-two', 'proxy-connection', 'te', 'trailer', 'upgrade']) {
      assert.equal(answer.headers[name], undefined, `${name} reached the client`)
    }
    assert.doesNotMatch(answer.headers['keep-alive'] ?? '', /max=7/, "the worker's Keep-Alive reached the client")
    assert.doesNotMatch(answer.headers.connection ?? '', /hop/i, "the worker's Connection header reached the client")
    assert.equal(answer.headers['x-end-to-end'], 'kept')
  })

  await t.test('a worker that breaks off after its headers breaks the answer off: no hang, no second status line', async () => {
    const client = await openRaw(t, host.url)
    // Keep-alive: only the proxy can end this connection.
    client.send('GET /patient/break-after-headers HTTP/1.1\r\nHost: tq.test\r\n\r\n')
    await client.whenClosed(10_000, 'the host to close the broken answer')
    assert.match(client.received, /^HTTP\/1\.1 200 /)
    assert.equal(client.received.match(/HTTP\/1\.1 /g)?.length, 1, `one status line: ${JSON.stringify(client.received)}`)
    assert.match(client.received, /first chunk/)
    assert.doesNotMatch(client.received, /\r\n0\r\n\r\n$/, 'the broken body was not ended as if complete')
  })

  await t.test('a worker that pauses in its body longer than upstreamTimeout is cut off', async () => {
    const res = await host.fetch('/impatient/pause-mid-body')
    assert.equal(res.statusCode, 200)
    let received = ''
    let firstAt = 0
    const read = (async () => {
      for await (const chunk of res.body) {
        received += String(chunk)
        firstAt ||= performance.now()
      }
    })()
    // The deadline's own rejection is not the cut-off: the read must fail by itself.
    const error = await within(15_000, 'the paused answer to be cut off', read.then(() => undefined, (err: unknown) => err))
    assert.ok(error instanceof Error, 'the body ended as if complete')
    assert.equal(received, 'first chunk\n')
    // The first chunk left the worker before the pause began: the cut comes a whole timeout later.
    assert.ok(performance.now() - firstAt >= IMPATIENT_TIMEOUT_MS - 100, `cut off after ${Math.round(performance.now() - firstAt)} ms`)
  })

  await t.test('a worker that pauses before its headers longer than upstreamTimeout gives 504, and its request is closed', async () => {
    const cancelled = host.logs.waitFor(printed('impatient', 'closed before answering /hang?id=slow'), 15_000, 'the worker to see its request closed')
    const started = performance.now()
    const res = await host.fetch('/impatient/hang?id=slow')
    assert.equal(res.statusCode, 504)
    assert.equal((await res.body.json() as { code: string }).code, 'TQ_ERR_PROXY_TIMEOUT')
    assert.ok(performance.now() - started >= IMPATIENT_TIMEOUT_MS - 100, `504 after ${Math.round(performance.now() - started)} ms`)
    await cancelled
  })
})
