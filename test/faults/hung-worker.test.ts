// A worker process that stops answering (SIGSTOP: alive, port open, silent) is found within
// seconds by its waiting requests and a probe, taken out and replaced: requests waiting on it get
// 503 instead of hanging until upstreamTimeout. A slow answer from a worker whose /health answers
// is no hang, and a WebSocket handshake waiting on it gets 503 too. Default health settings
// throughout: the target is for them.
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { startHost, type Host } from '../helpers/host.js'
import type { LogLine } from '../helpers/logs.js'
import { startLoad, type LoadResult } from '../helpers/load.js'
import { PORTS } from '../helpers/ports.js'
import { useProject } from '../helpers/project.js'
import { defer } from '../helpers/cleanup.js'
import { isAlive, within } from '../helpers/wait.js'
import { once } from 'node:events'
import { WebSocket } from 'ws'

/** The target (12, item 5): no request waits longer, failures last less. */
const TARGET_MS = 5_000
const CLIENTS = 8

async function startApp (t: TestContext, files: Record<string, string> = {}): Promise<{ host: Host, pids: number[] }> {
  const root = await useProject(t, 'versioned', files)
  const host = await startHost(t, { root, workerPorts: PORTS.hungWorker })
  await host.app.tqserver.idle()
  const pids = host.app.tqserver.status().workers.app!.instances.map((instance) => instance.pid!)
  return { host, pids }
}

/**
 * SIGKILL at the end of the test: it ends a stopped process too, which nothing else may. Run
 * first, so that what still waits on it fails at once instead of holding the load's stop.
 */
function killAfter (t: TestContext, pid: number): void {
  defer(t, () => {
    if (isAlive(pid)) process.kill(pid, 'SIGKILL')
  })
}

const tookOut = (pid: number) => (line: LogLine) => line.msg === 'worker state changed' && line.pid === pid && line.to === 'DRAINING'
const replaced = (line: LogLine) => line.msg === 'worker switched' && line.worker === 'app' && line.reason === 'replaces a hung instance'

/**
 * Load on /app, then SIGSTOP of `pid` (SIGKILLed after the test); `out` settles when the host
 * takes the instance out as hung.
 */
async function stopUnderLoad (t: TestContext, host: Host, pid: number) {
  const load = startLoad(host.url, '/app', CLIENTS)
  defer(t, () => load.stop())
  await load.reached(0, 5000)
  const out = host.logs.next(tookOut(pid), 20_000, 'the stopped instance to be taken out as hung')
  const stoppedAt = Date.now()
  killAfter(t, pid)
  process.kill(pid, 'SIGSTOP')
  return { load, stoppedAt, out }
}

/** What the load saw, for the test's diagnostics. */
function describe (result: LoadResult, stoppedAt: number): string {
  const window = result.failedAt.length > 0 ? `${Math.max(...result.failedAt) - Math.min(...result.failedAt)} ms, from ${Math.min(...result.failedAt) - stoppedAt} ms after SIGSTOP` : 'none'
  return `ok ${result.ok}, failed ${result.failures.length} (window ${window}), slowest request ${Math.round(result.slowestMs)} ms`
}

test('a SIGSTOPped single instance under load: no request waits 5 s, failures last under 5 s, a new process serves', async (t) => {
  const { host, pids: [stopped] } = await startApp(t)
  const { load, stoppedAt, out } = await stopUnderLoad(t, host, stopped!)
  const waiting = host.fetch('/app/version')
  const hung = await out
  assert.match(String(hung.reason), /^hung: no answer for \d+ ms to the requests waiting on it, nor to GET \/health: no answer within 1000 ms$/)
  const givenUp = await waiting
  assert.deepEqual([givenUp.statusCode, givenUp.headers['retry-after'], (await givenUp.body.json() as { code: string }).code], [503, '1', 'TQ_ERR_PROXY_HUNG'],
    'a request waiting on the hung instance is given up with 503 and Retry-After')
  await host.logs.waitFor(replaced, 30_000, 'the stopped instance to be replaced')
  const res = await host.fetch('/app/version')
  const answer = await res.body.json() as { pid: number }
  assert.equal(res.statusCode, 200)
  assert.notEqual(answer.pid, stopped, 'a new process answers')
  const result = await load.stop()
  const healthyAgain = host.logs.lines.find((line) => line.worker === 'app' && line.to === 'HEALTHY' && line.pid === answer.pid)!
  t.diagnostic(`hung found ${Number(hung.time) - stoppedAt} ms after SIGSTOP; new instance serving after ${Number(healthyAgain.time) - stoppedAt} ms; ${describe(result, stoppedAt)}`)

  assert.ok(result.slowestMs < TARGET_MS, `no request took ${TARGET_MS} ms (slowest: ${Math.round(result.slowestMs)} ms)`)
  assert.ok(result.failures.length > 0, 'requests failed while no instance served')
  assert.deepEqual(result.failures.filter((failure) => !/^(GET|POST) 503 .*"code":"TQ_ERR_PROXY_(HUNG|UNAVAILABLE)"/.test(failure)), [], 'every failure is a clean 503')
  assert.ok(Math.min(...result.failedAt) >= stoppedAt, 'nothing failed before the SIGSTOP')
  assert.ok(Math.max(...result.failedAt) - Math.min(...result.failedAt) < TARGET_MS, `failures lasted under ${TARGET_MS} ms`)
  assert.ok(result.ok > 0)
  // SIGTERM alone never reaches a stopped process: SIGCONT after it lets it exit on its own,
  // before killTimeout's SIGKILL, and before the switch ends.
  assert.equal(isAlive(stopped!), false, 'the hung process has exited')
  const end = host.logs.lines.find((line) => line.pid === stopped && line.to === 'STOPPED')
  t.diagnostic(`the hung process: ${String(end?.reason)}, ${Number(end?.time) - stoppedAt} ms after SIGSTOP`)
  assert.doesNotMatch(String(end?.reason), /SIGKILL/)
})

test('two instances, one SIGSTOPped under load: traffic moves to the other, only requests waiting on it fail', async (t) => {
  const { host, pids } = await startApp(t, { 'workers/app/worker.yaml': 'instances: 2\n' })
  const [stopped, other] = pids
  const { load, stoppedAt, out } = await stopUnderLoad(t, host, stopped!)
  const hung = await out
  await host.logs.waitFor(replaced, 30_000, 'the stopped instance to be replaced')
  const result = await load.stop()
  t.diagnostic(`hung found ${Number(hung.time) - stoppedAt} ms after SIGSTOP; ${describe(result, stoppedAt)}`)

  assert.ok(result.slowestMs < TARGET_MS, `no request took ${TARGET_MS} ms (slowest: ${Math.round(result.slowestMs)} ms)`)
  // Each client has one request in flight: at most that many waited on the stopped instance, and
  // with the other one serving, nothing else failed.
  assert.ok(result.failures.length <= CLIENTS, `at most ${CLIENTS} failures: ${result.failures.length}`)
  assert.deepEqual(result.failures.filter((failure) => !/^(GET|POST) 503 .*"code":"TQ_ERR_PROXY_HUNG"/.test(failure)), [])
  const serving = host.app.tqserver.status().workers.app!.instances.filter((instance) => instance.state === 'HEALTHY').map((instance) => instance.pid)
  assert.equal(serving.length, 2)
  assert.ok(serving.includes(other!) && !serving.includes(stopped!), 'the other instance kept serving, the stopped one was replaced')
})

test('a slow answer is no hang while /health answers: probed, not taken out', async (t) => {
  const { host, pids: [pid] } = await startApp(t)
  const res = await host.fetch('/app/slow?ms=4000')
  assert.equal(res.statusCode, 200)
  assert.deepEqual(await res.body.json(), { version: 0, slow: true })
  // Quiet for 4 s: suspect every hangAfter (1 s), each time cleared by a probe that answered.
  const suspected = host.logs.count((line) => line.pid === pid && String(line.msg).startsWith('instance suspect: requests wait'))
  assert.ok(suspected >= 2, `suspected and probed while the answer was pending (${suspected} times)`)
  assert.deepEqual(host.logs.transitions('app'), ['STOPPED>STARTING', 'STARTING>HEALTHY'])
})

test('a WebSocket handshake waiting on a SIGSTOPped instance gets 503 within the target, and counts as waiting', async (t) => {
  const root = await useProject(t, 'websocket', {}, ['ws'])
  const host = await startHost(t, { root, workerPorts: PORTS.hungWorker })
  const pid = host.app.tqserver.status().workers.app!.instances[0]!.pid!
  killAfter(t, pid)
  process.kill(pid, 'SIGSTOP')
  const started = Date.now()
  const socket = new WebSocket(`${host.url.replace('http', 'ws')}/app/ws`)
  const [request, response] = await within(TARGET_MS, 'the handshake to be answered', once(socket, 'unexpected-response')) as [{ destroy: () => void }, { statusCode: number }]
  request.destroy()
  assert.equal(response.statusCode, 503)
  t.diagnostic(`503 after ${Date.now() - started} ms`)
})
