// Slow clients (issue 13, item 3; docs/security.md): clients that send their body slowly, read
// their answer slowly or pipeline requests whose answers they never read hold no connection to a
// worker that other clients need, and are cut off after bodyIdleTimeout and sendTimeout. The first
// test speaks raw HTTP; the second runs slowhttptest's three attacks at once against one route.
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, spawnSync } from 'node:child_process'
import { readdirSync, readlinkSync } from 'node:fs'
import { connect, type Socket } from 'node:net'
import { startCliServer } from '../helpers/cli.js'
import { defer } from '../helpers/cleanup.js'
import { clientFor, startHost, type Host } from '../helpers/host.js'
import { PORTS } from '../helpers/ports.js'
import { useProject } from '../helpers/project.js'
import { openRaw } from '../helpers/raw-http.js'
import { peakRss, until, within } from '../helpers/wait.js'

const [FROM_PORT, TO_PORT] = PORTS.slowClients.split('-').map(Number) as [number, number]
const HALF = (TO_PORT - FROM_PORT + 1) / 2
const FIRST_PORTS = `${FROM_PORT}-${FROM_PORT + HALF - 1}`
const SECOND_PORTS = `${FROM_PORT + HALF}-${TO_PORT}`

/** More than the 128 connections per instance the host used to open at most. */
const HELD_BODIES = 200
const BODY_IDLE_TIMEOUT_MS = 4000
const SEND_TIMEOUT_MS = 2000
/** More than the kernel's socket buffers take on loopback (about 4 MB for a client not reading). */
const BIG_ANSWER_BYTES = 16_000_000
/** How long a normal request may take while others misbehave. */
const NORMAL_ANSWER_MS = 5000

const served = async (host: Pick<Host, 'fetch'>) => (await (await host.fetch('/api/__served')).body.json() as { served: number }).served

/** Sends `count` POSTs to /api/echo one after another: each must be answered 200 within NORMAL_ANSWER_MS. */
async function sendNormalRequests (host: Pick<Host, 'fetch'>, count: number): Promise<void> {
  for (let i = 0; i < count; i++) {
    const answer = await within(NORMAL_ANSWER_MS, `normal request ${i + 1} of ${count} to be answered`,
      host.fetch('/api/echo', { method: 'POST', body: `{"i":${i}}`, headers: { 'content-type': 'application/json' } }))
    assert.equal(answer.statusCode, 200)
    await answer.body.dump()
  }
}

/** A client that sends `request` and never reads: the host's writes to it back up. */
async function openNonReading (t: TestContext, url: string, request: string): Promise<Socket> {
  const socket = connect(Number(new URL(url).port), '127.0.0.1')
  defer(t, () => socket.destroy())
  socket.pause()
  socket.on('error', () => {})
  await within(10_000, 'a connection to the host', new Promise<void>((resolve) => socket.once('connect', resolve)))
  socket.write(request)
  return socket
}

/** Reads what the client had left unread, to the end of the connection. */
async function readToEnd (socket: Socket): Promise<number> {
  let bytes = 0
  socket.on('data', (chunk: Buffer) => { bytes += chunk.length })
  const closed = new Promise((resolve) => socket.once('close', resolve))
  socket.resume()
  await within(10_000, 'the cut-off connection to end', closed)
  return bytes
}

/** Reads until `bytes` have come (the answer's head included), or the connection ends. */
async function readAtLeast (socket: Socket, bytes: number): Promise<number> {
  let read = 0
  const done = new Promise<void>((resolve) => {
    socket.on('data', (chunk: Buffer) => {
      read += chunk.length
      if (read >= bytes) resolve()
    })
    socket.once('close', () => resolve())
  })
  socket.resume()
  await within(10_000, `${bytes} bytes of the answer`, done)
  return read
}

test('slow clients, raw sockets: what they hold and for how long', async (t) => {
  const root = await useProject(t, 'routing', { 'workers/api/public/big.txt': 'x'.repeat(BIG_ANSWER_BYTES) })
  const host = await startHost(t, { root, workerPorts: FIRST_PORTS, bodyIdleTimeout: BODY_IDLE_TIMEOUT_MS, sendTimeout: SEND_TIMEOUT_MS })
  const inflight = () => host.app.tqserver.status().workers.api!.instances.reduce((sum, instance) => sum + instance.inflight, 0)

  await t.test(`${HELD_BODIES} clients holding their body open take no worker connection; they get 408 after bodyIdleTimeout`, async () => {
    const before = await served(host)
    // Expect: 100-continue, answered by the host once it has read the headers: each request is
    // then in the host's hands.
    const held = await Promise.all(Array.from({ length: HELD_BODIES }, async (_, i) => {
      const client = await openRaw(t, host.url)
      client.send(`POST /api/echo?held=${i} HTTP/1.1\r\nHost: tq.test\r\nContent-Length: 1000\r\nExpect: 100-continue\r\n\r\n`)
      assert.equal((await client.response(10_000, 'the 100 Continue')).status, 100)
      client.send('x'.repeat(10))
      return client
    }))
    await sendNormalRequests(host, 20)
    assert.equal(await served(host), before + 20, 'the worker saw only the normal requests')
    assert.ok(held.every((client) => client.received === 'HTTP/1.1 100 Continue\r\n\r\n'), 'the held bodies were still held meanwhile')
    for (const client of held) {
      const answer = await client.response(BODY_IDLE_TIMEOUT_MS + 10_000, 'the 408 for a held body')
      assert.equal(answer.status, 408)
      assert.equal((JSON.parse(answer.body) as { code: string }).code, 'TQ_ERR_PROXY_BODY_TIMEOUT')
      await client.whenClosed(5000)
    }
  })

  await t.test('a body longer than requestBuffer is streamed to the worker, and cut off with 408 when the client pauses in it', async () => {
    const before = await served(host)
    const client = await openRaw(t, host.url)
    client.send(`POST /api/upload HTTP/1.1\r\nHost: tq.test\r\nContent-Length: 1000000\r\n\r\n${'x'.repeat(100 * 1024)}`)
    await until(10_000, 'the upload to reach the worker', async () => await served(host) === before + 1)
    const answer = await client.response(BODY_IDLE_TIMEOUT_MS + 10_000, 'the 408 for the paused upload')
    assert.equal(answer.status, 408)
    assert.equal((JSON.parse(answer.body) as { code: string }).code, 'TQ_ERR_PROXY_BODY_TIMEOUT')
    await client.whenClosed(5000)
    await until(5000, 'the upload to leave the in-flight count', () => inflight() === 0)
  })

  await t.test('a client that pipelines requests and reads no answer has one of them forwarded at a time', async () => {
    const before = await served(host)
    await openNonReading(t, host.url, `GET /api/download?bytes=${BIG_ANSWER_BYTES} HTTP/1.1\r\nHost: tq.test\r\n\r\n`.repeat(50))
    await until(10_000, 'the first pipelined request to reach the worker', async () => await served(host) >= before + 1)
    await sendNormalRequests(host, 1)
    assert.equal(await served(host), before + 2, 'the worker saw the first pipelined request and the normal one')
  })

  await t.test('clients that leave their answer unread are cut off after sendTimeout', async () => {
    await until(SEND_TIMEOUT_MS + 10_000, 'the pipelining client to be cut off', () => inflight() === 0)
    const started = performance.now()
    const readers = await Promise.all(Array.from({ length: 3 }, () =>
      openNonReading(t, host.url, `GET /api/download?bytes=${BIG_ANSWER_BYTES} HTTP/1.1\r\nHost: tq.test\r\n\r\n`)))
    await until(10_000, 'the three downloads to be in flight', () => inflight() === 3)
    await until(SEND_TIMEOUT_MS + 10_000, 'the readers to be cut off', () => inflight() === 0)
    assert.ok(performance.now() - started >= SEND_TIMEOUT_MS, 'not before sendTimeout')
    for (const reader of readers) assert.ok(await readToEnd(reader) < BIG_ANSWER_BYTES, 'the answer was cut short')
  })

  await t.test('a client that leaves a public/ file unread is cut off after sendTimeout, and the file closed', async () => {
    const isOpen = () => readdirSync('/proc/self/fd').some((fd) => {
      try {
        return readlinkSync(`/proc/self/fd/${fd}`).endsWith('/workers/api/public/big.txt')
      } catch {
        return false
      }
    })
    const reader = await openNonReading(t, host.url, 'GET /api/big.txt HTTP/1.1\r\nHost: tq.test\r\n\r\n')
    await until(10_000, 'the host to open the file', isOpen)
    await until(SEND_TIMEOUT_MS + 10_000, 'the host to close the file', () => !isOpen())
    assert.ok(await readToEnd(reader) < BIG_ANSWER_BYTES, 'the file was cut short')
  })

  await t.test('an answer within responseBuffer frees its worker connection however slowly it is read', async () => {
    // One connection to the worker: the second request is answered only once the first answer has
    // been taken from it, while its client reads none of it.
    const scarce = await startHost(t, { root: await useProject(t, 'routing'), workerPorts: SECOND_PORTS, upstreamConnections: 1, responseBuffer: 2 * BIG_ANSWER_BYTES })
    const reader = await openNonReading(t, scarce.url, `GET /api/download?bytes=${BIG_ANSWER_BYTES} HTTP/1.1\r\nHost: tq.test\r\n\r\n`)
    await sendNormalRequests(scarce, 1)
    assert.ok(await readAtLeast(reader, BIG_ANSWER_BYTES) >= BIG_ANSWER_BYTES, 'the slow reader then gets its whole answer')
  })
})

/** Connections each slowhttptest attack opens, and how long it lasts. */
const ATTACK_CONNECTIONS = 1000
const ATTACK_SECONDS = 30
/**
 * How long a normal request may take under the three attacks. While the 3000 connections open
 * (200 a second each) this 2-core machine's CPU is busy, and answers then took up to 6 s with
 * other tests running; once they are open, under 1 s (docs/security.md). Without the fix they
 * were never answered.
 */
const UNDER_ATTACK_ANSWER_MS = 15_000
/** Host RSS bound under the three attacks; 347-383 MB measured (docs/security.md). */
const MAX_HOST_RSS_MB = 512
const ATTACKS: Record<string, string[]> = {
  'slow headers': ['-H', '-i', '5', '-u', '/api/headers'],
  'slow bodies': ['-B', '-i', '5', '-s', '8192', '-u', '/api/echo'],
  // 1 MB answers, read 5 bytes a second through a receive window of at most 512 bytes, 3 requests
  // pipelined on each connection.
  'slow reads': ['-X', '-n', '1', '-z', '5', '-w', '1', '-y', '512', '-k', '3', '-u', '/api/download?bytes=1000000']
}
/** What a normal client asks for: the three attacked URLs in turn. */
const NORMAL_REQUESTS: Array<[string, string, string?]> = [
  ['POST', '/api/echo', '{"normal":true}'],
  ['GET', '/api/download?bytes=1000000'],
  ['GET', '/api/headers']
]

/** Runs slowhttptest with `args` (its -u relative to `url`), with as many file descriptors as allowed; resolves, once it has exited, with the most connections it had open at once. */
function runAttack (t: TestContext, url: string, args: string[]): Promise<number> {
  const command = args.map((arg, i) => args[i - 1] === '-u' ? `'${url}${arg}'` : arg).join(' ')
  const child = spawn('sh', ['-c', `ulimit -n "$(ulimit -Hn)"; exec slowhttptest ${command} -c ${ATTACK_CONNECTIONS} -r 200 -l ${ATTACK_SECONDS}`], { stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  child.stdout.on('data', (chunk: Buffer) => { output += chunk.toString() })
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  defer(t, async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    await exited
  })
  // Its status lines are coloured: "connected:" ESC[1;34m "1000".
  return exited.then(() => Math.max(0, ...[...output.replace(/\x1b\[[0-9;]*[A-Za-z]/g, '').matchAll(/connected:\s*(\d+)/g)].map((match) => Number(match[1]))))
}

test(`slowhttptest: slow headers, bodies and reads at once, ${ATTACK_CONNECTIONS} connections each for ${ATTACK_SECONDS} s, do not lock the route out`, { timeout: (ATTACK_SECONDS + 60) * 1000 }, async (t) => {
  assert.equal(spawnSync('sh', ['-c', 'command -v slowhttptest']).status, 0, 'slowhttptest is not installed (apt-get install slowhttptest)')
  const root = await useProject(t, 'routing')
  const server = await startCliServer(t, 'start', root, FIRST_PORTS)
  const fetch = clientFor(t, server.url)
  const names = Object.keys(ATTACKS)
  const attacks = Promise.all(names.map((name) => runAttack(t, server.url, ATTACKS[name]!)))
  let isAttacked = true
  void attacks.then(() => { isAttacked = false })

  // A normal client sends a request every 100 ms (a rate: time itself is under test) until the attacks end.
  const latenciesMs: number[] = []
  const failures: string[] = []
  const requests: Array<Promise<void>> = []
  for (let i = 0; isAttacked; i++) {
    const [method, path, body] = NORMAL_REQUESTS[i % NORMAL_REQUESTS.length]!
    const started = performance.now()
    requests.push(within(UNDER_ATTACK_ANSWER_MS, `${method} ${path} to be answered`, fetch(path, { method: method as 'GET' | 'POST', body }).then(async (answer) => {
      await answer.body.dump()
      assert.equal(answer.statusCode, 200, `${method} ${path}`)
    })).then(() => { latenciesMs.push(performance.now() - started) }, (err: Error) => { failures.push(err.message) }))
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  await Promise.all(requests)
  const connected = await attacks
  const rssMb = await peakRss(server.child.pid!) / 1048576
  latenciesMs.sort((a, b) => a - b)
  const at = (q: number) => Math.round(latenciesMs[Math.min(latenciesMs.length - 1, Math.floor(q * latenciesMs.length))] ?? NaN)
  t.diagnostic(`connections open at most: ${names.map((name, i) => `${name} ${connected[i]}`).join(', ')}; normal requests answered ${latenciesMs.length} (p50 ${at(0.5)} ms, p99 ${at(0.99)} ms, max ${at(1)} ms), failed ${failures.length}; host peak RSS ${rssMb.toFixed(0)} MB`)

  for (const [i, name] of names.entries()) assert.ok(connected[i]! >= ATTACK_CONNECTIONS * 0.9, `${name}: slowhttptest had only ${connected[i]} connections open`)
  assert.deepEqual(failures, [])
  assert.ok(latenciesMs.length >= ATTACK_SECONDS * 5, `only ${latenciesMs.length} normal requests were made`)
  assert.ok(rssMb < MAX_HOST_RSS_MB, `host peak RSS ${rssMb.toFixed(0)} MB`)
})
