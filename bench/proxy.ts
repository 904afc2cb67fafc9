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
import { type ChildProcess } from 'node:child_process'
import { mkdir, rm, writeFile } from 'node:fs/promises'
import { cpus } from 'node:os'
import { join } from 'node:path'
import { request } from 'undici'
import { processTree, rssMb } from './process-info.js'
import { has, makeHelloProject, pinnedSpawner, repo, runWrk, startTqserver, stopAll, waitForPort, type Run, type Target } from './servers.js'
import { median } from './stats.js'

const ROUNDS = Number(process.argv[2] ?? 5)
const SECONDS = Number(process.argv[3] ?? 5)

async function main (): Promise<void> {
  if (!has('wrk')) throw new Error('wrk is missing: apt-get install wrk')
  const root = await makeHelloProject('tq-bench-proxy-')
  await writeFile(join(root, 'handoff.yaml'), 'handoff: true\n')
  const children: ChildProcess[] = []
  const pinned = pinnedSpawner(children)

  try {
    // `tqserver start` pinned to CPU 0 (its worker inherits the pinning).
    const { child: host, log, url: frontUrl, worker } = await startTqserver(pinned, root, ['--worker-ports', '31000-31099', '--config', 'handoff.yaml'])
    // With hand-off the host's Fastify server listens on a loopback port of its own; the front
    // passes it what it does not hand off. Its line is the one without a worker field.
    const listening = await log.waitFor((line) => line.worker === undefined && String(line.msg).startsWith('Server listening at '), 1000, "the host's own HTTP server")
    const defaultUrl = String(listening.msg).slice('Server listening at '.length)
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
      const server = await startTqserver(pinned, root, ['--worker-ports', ports, '--proxies', String(proxies)])
      const name = `tqserver default, \`proxies: ${proxies}\``
      planes.push({ name, pids: server.pids })
      targets.push({ name, url: `${server.url}/hello/hello`, proxyPids: () => server.pids, workerPid: server.worker.pid })
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
    await stopAll(children)
    await rm(root, { recursive: true, force: true })
  }
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
