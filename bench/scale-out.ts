// Scale-out on plain hosts: two tqserver instances ("hosts", each its own root and worker ports)
// behind a local HAProxy, rolled one at a time to a new version while 8 keep-alive clients send
// GETs and POSTs through the balancer. Two ways to roll a host, each measured:
//   drain-first: HAProxy's admin socket sets the server to drain, waits until it has no session,
//     then SIGTERM, start the new version, wait for /readyz, set it ready (the documented way);
//   readiness-only: SIGTERM straight away; HAProxy notices through /readyz checks and retries
//     refused connections on the other host.
// Every request's failure is counted. Needs haproxy (apt-get install haproxy).
// Run: npm run bench:scale-out [-- rounds] (a round rolls both hosts; DEBUG=1 prints failed answers)
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { cp, mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises'
import { connect } from 'node:net'
import { cpus, tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Agent } from 'undici'
import { until } from '../test/helpers/wait.js'
import { median } from './stats.js'

const repo = fileURLToPath(new URL('../../', import.meta.url))
const cli = join(repo, 'dist/src/cli/main.js')
const BALANCER_PORT = 27000
const HOSTS = [{ name: 'h1', port: 31701, workerPorts: '31710-31749' }, { name: 'h2', port: 31702, workerPorts: '31750-31789' }]
const LOAD_CLIENTS = 8
const ROUNDS = Number(process.argv[2] ?? 3)

interface Host { name: string, port: number, workerPorts: string, root: string, process?: ChildProcess }

async function main (): Promise<void> {
  if (spawnSync('sh', ['-c', 'command -v haproxy']).status !== 0) throw new Error('haproxy is missing: apt-get install haproxy')
  const base = await mkdtemp(join(tmpdir(), 'tq-bench-scale-'))
  const hosts: Host[] = []
  for (const host of HOSTS) {
    const root = join(base, host.name)
    await cp(join(repo, 'test/fixtures/versioned/workers/app'), join(root, 'workers', 'app'), { recursive: true, filter: (source) => !source.includes('/bin') })
    await mkdir(join(root, 'node_modules'))
    await symlink(repo, join(root, 'node_modules', 'tqserver'), 'dir')
    hosts.push({ ...host, root })
  }
  let version = 1
  const socket = join(base, 'haproxy.sock')
  await writeFile(join(base, 'haproxy.cfg'), `global
  stats socket ${socket} mode 600 level admin
defaults
  mode http
  timeout connect 2s
  timeout client 30s
  timeout server 30s
  option redispatch
  retries 3
  retry-on conn-failure empty-response
frontend front
  bind 127.0.0.1:${BALANCER_PORT}
  default_backend tqservers
backend tqservers
  balance roundrobin
  option httpchk GET /readyz
  http-check expect status 200
  default-server inter 500 fall 1 rise 1
${hosts.map((host) => `  server ${host.name} 127.0.0.1:${host.port} check`).join('\n')}
`)
  const haproxy = spawn('haproxy', ['-f', join(base, 'haproxy.cfg'), '-db'], { stdio: 'inherit' })
  const admin = (command: string) => new Promise<string>((resolve, reject) => {
    const conn = connect(socket)
    let out = ''
    conn.on('data', (chunk) => { out += chunk.toString() })
    conn.on('end', () => resolve(out))
    conn.on('error', reject)
    conn.end(`${command}\n`)
  })

  try {
    const waitUp = async (host: Host) => {
      await until(60_000, `HAProxy to see ${host.name} up`, async () => (await admin('show stat -1 4 -1')).split('\n').some((line) => line.startsWith(`tqservers,${host.name},`) && line.includes(',UP,')))
    }
    for (const host of hosts) await start(host, version)
    for (const host of hosts) await waitUp(host)
    const agent = new Agent({ connections: LOAD_CLIENTS, keepAliveTimeout: 30_000 })
    for (const mode of ['drain-first', 'readiness-only'] as const) {
      let running = true
      let requests = 0
      const failures: string[] = []
      const clients = Array.from({ length: LOAD_CLIENTS }, async (_, client) => {
        for (let i = 0; running; i++) {
          const post = (i + client) % 4 === 0
          try {
            const res = await agent.request({
              origin: `http://127.0.0.1:${BALANCER_PORT}`,
              path: post ? '/app/echo' : '/app/version',
              method: post ? 'POST' : 'GET',
              ...(post ? { body: JSON.stringify({ i }), headers: { 'content-type': 'application/json' } } : {})
            })
            const text = await res.body.text()
            if (res.statusCode !== 200) failures.push(`${post ? 'POST' : 'GET'} ${res.statusCode}`)
            if (res.statusCode !== 200 && process.env.DEBUG) console.log(res.statusCode, text.slice(0, 200))
          } catch (err) {
            failures.push(`${post ? 'POST' : 'GET'} ${(err as Error & { code?: string }).code ?? (err as Error).message}`)
          }
          requests++
        }
      })
      const rolls: number[] = []
      for (let round = 0; round < ROUNDS; round++) for (const host of hosts) {
        if (host === hosts[0]) version++
        const started = performance.now()
        if (mode === 'drain-first') {
          await admin(`set server tqservers/${host.name} state drain`)
          await until(60_000, `${host.name} to have no session`, async () => sessions(await admin('show stat -1 4 -1'), host.name) === 0)
        }
        host.process!.kill('SIGTERM')
        await once(host.process!, 'exit')
        await start(host, version)
        if (mode === 'drain-first') await admin(`set server tqservers/${host.name} state ready`)
        // The next host is rolled only once HAProxy sends traffic to this one again.
        await waitUp(host)
        rolls.push(performance.now() - started)
      }
      running = false
      await Promise.all(clients)
      const versions = new Set<number>()
      for (let i = 0; i < 10; i++) {
        const res = await agent.request({ origin: `http://127.0.0.1:${BALANCER_PORT}`, path: '/app/version', method: 'GET' })
        versions.add((await res.body.json() as { version: number }).version)
      }
      const kinds = [...new Set(failures)].map((kind) => `${kind} x${failures.filter((f) => f === kind).length}`).join(', ')
      console.log(`${mode}: ${rolls.length} host rolls, ${(median(rolls) / 1000).toFixed(1)} s each (median); ` +
        `${requests} requests, ${failures.length} failed${kinds ? ` (${kinds})` : ''}; now serving version ${[...versions].join(', ')} (expected ${version})`)
    }
    await agent.close()
  } finally {
    for (const host of hosts) if (host.process?.exitCode === null) host.process.kill('SIGTERM')
    await Promise.all(hosts.map((host) => host.process?.exitCode === null ? once(host.process, 'exit') : undefined))
    haproxy.kill()
    await once(haproxy, 'exit')
    await rm(base, { recursive: true, force: true })
  }
}

/** Builds `version` into the host's worker and starts its tqserver; resolves when /readyz is 200. */
async function start (host: Host, version: number): Promise<void> {
  await writeFile(join(host.root, 'workers/app/src/version.ts'), `export const VERSION = ${version}\n`)
  const built = spawnSync(process.execPath, [cli, 'build'], { cwd: host.root, encoding: 'utf8' })
  if (built.status !== 0) throw new Error(`build failed: ${built.stderr}`)
  host.process = spawn(process.execPath, [cli, 'start', '--port', String(host.port), '--worker-ports', host.workerPorts], { cwd: host.root, stdio: 'ignore' })
  const child = host.process
  await until(60_000, `${host.name} to be ready`, async () => {
    if (child.exitCode !== null) throw new Error(`${host.name} exited with ${child.exitCode}`)
    return await fetch(`http://127.0.0.1:${host.port}/readyz`).then((res) => res.ok, () => false)
  })
}

/** scur (current sessions) of one server in `show stat` CSV. */
function sessions (csv: string, server: string): number {
  const header = csv.split('\n')[0]!.replace(/^# /, '').split(',')
  const row = csv.split('\n').find((line) => line.startsWith(`tqservers,${server},`))?.split(',')
  return Number(row?.[header.indexOf('scur')] ?? 0)
}

console.log(`tqserver scale-out demo: node ${process.version}, ${cpus().length} x ${cpus()[0]?.model ?? 'cpu'}; 2 tqserver hosts behind HAProxy, ${LOAD_CLIENTS} keep-alive clients (1 in 4 requests a POST)`)
await main()
