// HTTPS and HTTP/2 at the edge: tqserver's public port with TLS against nginx, with the same
// certificate (a self-signed EC P-256 one, made with openssl) in front of the same worker process,
// and tqserver's plain-HTTP default path in the same run, so that the CPU a request costs the host
// over HTTPS is compared with what it costs over plain HTTP on the same machine at the same time.
// Needs wrk, h2load (Debian: nghttp2-client), openssl and nginx (nginx-light or nginx).
// - HTTP/1.1: wrk, keep-alive, 50 connections, one thread: plain and HTTPS, tqserver and nginx.
// - HTTP/2: h2load, 10 connections of 10 streams each (-c10 -m10): tqserver and nginx. p50/p99
//   come from h2load's per-request log (its summary gives none).
// - Handshakes: `openssl s_time -new` (a full handshake per connection) and `-reuse` (the session
//   of the first one resumed), TLS 1.3 and TLS 1.2, one connection at a time, one request on each.
// tqserver runs with `proxies: 1` (the default path, as bench:proxy's `proxies: 1` row; pinned to
// one CPU, `auto` would choose 1 too). Its TLS server's worker is the one nginx proxies to (upstream
// keep-alive); the plain server has a worker process of its own. Server processes are pinned to
// CPU 0, the clients to CPU 1; runs are interleaved round by round; medians. CPU per request (or
// per handshake) is read from /proc for the host process (nginx: master and worker) and for the
// worker process. Every run is bounded in time; everything listens on 127.0.0.1.
// Run: npm run bench:tls [-- rounds seconds]
import { execFileSync, type ChildProcess } from 'node:child_process'
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises'
import { cpus } from 'node:os'
import { join } from 'node:path'
import { Agent, request } from 'undici'
import { makeCertificate } from '../test/helpers/certificates.js'
import { h1Request, h2Request } from '../test/helpers/tls-client.js'
import { cpuTicks, processTree } from './process-info.js'
import { has, makeHelloProject, pinnedSpawner, runWrk, startTqserver, stopAll, usPerRequest, waitForPort, type Pinned, type Target } from './servers.js'
import { median, percentile } from './stats.js'

const ROUNDS = Number(process.argv[2] ?? 5)
const SECONDS = Number(process.argv[3] ?? 5)
const NGINX_PLAIN = 26111
const NGINX_TLS = 26112

/** One measurement: a rate (requests or handshakes per second) and the CPU each one cost. */
interface Measure { rate: number, p50?: number, p99?: number, proxyUs: number, workerUs: number, failed?: number, resumed?: number }
interface Job { table: 'h1' | 'h2' | 'handshake', name: string, run: () => Measure }

async function main (): Promise<void> {
  for (const tool of ['wrk', 'h2load', 'openssl', 'nginx']) if (!has(tool)) throw new Error(`${tool} is missing: apt-get install wrk nghttp2-client openssl nginx-light`)
  const root = await makeHelloProject('tq-bench-tls-')
  const cert = join(root, 'tls', 'cert.pem')
  const key = join(root, 'tls', 'key.pem')
  const { cert: ca } = await makeCertificate(cert, key)
  const dispatcher = new Agent({ connect: { ca } })
  const children: ChildProcess[] = []
  const pinned = pinnedSpawner(children)
  try {
    const plain = await startTqserver(pinned, root, ['--worker-ports', '31300-31399', '--proxies', '1'])
    const tls = await startTqserver(pinned, root, ['--worker-ports', '31400-31499', '--proxies', '1', '--tls-cert', cert, '--tls-key', key], dispatcher)
    const tlsPort = Number(new URL(tls.url).port)
    const nginx = await startNginx(root, tls.worker.port, cert, key, pinned)
    const tqPids = () => tls.pids
    const nginxPids = () => processTree(nginx.pid!)
    const h1: Target[] = [
      { name: 'tqserver, plain HTTP (default path)', url: `${plain.url}/hello/hello`, proxyPids: () => plain.pids, workerPid: plain.worker.pid },
      { name: 'tqserver, HTTPS/1.1', url: `${tls.url}/hello/hello`, proxyPids: tqPids },
      { name: 'nginx, plain HTTP', url: `http://127.0.0.1:${NGINX_PLAIN}/hello`, proxyPids: nginxPids },
      { name: 'nginx, HTTPS/1.1', url: `https://127.0.0.1:${NGINX_TLS}/hello`, proxyPids: nginxPids }
    ]
    await check(h1, tls.url, ca, dispatcher)
    console.log(`tqserver plain: host pid ${plain.pids[0]}, worker pid ${plain.worker.pid}; tqserver TLS: host pid ${tls.pids[0]}, worker pid ${tls.worker.pid} (port ${tls.worker.port}), which nginx (pid ${nginx.pid}) proxies to`)
    for (const [name, port] of [['tqserver', tlsPort], ['nginx', NGINX_TLS]] as const) console.log(`${name}: ${negotiated(port)}`)

    const jobs: Job[] = h1.map((target) => ({ table: 'h1', name: target.name, run: () => wrk(target, tls.worker.pid) }))
    for (const [name, url, pids] of [['tqserver, HTTP/2', `${tls.url}/hello/hello`, tqPids], ['nginx, HTTP/2', `https://127.0.0.1:${NGINX_TLS}/hello`, nginxPids]] as const) {
      jobs.push({ table: 'h2', name, run: () => h2load(url, pids(), tls.worker.pid, join(root, 'h2load.log')) })
    }
    for (const [name, url, pids] of [['tqserver', `${tls.url}/hello/hello`, tqPids], ['nginx', `https://127.0.0.1:${NGINX_TLS}/hello`, nginxPids]] as const) {
      for (const version of ['1.3', '1.2'] as const) {
        for (const mode of ['new', 'reuse'] as const) {
          jobs.push({ table: 'handshake', name: `${name}, TLS ${version}, ${mode === 'new' ? 'full' : 'resumed'}`, run: () => sTime(url, version, mode, pids()) })
        }
      }
    }
    for (const job of jobs) if (job.table !== 'handshake') job.run() // warm up
    const results = new Map<string, Measure[]>(jobs.map((job) => [job.name, []]))
    for (let round = 0; round < ROUNDS; round++) {
      const order = [...jobs.slice(round % jobs.length), ...jobs.slice(0, round % jobs.length)]
      for (const job of order) results.get(job.name)!.push(job.run())
      console.log(`round ${round + 1} of ${ROUNDS} done`)
    }
    report(jobs, results)
  } finally {
    await stopAll(children)
    const errors = (await readFile(join(root, 'nginx', 'error.log'), 'utf8').catch(() => '')).split('\n').filter((line) => /\[(error|crit|alert|emerg)\]/.test(line))
    if (errors.length > 0) console.log(`nginx logged ${errors.length} errors, the last: ${errors.at(-1)}`)
    await dispatcher.close()
    await rm(root, { recursive: true, force: true })
  }
}

/** Every target answers 200 over the protocol it is measured with. */
async function check (h1: Target[], tlsUrl: string, ca: string, dispatcher: Agent): Promise<void> {
  for (const target of h1) {
    const answer = await request(target.url, { dispatcher })
    const body = await answer.body.text()
    if (answer.statusCode !== 200) throw new Error(`${target.name}: ${target.url} answered ${answer.statusCode} ${body}`)
  }
  for (const [url, path] of [[tlsUrl, '/hello/hello'], [`https://127.0.0.1:${NGINX_TLS}`, '/hello']] as const) {
    const answer = await h2Request(url, path, ca)
    if (answer.status !== 200) throw new Error(`HTTP/2 ${url}${path} answered ${answer.status} ${answer.body}`)
    if ((await h1Request(url, path, ca)).status !== 200) throw new Error(`HTTPS/1.1 ${url}${path} failed`)
  }
}

/** What a client offering h2 and http/1.1 gets: TLS version, cipher, key exchange group, ALPN. */
function negotiated (port: number): string {
  const out = execFileSync('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-alpn', 'h2,http/1.1'], { encoding: 'utf8', input: '', timeout: 10_000, stdio: ['pipe', 'pipe', 'ignore'] })
  const field = (pattern: RegExp) => pattern.exec(out)?.[1]?.trim() ?? '?'
  return `${field(/New, (TLSv[\d.]+), Cipher is (\S+)/)} ${field(/Cipher is (\S+)/)}, key exchange ${field(/Server Temp Key: ([^\n]+)/)}, ALPN ${field(/ALPN protocol: (\S+)/)}`
}

function wrk (target: Target, workerPid: number): Measure {
  const run = runWrk(target, SECONDS, 50, workerPid)
  return { rate: run.rps, p50: run.p50, p99: run.p99, proxyUs: run.cpuUs.proxy, workerUs: run.cpuUs.worker }
}

/** h2load on CPU 1 for SECONDS: 10 connections, 10 streams each. */
function h2load (url: string, proxyPids: number[], workerPid: number, logFile: string): Measure {
  const before = { proxy: cpuTicks(proxyPids), worker: cpuTicks([workerPid]) }
  const out = execFileSync('taskset', ['-c', '1', 'h2load', '-t1', '-c10', '-m10', `-D${SECONDS}`, `--log-file=${logFile}`, url],
    { encoding: 'utf8', timeout: (SECONDS + 30) * 1000, maxBuffer: 16 << 20 })
  const after = { proxy: cpuTicks(proxyPids), worker: cpuTicks([workerPid]) }
  const [, done, succeeded] = /requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded/.exec(out)!.map(Number) as [number, number, number]
  const rate = Number(/finished in [\d.]+m?s, ([\d.]+) req\/s/.exec(out)![1])
  // Each line: start (µs since the epoch), status, µs to the end of the response.
  const times = execFileSync('cut', ['-f3', logFile], { encoding: 'utf8', maxBuffer: 64 << 20 }).trim().split('\n').map(Number)
  return {
    rate,
    p50: percentile(times, 0.5) / 1000,
    p99: percentile(times, 0.99) / 1000,
    proxyUs: usPerRequest(after.proxy - before.proxy, done),
    workerUs: usPerRequest(after.worker - before.worker, done),
    failed: done - succeeded
  }
}

/**
 * `openssl s_time` on CPU 1 for SECONDS, one connection at a time, each asking for `path` over
 * HTTP/1.0: a TLS 1.3 client receives its session ticket after the handshake, so that s_time
 * resumes nothing unless it reads. `resumed`: the share of connections that resumed (s_time prints
 * `r` for each, `*` for a full handshake).
 */
function sTime (url: string, version: '1.3' | '1.2', mode: 'new' | 'reuse', proxyPids: number[]): Measure {
  const { host, pathname } = new URL(url)
  const before = cpuTicks(proxyPids)
  const start = performance.now()
  const out = execFileSync('taskset', ['-c', '1', 'openssl', 's_time', '-connect', host, `-${mode}`, `-tls${version.replace('.', '_')}`, '-time', String(SECONDS), '-www', pathname],
    { encoding: 'utf8', timeout: (SECONDS + 30) * 1000 })
  // s_time's own "real seconds" are whole seconds.
  const seconds = (performance.now() - start) / 1000
  const after = cpuTicks(proxyPids)
  const count = Number(/(\d+) connections in [\d.]+ real seconds/.exec(out)![1])
  const marks = /^starting\n([*r]*)/m.exec(out)?.[1] ?? ''
  return { rate: count / seconds, proxyUs: usPerRequest(after - before, count), workerUs: 0, resumed: (marks.split('r').length - 1) / Math.max(1, marks.length) }
}

async function startNginx (root: string, port: number, cert: string, key: string, pinned: Pinned): Promise<ChildProcess> {
  const dir = join(root, 'nginx')
  await mkdir(dir)
  // nginx 1.22 (Debian 12) takes http2 on the listen line; 1.25.1 and later also as `http2 on`.
  await writeFile(join(dir, 'nginx.conf'), `worker_processes 1;
daemon off;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log;
events { worker_connections 1024; }
http {
  access_log off;
  # nginx closes a client connection after 1000 requests (HTTP/2 ones too, with GOAWAY), which
  # h2load does not reopen and wrk does with a new handshake; Node closes none.
  keepalive_requests 1000000;
  upstream worker { server 127.0.0.1:${port}; keepalive 64; keepalive_requests 1000000; }
  ssl_certificate ${cert};
  ssl_certificate_key ${key};
  ssl_protocols TLSv1.2 TLSv1.3;
  ssl_session_cache shared:SSL:10m;
  ssl_session_tickets on;
  server {
    listen 127.0.0.1:${NGINX_PLAIN};
    listen 127.0.0.1:${NGINX_TLS} ssl http2;
    location / { proxy_pass http://worker; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
`)
  const nginx = pinned('nginx', ['-c', join(dir, 'nginx.conf'), '-p', dir])
  await waitForPort(NGINX_TLS)
  return nginx
}

function report (jobs: Job[], results: Map<string, Measure[]>): void {
  const med = (name: string, pick: (m: Measure) => number | undefined) => median(results.get(name)!.map((m) => pick(m) ?? Number.NaN))
  const titles = {
    h1: 'HTTP/1.1, wrk -c50 (keep-alive)',
    h2: 'HTTP/2, h2load -c10 -m10',
    handshake: 'Handshakes, openssl s_time (one connection at a time, one HTTP/1.0 request on each)'
  }
  for (const table of ['h1', 'h2', 'handshake'] as const) {
    const rows = jobs.filter((job) => job.table === table)
    console.log(`\n${titles[table]}, ${ROUNDS} rounds of ${SECONDS} s, medians:`)
    if (table === 'handshake') {
      console.log('| server, version, handshake | connections/s | resumed | server CPU µs/connection |\n| --- | --- | --- | --- |')
      for (const { name } of rows) console.log(`| ${name} | ${med(name, (m) => m.rate).toFixed(0)} | ${(100 * med(name, (m) => m.resumed)).toFixed(0)} % | ${med(name, (m) => m.proxyUs).toFixed(0)} |`)
      continue
    }
    console.log('| path | req/s | p50 ms | p99 ms | host CPU µs/req | worker CPU µs/req |\n| --- | --- | --- | --- | --- | --- |')
    for (const { name } of rows) {
      const failed = results.get(name)!.reduce((sum, m) => sum + (m.failed ?? 0), 0)
      const cells = [med(name, (m) => m.rate).toFixed(0), med(name, (m) => m.p50).toFixed(2), med(name, (m) => m.p99).toFixed(2), med(name, (m) => m.proxyUs).toFixed(1), med(name, (m) => m.workerUs).toFixed(1)]
      console.log(`| ${name} | ${cells.join(' | ')} |${failed ? ` ${failed} failed` : ''}`)
    }
  }
  const plainUs = med('tqserver, plain HTTP (default path)', (m) => m.proxyUs)
  console.log(`\nhost CPU per request against tqserver's plain-HTTP default path (${plainUs.toFixed(1)} µs; goal: within 1.5x):`)
  for (const name of ['tqserver, HTTPS/1.1', 'tqserver, HTTP/2']) console.log(`  ${name}: ${(med(name, (m) => m.proxyUs) / plainUs).toFixed(2)}x`)
  const nginxPlain = med('nginx, plain HTTP', (m) => m.proxyUs)
  for (const name of ['nginx, HTTPS/1.1', 'nginx, HTTP/2']) console.log(`  (${name} against nginx's plain HTTP: ${(med(name, (m) => m.proxyUs) / nginxPlain).toFixed(2)}x)`)
}

console.log(`tqserver TLS benchmark: node ${process.version}, ${cpus().length} x ${cpus()[0]?.model ?? 'cpu'}; servers on CPU 0, clients on CPU 1`)
await main()
