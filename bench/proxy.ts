// Proxy overhead: the same trivial JSON worker served directly, through tqserver, and through nginx
// and HAProxy when installed (Debian: apt-get install wrk nginx-light haproxy). Server processes
// are pinned to CPU 0 and wrk to CPU 1; rounds are interleaved. Reports req/s, p50/p99 latency,
// the ratio to direct, and the CPU each process spent per request (from /proc), with 50
// connections and with 1. Run: npm run bench:proxy [-- rounds seconds]
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { cp, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises'
import { cpus, tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { request } from 'undici'
import { median } from './stats.js'

const ROUNDS = Number(process.argv[2] ?? 5)
const SECONDS = Number(process.argv[3] ?? 5)
const repo = fileURLToPath(new URL('../../', import.meta.url))
const has = (command: string) => spawnSync('sh', ['-c', `command -v ${command}`]).status === 0

interface Target { name: string, url: string, pids: () => number[], workerPid?: number }
interface Run { rps: number, p50: number, p99: number, cpuUs: Record<string, number> }

async function main (): Promise<void> {
  if (!has('wrk')) throw new Error('wrk is missing: apt-get install wrk')
  const root = await mkdtemp(join(tmpdir(), 'tq-bench-proxy-'))
  await mkdir(join(root, 'workers', 'hello', 'src'), { recursive: true })
  await writeFile(join(root, 'workers/hello/src/main.ts'),
    "import { serve } from 'tqserver/worker'\nawait serve(async (app) => { app.get('/hello', async () => ({ hello: 'world' })) })\n")
  await mkdir(join(root, 'node_modules'))
  await symlink(repo, join(root, 'node_modules', 'tqserver'), 'dir')
  const children: ChildProcess[] = []
  const pinned = (command: string, args: string[], options: { cwd?: string } = {}) => {
    const child = spawn('taskset', ['-c', '0', command, ...args], { ...options, stdio: ['ignore', 'pipe', 'inherit'] })
    children.push(child)
    return child
  }

  try {
    // `tqserver start` pinned to CPU 0; resolves with its URL once it listens.
    const startTqserver = (args: string[]) => {
      const child = pinned(process.execPath, [join(repo, 'dist/src/cli/main.js'), 'start', '--port', '0', ...args], { cwd: root })
      return new Promise<{ child: ChildProcess, url: string }>((resolve) => {
        let out = ''
        child.stdout!.on('data', (chunk: Buffer) => {
          out += chunk.toString()
          const match = /"url":"([^"]+)","mode"/.exec(out)
          if (match) resolve({ child, url: match[1]! })
        })
      })
    }
    const { child: host, url: hostUrl } = await startTqserver(['--worker-ports', '36000-36099'])
    // The same project served with connection hand-off (its own worker process, same code).
    await writeFile(join(root, 'handoff.yaml'), 'handoff: true\n')
    const { child: handoffHost, url: handoffUrl } = await startTqserver(['--worker-ports', '36400-36499', '--config', 'handoff.yaml'])
    const handoffHealth = await (await request(`${handoffUrl}/health`)).body.json() as { workers: { hello: { instances: Array<{ pid: number }> } } }
    const health = await (await request(`${hostUrl}/health`)).body.json() as { workers: { hello: { instances: Array<{ pid: number, port: number }> } } }
    const worker = health.workers.hello.instances[0]!
    const direct = `http://127.0.0.1:${worker.port}`
    const targets: Target[] = [
      { name: 'direct', url: `${direct}/hello`, pids: () => [] },
      // The worker is served at /hello, and its route is /hello: /hello/hello through the host.
      { name: 'tqserver', url: `${hostUrl}/hello/hello`, pids: () => [host.pid!] },
      { name: 'tqserver hand-off', url: `${handoffUrl}/hello/hello`, pids: () => [handoffHost.pid!], workerPid: handoffHealth.workers.hello.instances[0]!.pid }
    ]
    // The floor: a bare node:http + undici proxy (bench/bare-proxy.ts), none of tqserver's work.
    const bare = pinned(process.execPath, [join(repo, 'dist/bench/bare-proxy.js'), String(worker.port), '26103'])
    await waitForPort(26103)
    targets.push({ name: 'bare Node proxy', url: 'http://127.0.0.1:26103', pids: () => [bare.pid!] })
    if (has('nginx')) targets.push(await startNginx(root, worker.port, pinned))
    else console.log('nginx not installed: apt-get install nginx-light')
    if (has('haproxy')) targets.push(await startHaproxy(root, worker.port, pinned))
    else console.log('haproxy not installed: apt-get install haproxy')
    for (const target of targets) if (!target.url.endsWith('/hello')) target.url = `${target.url}/hello`

    for (const connections of [50, 1]) {
      const runs = new Map<string, Run[]>(targets.map((target) => [target.name, []]))
      for (const target of targets) runWrk(target, 2, connections, worker.pid) // warm up
      for (let round = 0; round < ROUNDS; round++) {
        const order = [...targets.slice(round % targets.length), ...targets.slice(0, round % targets.length)]
        for (const target of order) runs.get(target.name)!.push(runWrk(target, SECONDS, connections, worker.pid))
      }
      report(connections, runs)
    }
  } finally {
    for (const child of children) child.kill('SIGTERM')
    await Promise.all(children.map((child) => child.exitCode === null ? new Promise((resolve) => child.once('exit', resolve)) : undefined))
    await rm(root, { recursive: true, force: true })
  }
}

function runWrk (target: Target, seconds: number, connections: number, workerPid: number): Run {
  const pids: Record<string, number[]> = { worker: [target.workerPid ?? workerPid], proxy: target.pids() }
  const before = Object.fromEntries(Object.entries(pids).map(([name, list]) => [name, cpuTicks(list)]))
  const out = execFileSync('taskset', ['-c', '1', 'wrk', '-t1', `-c${connections}`, `-d${seconds}s`, '--latency', target.url], { encoding: 'utf8' })
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)![1])
  const requests = rps * seconds
  const cpuUs = Object.fromEntries(Object.entries(pids).map(([name, list]) => [name, ((cpuTicks(list) - before[name]!) * 10_000) / requests]))
  const latency = (p: string) => toMs(new RegExp(`^\\s+${p}%\\s+([\\d.]+)(us|ms|s)`, 'm').exec(out)!)
  const errors = /Non-2xx or 3xx responses: (\d+)|Socket errors: .*/.exec(out)
  if (errors) console.log(`  ${target.name}: ${errors[0]}`)
  return { rps, p50: latency('50'), p99: latency('99'), cpuUs }
}

function toMs (match: RegExpExecArray): number {
  const value = Number(match[1])
  return match[2] === 'us' ? value / 1000 : match[2] === 's' ? value * 1000 : value
}

/** utime + stime of the processes (and their threads), in clock ticks (100 per second). */
function cpuTicks (pids: number[]): number {
  let total = 0
  for (const pid of pids) {
    try {
      const stat = execFileSync('cat', [`/proc/${pid}/stat`], { encoding: 'utf8' })
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      total += Number(fields[11]) + Number(fields[12])
    } catch {}
  }
  return total
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
  const pids = () => {
    const children = spawnSync('pgrep', ['-P', String(nginx.pid)], { encoding: 'utf8' }).stdout.trim().split('\n').filter(Boolean).map(Number)
    const master = spawnSync('pgrep', ['-P', String(children[0] ?? 0)], { encoding: 'utf8' }).stdout.trim().split('\n').filter(Boolean).map(Number)
    return [...children, ...master]
  }
  return { name: 'nginx', url: `http://127.0.0.1:${listen}`, pids }
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
  const pids = () => [haproxy.pid!, ...spawnSync('pgrep', ['-P', String(haproxy.pid)], { encoding: 'utf8' }).stdout.trim().split('\n').filter(Boolean).map(Number)]
  return { name: 'HAProxy', url: `http://127.0.0.1:${listen}`, pids }
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
    const proxyCpu = name === 'direct' ? '—' : median(list.map((run) => run.cpuUs.proxy!)).toFixed(1)
    console.log(`| ${name} | ${rps.toFixed(0)} | ${(rps / direct).toFixed(2)} | ${median(list.map((run) => run.p50)).toFixed(2)} | ${median(list.map((run) => run.p99)).toFixed(2)} | ${proxyCpu} | ${median(list.map((run) => run.cpuUs.worker!)).toFixed(1)} |`)
  }
}

console.log(`tqserver proxy benchmark: node ${process.version}, ${cpus().length} x ${cpus()[0]?.model ?? 'cpu'}; servers on CPU 0, wrk on CPU 1`)
await main()
