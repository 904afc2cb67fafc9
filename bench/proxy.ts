// Proxy overhead: one trivial JSON worker process served directly, through tqserver's default path,
// through tqserver's connection hand-off, through a bare Node proxy, and through nginx and HAProxy
// when installed (Debian: apt-get install wrk nginx-light haproxy). Every target reaches the same
// worker process: one `tqserver start` with `handoff: true` runs it; its front port hands
// connections off, and its own HTTP server (the one the front passes everything else to, on a
// loopback port that Fastify logs as "Server listening at") runs the default path, the same code a
// host without hand-off runs; direct, the bare proxy, nginx and HAProxy use the worker's port.
// Server processes are pinned to CPU 0 and wrk to CPU 1; rounds are interleaved. Reports req/s,
// p50/p99 latency, the ratio to direct, and the CPU per request (from /proc) of the worker and of
// each proxy, counting all of its processes (nginx's master and worker; for tqserver the host
// process, whose one child is the worker, counted apart), with 50 connections and with 1.
// Two more `tqserver start` servers in the same project, with worker processes of their own, serve
// the default path with `proxies: 1` and `proxies: 2` (the host and one data plane, both on CPU 0
// too, so the throughput cannot grow: their CPU per request, summed over both, is the figure), and
// the memory of each process is printed after the runs.
// Run: npm run bench:proxy [-- rounds seconds]
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises'
import { cpus, tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { request } from 'undici'
import { LogRecorder } from '../test/helpers/logs.js'
import { cpuTicks, processTree, rssMb, TICKS_PER_SECOND } from './process-info.js'
import { median } from './stats.js'

const ROUNDS = Number(process.argv[2] ?? 5)
const SECONDS = Number(process.argv[3] ?? 5)
const repo = fileURLToPath(new URL('../../', import.meta.url))
const has = (command: string) => spawnSync('sh', ['-c', `command -v ${command}`]).status === 0

/** `proxyPids`: every process of the proxy, read before each run (nginx forks its worker); `workerPid`: when not the shared worker. */
interface Target { name: string, url: string, proxyPids: () => number[], workerPid?: number }
interface Run { rps: number, p50: number, p99: number, cpuUs: { proxy: number, worker: number } }

async function main (): Promise<void> {
  if (!has('wrk')) throw new Error('wrk is missing: apt-get install wrk')
  const root = await mkdtemp(join(tmpdir(), 'tq-bench-proxy-'))
  await mkdir(join(root, 'workers', 'hello', 'src'), { recursive: true })
  await writeFile(join(root, 'workers/hello/src/main.ts'),
    "import { serve } from 'tqserver/worker'\nawait serve(async (app) => { app.get('/hello', async () => ({ hello: 'world' })) })\n")
  await mkdir(join(root, 'node_modules'))
  await symlink(repo, join(root, 'node_modules', 'tqserver'), 'dir')
  await writeFile(join(root, 'handoff.yaml'), 'handoff: true\n')
  const children: ChildProcess[] = []
  const pinned = (command: string, args: string[], options: { cwd?: string } = {}) => {
    const child = spawn('taskset', ['-c', '0', command, ...args], { ...options, stdio: ['ignore', 'pipe', 'inherit'] })
    children.push(child)
    return child
  }

  try {
    // `tqserver start` pinned to CPU 0 (its worker inherits the pinning). taskset execs node: the
    // child's pid is the host's.
    const host = pinned(process.execPath, [join(repo, 'dist/src/cli/main.js'), 'start', '--port', '0', '--worker-ports', '31000-31099', '--config', 'handoff.yaml'], { cwd: root })
    const log = new LogRecorder()
    host.stdout!.on('data', (chunk: Buffer) => log.write(chunk))
    const frontUrl = String((await log.waitFor((line) => line.msg === 'tqserver listening', 60_000, 'tqserver listening')).url)
    // The host listens before its workers serve.
    await log.waitFor((line) => line.msg === 'workers started', 60_000, 'the worker to serve')
    // With hand-off the host's Fastify server listens on a loopback port of its own; the front
    // passes it what it does not hand off. Its line is the one without a worker field.
    const listening = await log.waitFor((line) => line.worker === undefined && String(line.msg).startsWith('Server listening at '), 1000, "the host's own HTTP server")
    const defaultUrl = String(listening.msg).slice('Server listening at '.length)
    const health = await (await request(`${frontUrl}/health`)).body.json() as { workers: { hello: { instances: Array<{ pid: number, port: number }> } } }
    const worker = health.workers.hello.instances[0]!
    const direct = `http://127.0.0.1:${worker.port}`
    const targets: Target[] = [
      { name: 'direct', url: `${direct}/hello`, proxyPids: () => [] },
      // The worker is served at /hello, and its route is /hello: /hello/hello through the host.
      { name: 'tqserver (default)', url: `${defaultUrl}/hello/hello`, proxyPids: () => [host.pid!] },
      { name: 'tqserver, `handoff: true`', url: `${frontUrl}/hello/hello`, proxyPids: () => [host.pid!] }
    ]
    // The floor: a bare node:http + undici proxy (bench/bare-proxy.ts), none of tqserver's work.
    const bare = pinned(process.execPath, [join(repo, 'dist/bench/bare-proxy.js'), String(worker.port), '26103'])
    await waitForPort(26103)
    targets.push({ name: 'bare Node proxy (floor)', url: 'http://127.0.0.1:26103/hello', proxyPids: () => processTree(bare.pid!) })
    // The default path on the public port, served by one process and by two.
    const planes: Array<{ name: string, pids: number[] }> = []
    for (const [proxies, ports] of [[1, '31100-31199'], [2, '31200-31299']] as const) {
      const server = pinned(process.execPath, [join(repo, 'dist/src/cli/main.js'), 'start', '--port', '0', '--worker-ports', ports, '--proxies', String(proxies)], { cwd: root })
      const serverLog = new LogRecorder()
      server.stdout!.on('data', (chunk: Buffer) => serverLog.write(chunk))
      const url = String((await serverLog.waitFor((line) => line.msg === 'tqserver listening', 60_000, 'tqserver listening')).url)
      await serverLog.waitFor((line) => line.msg === 'workers started', 60_000, 'the worker to serve')
      const dataPlanes = proxies === 1 ? [] : (await serverLog.waitFor((line) => line.msg === 'data planes serving', 30_000, 'the data planes')).dataPlanes as number[]
      const own = await (await request(`${url}/health`)).body.json() as { workers: { hello: { instances: Array<{ pid: number }> } } }
      const pids = [server.pid!, ...dataPlanes]
      const name = `tqserver default, \`proxies: ${proxies}\``
      planes.push({ name, pids })
      targets.push({ name, url: `${url}/hello/hello`, proxyPids: () => pids, workerPid: own.workers.hello.instances[0]!.pid })
    }
    if (has('nginx')) targets.push(await startNginx(root, worker.port, pinned))
    else console.log('nginx not installed: apt-get install nginx-light')
    if (has('haproxy')) targets.push(await startHaproxy(root, worker.port, pinned))
    else console.log('haproxy not installed: apt-get install haproxy')
    for (const target of targets) {
      const answer = await request(target.url)
      const body = await answer.body.text()
      if (answer.statusCode !== 200) throw new Error(`${target.name}: ${target.url} answered ${answer.statusCode} ${body}`)
    }
    console.log(`every target but the \`proxies:\` ones reaches worker pid ${worker.pid} (port ${worker.port}); tqserver host pid ${host.pid}`)

    for (const connections of [50, 1]) {
      const runs = new Map<string, Run[]>(targets.map((target) => [target.name, []]))
      for (const target of targets) runWrk(target, 2, connections, worker.pid) // warm up
      for (let round = 0; round < ROUNDS; round++) {
        const order = [...targets.slice(round % targets.length), ...targets.slice(0, round % targets.length)]
        for (const target of order) runs.get(target.name)!.push(runWrk(target, SECONDS, connections, worker.pid))
      }
      report(connections, runs)
    }
    for (const { name, pids } of planes) console.log(`${name}: RSS ${pids.map((pid, i) => `${i === 0 ? 'host' : 'data plane'} ${rssMb(pid).toFixed(1)} MB`).join(', ')}`)
  } finally {
    for (const child of children) child.kill('SIGTERM')
    await Promise.all(children.map((child) => child.exitCode === null ? new Promise((resolve) => child.once('exit', resolve)) : undefined))
    await rm(root, { recursive: true, force: true })
  }
}

function runWrk (target: Target, seconds: number, connections: number, workerPid: number): Run {
  const proxyPids = target.proxyPids()
  if (target.workerPid !== undefined) workerPid = target.workerPid
  const before = { proxy: cpuTicks(proxyPids), worker: cpuTicks([workerPid]) }
  const out = execFileSync('taskset', ['-c', '1', 'wrk', '-t1', `-c${connections}`, `-d${seconds}s`, '--latency', target.url], { encoding: 'utf8' })
  const after = { proxy: cpuTicks(proxyPids), worker: cpuTicks([workerPid]) }
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)![1])
  const requests = rps * seconds
  const usPerRequest = (ticks: number) => (ticks * (1_000_000 / TICKS_PER_SECOND)) / requests
  const latency = (p: string) => toMs(new RegExp(`^\\s+${p}%\\s+([\\d.]+)(us|ms|s)`, 'm').exec(out)!)
  const errors = /Non-2xx or 3xx responses: (\d+)|Socket errors: .*/.exec(out)
  if (errors) console.log(`  ${target.name}: ${errors[0]}`)
  return { rps, p50: latency('50'), p99: latency('99'), cpuUs: { proxy: usPerRequest(after.proxy - before.proxy), worker: usPerRequest(after.worker - before.worker) } }
}

function toMs (match: RegExpExecArray): number {
  const value = Number(match[1])
  return match[2] === 'us' ? value / 1000 : match[2] === 's' ? value * 1000 : value
}

async function startNginx (root: string, port: number, pinned: (command: string, args: string[]) => ChildProcess): Promise<Target> {
  const dir = join(root, 'nginx')
  await mkdir(dir)
  const listen = 26101
  await writeFile(join(dir, 'nginx.conf'), `worker_processes 1;
daemon off;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log;
events { worker_connections 1024; }
http {
  access_log off;
  upstream worker { server 127.0.0.1:${port}; keepalive 64; }
  server {
    listen 127.0.0.1:${listen};
    location / { proxy_pass http://worker; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
`)
  const nginx = pinned('nginx', ['-c', join(dir, 'nginx.conf'), '-p', dir])
  await waitForPort(listen)
  // taskset execs nginx: the child is nginx's master, and its worker is the master's child.
  return { name: 'nginx', url: `http://127.0.0.1:${listen}/hello`, proxyPids: () => processTree(nginx.pid!) }
}

async function startHaproxy (root: string, port: number, pinned: (command: string, args: string[]) => ChildProcess): Promise<Target> {
  const dir = join(root, 'haproxy')
  await mkdir(dir)
  const listen = 26102
  await writeFile(join(dir, 'haproxy.cfg'), `global
  nbthread 1
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  http-reuse always
frontend front
  bind 127.0.0.1:${listen}
  default_backend worker
backend worker
  server w1 127.0.0.1:${port}
`)
  const haproxy = pinned('haproxy', ['-f', join(dir, 'haproxy.cfg'), '-db'])
  await waitForPort(listen)
  return { name: 'HAProxy', url: `http://127.0.0.1:${listen}/hello`, proxyPids: () => processTree(haproxy.pid!) }
}

async function waitForPort (port: number): Promise<void> {
  for (let i = 0; i < 200; i++) {
    try {
      await (await request(`http://127.0.0.1:${port}/hello`)).body.dump()
      return
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 25))
    }
  }
  throw new Error(`nothing listens on ${port}`)
}

function report (connections: number, runs: Map<string, Run[]>): void {
  const direct = median(runs.get('direct')!.map((run) => run.rps))
  console.log(`\n${connections} connection${connections === 1 ? '' : 's'}, ${ROUNDS} rounds of ${SECONDS} s, medians:`)
  console.log('| path | req/s | ratio to direct | p50 ms | p99 ms | proxy CPU µs/req | worker CPU µs/req |')
  console.log('| --- | --- | --- | --- | --- | --- | --- |')
  for (const [name, list] of runs) {
    const rps = median(list.map((run) => run.rps))
    const proxyCpu = name === 'direct' ? '—' : median(list.map((run) => run.cpuUs.proxy)).toFixed(1)
    console.log(`| ${name} | ${rps.toFixed(0)} | ${(rps / direct).toFixed(2)} | ${median(list.map((run) => run.p50)).toFixed(2)} | ${median(list.map((run) => run.p99)).toFixed(2)} | ${proxyCpu} | ${median(list.map((run) => run.cpuUs.worker)).toFixed(1)} |`)
  }
}

console.log(`tqserver proxy benchmark: node ${process.version}, ${cpus().length} x ${cpus()[0]?.model ?? 'cpu'}; servers on CPU 0, wrk on CPU 1`)
await main()
