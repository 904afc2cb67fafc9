// Several processes serve the port (`proxies: N`): the control plane and N - 1 data planes bound
// beside it. A switch under load drops nothing, and waits for a data plane's request; a data plane
// killed, sent SIGTERM or stopped is replaced while the others serve and fails only what it held;
// /metrics, /health and maxRequests count every process's requests; unparsable requests, host
// paths and WebSockets are served alike through every process; SIGTERM drains them all and exits
// 0, also while they start; SIGKILL of the control plane leaves no process. The loads open a
// connection per request, so that every process gets some.
import { test, type TestContext } from 'node:test'
import { once } from 'node:events'
import assert from 'node:assert/strict'
import { readdirSync, readlinkSync } from 'node:fs'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { request } from 'undici'
import { WebSocket } from 'ws'
import { runCliToEnd, startCliServer } from '../helpers/cli.js'
import { clientFor } from '../helpers/host.js'
import { sendRaw } from '../helpers/raw-http.js'
import { startLoad } from '../helpers/load.js'
import { PORTS } from '../helpers/ports.js'
import { groupsLedBelow, killLeftoverGroups, liveMembers } from '../helpers/process-groups.js'
import { useProject } from '../helpers/project.js'
import { until, within } from '../helpers/wait.js'
import { defer } from '../helpers/cleanup.js'

interface Plane { pid: number, role: 'control' | 'data', requests: number, inflight: number }
interface Health { workers: Record<string, { instances: Array<{ pid: number, requests: number }> }>, dataPlanes?: Plane[] }

/** Processes whose working folder is in `root` (data planes run in the root, workers in their folders). */
function processesIn (root: string): number[] {
  return readdirSync('/proc').filter((entry) => /^\d+$/.test(entry)).map(Number).filter((pid) => {
    try {
      return readlinkSync(`/proc/${pid}/cwd`).startsWith(root)
    } catch {
      return false // gone, or not ours to read
    }
  })
}

/** Concurrent requests per load: each has at most one in flight. */
const CLIENTS = 8

async function startPlanes (t: TestContext, proxies: number, fixture = 'multi') {
  const root = await useProject(t, fixture)
  const server = await startCliServer(t, 'start', root, PORTS.dataPlanes, ['--proxies', String(proxies)])
  const groups = new Set<number>()
  killLeftoverGroups(t, server, groups)
  const serving = await server.logs.waitFor((line) => line.msg === 'data planes serving', 30_000, 'the data planes to serve')
  const fetch = clientFor(t, server.url)
  const health = async () => await (await fetch('/health')).body.json() as Health
  return { root, server, groups, health, dataPlanes: serving.dataPlanes as number[] }
}

/** Once every process serving the port has served a request (their counts arrive each second). */
function everyPlaneServed (health: () => Promise<Health>, count: number): Promise<Plane[]> {
  return until(15_000, `${count} processes each to serve requests`, async () => {
    const planes = (await health()).dataPlanes ?? []
    return planes.length === count && planes.every((plane) => plane.requests > 0) && planes
  })
}

for (const proxies of [2, 4]) {
  test(`with ${proxies} processes serving the port, a switch under load drops no request`, async (t) => {
    const { root, server, health } = await startPlanes(t, proxies)
    const load = startLoad(server.url, '/a', CLIENTS, { newConnections: true })
    defer(t, () => load.stop())
    await load.reached(1, 10_000)
    await writeFile(join(root, 'workers/a/src/version.ts'), 'export const VERSION = 2\n')
    assert.equal((await runCliToEnd(t, ['build', 'a'], { cwd: root })).code, 0)
    assert.match((await runCliToEnd(t, ['reload'], { cwd: root })).stdout, /switched a/)
    await load.reached(2, 10_000)
    await everyPlaneServed(health, proxies)
    const result = await load.stop()
    assert.deepEqual(result.failures, [])
    assert.ok(result.ok > 0)
  })
}

test('the old instance is stopped only once no data plane has a request in flight to it', async (t) => {
  const { root, server, health } = await startPlanes(t, 2, 'sdk')
  const inflightAt = async (role: Plane['role']) => (await health()).dataPlanes!.find((plane) => plane.role === role)!.inflight
  // A slow request that the data plane holds and the control plane does not: one that the control
  // plane took is given up and another sent, on a new connection.
  let held: Promise<number> | undefined
  for (let attempt = 0; held === undefined && attempt < 20; attempt++) {
    const abort = new AbortController()
    const answer = request(`${server.url}/app/slow?ms=4000`, { headers: { connection: 'close' }, signal: abort.signal })
      .then(async (res) => { await res.body.dump(); return res.statusCode }, () => 0)
    const where = await until(5000, 'the slow request to be counted', async () =>
      (await health()).dataPlanes!.find((plane) => plane.inflight > 0)?.role)
    if (where === 'data') held = answer
    else {
      abort.abort()
      await answer
      await until(5000, 'the control plane to hold nothing', async () => await inflightAt('control') === 0)
    }
  }
  assert.ok(held, 'a data plane held a slow request')
  const old = (await health()).workers.app!.instances[0]!.pid
  // A worker.yaml change restarts the worker's instances on reload: the switch.
  await writeFile(join(root, 'workers/app/worker.yaml'), 'env:\n  SWITCHED: "1"\n')
  assert.match((await runCliToEnd(t, ['reload'], { cwd: root })).stdout, /switched app/)
  assert.notEqual((await health()).workers.app!.instances[0]!.pid, old)
  assert.equal(await held, 200, 'the request the data plane held is answered')
})

for (const signal of ['SIGKILL', 'SIGTERM'] as const) {
  test(`a data plane sent ${signal} under load is replaced; the others keep serving`, async (t) => {
    const { server, health, dataPlanes } = await startPlanes(t, 3)
    const load = startLoad(server.url, '/a', CLIENTS, { newConnections: true })
    defer(t, () => load.stop())
    await everyPlaneServed(health, 3)
    const victim = dataPlanes[0]!
    process.kill(victim, signal)
    await server.logs.waitFor((line) => line.msg === 'data plane exited; starting another' && line.dataPlane === victim, 10_000, 'the control plane to see the data plane die')
    const planes = await everyPlaneServed(health, 3)
    assert.ok(!planes.some((plane) => plane.pid === victim), 'the killed data plane is not listed')
    // What fails went down with the killed process: its requests in flight, and the connections the
    // kernel had queued for it (SO_REUSEPORT gives each process a queue of its own). Nothing fails
    // once its replacement serves, and no failure is an error answer from the others.
    const { failures, ok } = load.tally()
    await until(10_000, 'answers after the replacement', () => load.tally().ok > ok + 200)
    const result = await load.stop()
    assert.deepEqual(result.failures, failures, 'no failure after the replacement')
    assert.ok(failures.every((failure) => /ECONNRESET|other side closed|socket/i.test(failure)), `only connections of the killed process fail: ${failures.join('; ')}`)
  })
}

test('a data plane that stops answering (SIGSTOP) is replaced', async (t) => {
  const { server, health, dataPlanes } = await startPlanes(t, 2)
  const frozen = dataPlanes[0]!
  process.kill(frozen, 'SIGSTOP')
  await server.logs.waitFor((line) => String(line.msg).startsWith('data plane sent nothing') && line.dataPlane === frozen, 20_000, 'the control plane to give up on the stopped data plane')
  // Connections the kernel had queued on the stopped process are reset with it: the load starts
  // once its replacement serves.
  await server.logs.waitFor((line) => line.msg === 'data plane exited; starting another' && line.dataPlane === frozen, 10_000, 'the stopped data plane to be killed')
  await until(10_000, 'a new data plane', async () => (await health()).dataPlanes?.some((plane) => plane.role === 'data' && plane.pid !== frozen))
  const load = startLoad(server.url, '/a', CLIENTS, { newConnections: true })
  defer(t, () => load.stop())
  await everyPlaneServed(health, 2)
  assert.deepEqual((await load.stop()).failures, [])
})

test('/metrics and /health count the requests of every process serving the port', async (t) => {
  const { server, health } = await startPlanes(t, 2)
  const fetch = clientFor(t, server.url)
  const sent = 300
  let next = 0
  await Promise.all(Array.from({ length: 10 }, async () => {
    while (next++ < sent) {
      const res = await request(`${server.url}/a/version`, { headers: { connection: 'close' } })
      assert.equal(res.statusCode, 200)
      await res.body.dump()
    }
  }))
  const planes = await everyPlaneServed(health, 2)
  const count = (text: string, series: RegExp) => Number(series.exec(text)?.[1])
  const text = await until(5000, 'the requests to be counted', async () => {
    const text = await (await fetch('/metrics')).body.text()
    return count(text, /^tqserver_requests_total\{worker="a",status_class="2xx"\} (\d+)$/m) === sent && text
  }).catch(() => '')
  assert.equal(count(text, /^tqserver_requests_total\{worker="a",status_class="2xx"\} (\d+)$/m), sent, '/metrics requests_total for a')
  assert.equal(count(text, /^tqserver_request_duration_seconds_count\{worker="a"\} (\d+)$/m), sent, '/metrics request_duration_seconds_count for a')
  assert.equal(count(text, /^tqserver_request_duration_seconds_bucket\{le="\+Inf",worker="a"\} (\d+)$/m), sent, 'the +Inf bucket for a')
  const report = await until(5000, '/health to count every request', async () => {
    const report = await health()
    return report.workers.a!.instances[0]!.requests === sent && report
  })
  assert.equal(report.dataPlanes!.reduce((sum, plane) => sum + plane.requests, 0), sent)
  assert.deepEqual(planes.map((plane) => plane.role), ['control', 'data'])
})

test('every process answers alike what Node cannot parse, and relays host paths without keeping connections', async (t) => {
  const { server, dataPlanes } = await startPlanes(t, 2)
  // Connections of their own: some reach the data plane, some the control plane.
  const answers = await Promise.all(Array.from({ length: 20 }, () =>
    sendRaw(t, server.url, [`GET /a/version HTTP/1.1\r\nHost: x\r\nX-Big: ${'b'.repeat(20_000)}\r\n\r\n`])))
  for (const answer of answers) assert.match(answer, /^HTTP\/1\.1 431 [\s\S]*\r\n\r\n\{"error":"Request Header Fields Too Large","message":"Exceeded maximum allowed HTTP header size","statusCode":431\}$/)
  // Host paths a data plane relays: each on a connection that ends with its answer.
  const fetch = clientFor(t, server.url)
  for (let i = 0; i < 100; i++) await (await fetch('/livez', { headers: { connection: 'close' } })).body.dump()
  const sockets = (pid: number) => readdirSync(`/proc/${pid}/fd`).filter((fd) => {
    try {
      return readlinkSync(`/proc/${pid}/fd/${fd}`).startsWith('socket:')
    } catch {
      return false
    }
  }).length
  await until(5000, 'the relayed connections to close', () => sockets(dataPlanes[0]!) < 20)
})

test('maxRequests counts the requests of every process: the instance is recycled on the total', async (t) => {
  const root = await useProject(t, 'multi', { 'workers/a/worker.yaml': 'maxRequests: 100\n' })
  const server = await startCliServer(t, 'start', root, PORTS.dataPlanes, ['--proxies', '2'])
  await server.logs.waitFor((line) => line.msg === 'data planes serving', 30_000, 'the data planes to serve')
  // 150 requests on connections of their own: neither process alone serves 100 of them.
  let next = 0
  await Promise.all(Array.from({ length: 5 }, async () => {
    while (next++ < 150) await (await request(`${server.url}/a/version`, { headers: { connection: 'close' } })).body.dump()
  }))
  const events = async () => (await (await request(`${server.url}/health`)).body.json() as { events: Array<{ type: string, worker: string | null, message: string }> }).events
  await until(10_000, 'a to be recycled', async () => (await events()).some((event) => event.type === 'replaced' && event.worker === 'a' && event.message.includes('served its maxRequests')))
})

test('WebSockets reach the worker through every process', async (t) => {
  const root = await useProject(t, 'websocket', {}, ['ws'])
  const server = await startCliServer(t, 'start', root, PORTS.dataPlanes, ['--proxies', '2'])
  await server.logs.waitFor((line) => line.msg === 'data planes serving', 30_000, 'the data planes to serve')
  const url = `${server.url.replace('http', 'ws')}/app/ws?room=1`
  // Connections of their own: some upgrades reach the data plane, which relays them to the control plane.
  const sockets = await Promise.all(Array.from({ length: 10 }, async () => {
    const socket = new WebSocket(url)
    defer(t, () => socket.terminate())
    const [greeting] = await within(5000, 'a greeting', once(socket, 'message')) as [Buffer]
    assert.deepEqual((JSON.parse(greeting.toString()) as { url: string, prefix: string }).prefix, '/app')
    socket.send('hello')
    assert.equal(String((await within(5000, 'an echo', once(socket, 'message')))[0]), 'echo hello')
    return socket
  }))
  assert.equal(sockets.length, 10)
})

test('SIGTERM drains every process and exits 0', async (t) => {
  const { server, groups, dataPlanes } = await startPlanes(t, 3)
  for (const group of groupsLedBelow(server.child.pid!)) groups.add(group)
  const load = startLoad(server.url, '/a', CLIENTS, { newConnections: true })
  defer(t, () => load.stop())
  await load.reached(1, 10_000)
  server.child.kill('SIGTERM')
  const { code } = await within(30_000, 'the server to exit', server.exited)
  assert.equal(code, 0)
  await load.stop()
  assert.deepEqual(liveMembers([...groups, ...dataPlanes]), [])
})

test('SIGTERM as the server starts to listen, while its data planes start, exits 0 and leaves no process', async (t) => {
  const root = await useProject(t, 'multi')
  const server = await startCliServer(t, 'start', root, PORTS.dataPlanes, ['--proxies', '3'], { wait: false })
  server.child.kill('SIGTERM')
  assert.equal((await within(30_000, 'the server to exit', server.exited)).code, 0)
  await until(5000, 'no process left in the project', () => processesIn(root).length === 0)
    .catch((err: Error) => { throw new Error(`${err.message}; still running: ${processesIn(root).join(', ')}`) })
})

test('SIGKILL of the control plane leaves no process behind', async (t) => {
  const { server, groups, dataPlanes } = await startPlanes(t, 3)
  for (const group of groupsLedBelow(server.child.pid!)) groups.add(group)
  assert.ok(dataPlanes.every((pid) => groups.has(pid)), 'each data plane leads a group of its own')
  server.child.kill('SIGKILL')
  await within(5000, 'the control plane to die', server.exited)
  await until(5000, 'every data plane and worker to be gone', () => liveMembers(groups).length === 0)
    .catch((err: Error) => { throw new Error(`${err.message}; still running: ${liveMembers(groups).join(', ')}`) })
})
