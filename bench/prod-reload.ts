// Production reload: SIGHUP to serving for 1 and for 20 changed workers, with and without load.
// `tqserver start` runs as its own process over 20 copies of the versioned SDK worker
// (test/fixtures/versioned); a round bumps the version of 1 or of all 20 workers, runs
// `tqserver build` for them, sends SIGHUP, and times until every changed worker answers with its
// new version (p50, p95 by nearest rank, max). It also prints the host's RSS once all 20 serve and
// after every switch of the run, each worker process's RSS, the CPU a new worker process spent
// until the round ended, and how long a reload that changes nothing takes (re-reading the
// configuration and rescanning 20 workers). Run: npm run bench:prod-reload [-- rounds]
import { spawn, spawnSync } from 'node:child_process'
import { cp, mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises'
import { cpus, tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Agent } from 'undici'
import { LogRecorder } from '../test/helpers/logs.js'
import { startLoad } from '../test/helpers/load.js'
import { until } from '../test/helpers/wait.js'
import { cpuTicks, rssMb, TICKS_PER_SECOND } from './process-info.js'
import { median, percentile } from './stats.js'

const ROUNDS = Number(process.argv[2] ?? 5)
const WORKERS = 20
const LOAD_CLIENTS = 8
const repo = fileURLToPath(new URL('../../', import.meta.url))
const cli = join(repo, 'dist/src/cli/main.js')
const names = Array.from({ length: WORKERS }, (_, i) => `w${String(i + 1).padStart(2, '0')}`)

async function main (): Promise<void> {
  const root = await mkdtemp(join(tmpdir(), 'tq-bench-prod-'))
  for (const name of names) await cp(join(repo, 'test/fixtures/versioned/workers/app'), join(root, 'workers', name), { recursive: true })
  await mkdir(join(root, 'node_modules'))
  await symlink(repo, join(root, 'node_modules', 'tqserver'), 'dir')
  build(root, [])

  const server = spawn(process.execPath, [cli, 'start', '--port', '0', '--worker-ports', '29000-29999'], { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] })
  // The server's JSON log lines, read with the tests' recorder; a 20-worker reload takes seconds.
  const log = new LogRecorder()
  server.stdout.on('data', (chunk: Buffer) => log.write(chunk))
  const nextLine = (msg: string) => log.next((line) => line.msg === msg, 120_000, msg)
  const url = String((await log.waitFor((line) => line.msg === 'tqserver listening', 120_000, 'tqserver listening')).url)
  // The host listens before its workers serve.
  await log.waitFor((line) => line.msg === 'workers started', 120_000, 'every worker to serve')
  const agent = new Agent({ connections: 64, keepAliveTimeout: 60_000 })
  const workerPids = async () => {
    const res = await agent.request({ origin: url, path: '/health', method: 'GET' })
    const report = await res.body.json() as { workers: Record<string, { instances: Array<{ pid: number | null, state: string }> }> }
    return Object.fromEntries(names.map((name) => [name, report.workers[name]!.instances.find((instance) => instance.state === 'HEALTHY')?.pid ?? 0]))
  }
  const rss = (pid: number) => rssMb(pid).toFixed(0)
  const workerRss = (pids: Record<string, number>) => {
    const values = Object.values(pids).map(rssMb)
    return `median ${median(values).toFixed(0)} MB, ${Math.min(...values).toFixed(0)}-${Math.max(...values).toFixed(0)} MB (${values.length} workers)`
  }
  console.log(`host RSS with ${WORKERS} workers serving: ${rss(server.pid!)} MB; worker RSS ${workerRss(await workerPids())}`)
  const versionOf = async (name: string) => {
    const res = await agent.request({ origin: url, path: `/${name}/version`, method: 'GET' })
    return (await res.body.json() as { version: number }).version
  }

  // A reload that changes nothing re-reads the configuration and rescans every worker.
  const rescans: number[] = []
  for (let r = 0; r < ROUNDS; r++) {
    const finished = nextLine('reload finished')
    server.kill('SIGHUP')
    const summary = await finished
    if ((summary.switched as string[]).length > 0) throw new Error(`a reload with nothing changed switched ${String(summary.switched)}`)
    rescans.push(Number(summary.durationMs))
  }
  console.log(`reload with nothing changed (configuration and ${WORKERS} workers rescanned): p50 ${median(rescans).toFixed(0)} ms, max ${Math.max(...rescans).toFixed(0)} ms (${rescans.length} reloads)`)

  let version = 0
  let switches = 0
  async function round (changed: string[]): Promise<{ total: number, reload: number }> {
    version++
    for (const name of changed) await writeFile(join(root, 'workers', name, 'src/version.ts'), `export const VERSION = ${version}\n`)
    build(root, changed)
    const finished = nextLine('reload finished')
    const started = performance.now()
    server.kill('SIGHUP')
    await Promise.all(changed.map((name) => until(120_000, `${name} to serve version ${version}`, async () => await versionOf(name) === version, 2)))
    const total = performance.now() - started
    const summary = await finished
    const switched = summary.switched as string[]
    if (switched.length !== changed.length) throw new Error(`the reload switched ${switched.length} workers, not ${changed.length}: ${JSON.stringify(summary)}`)
    switches += switched.length
    return { total, reload: Number(summary.durationMs) }
  }

  const ms = (values: number[]) => `p50 ${percentile(values, 0.5).toFixed(0)} ms, p95 ${percentile(values, 0.95).toFixed(0)} ms, max ${Math.max(...values).toFixed(0)} ms`
  for (const underLoad of [false, true]) {
    const load = underLoad ? startLoad(url, names.map((name) => `/${name}`), LOAD_CLIENTS) : undefined
    for (const count of [1, WORKERS]) {
      const totals: number[] = []
      const reloads: number[] = []
      const startCpu: number[] = []
      for (let r = 0; r < (count === 1 ? ROUNDS * 2 : ROUNDS); r++) {
        const { total, reload } = await round(names.slice(0, count))
        totals.push(total)
        reloads.push(reload)
        // CPU of each new worker process from its start to the round's end (no load: only the
        // polls for its version besides starting).
        if (!underLoad) {
          const pids = await workerPids()
          for (const name of names.slice(0, count)) startCpu.push(cpuTicks([pids[name]!]) * (1000 / TICKS_PER_SECOND))
        }
      }
      console.log(`${underLoad ? 'under load' : 'no load   '} ${String(count).padStart(2)} changed: SIGHUP -> all serving ${ms(totals)}; reload summary p50 ${median(reloads).toFixed(0)} ms (${totals.length} rounds)`)
      if (startCpu.length > 0) console.log(`  CPU of a new worker process until the round ended: p50 ${median(startCpu).toFixed(0)} ms (${startCpu.length} processes)`)
    }
    const result = await load?.stop()
    if (result) console.log(`  requests ${result.ok + result.failures.length}, failed ${result.failures.length} (${LOAD_CLIENTS} keep-alive clients over ${WORKERS} workers)`)
  }
  console.log(`host RSS after ${switches} worker switches: ${rss(server.pid!)} MB; worker RSS ${workerRss(await workerPids())}`)
  await agent.close()
  server.kill('SIGTERM')
  await new Promise((resolve) => server.once('exit', resolve))
  await rm(root, { recursive: true, force: true })
}

function build (root: string, workers: string[]): void {
  const result = spawnSync(process.execPath, [cli, 'build', ...workers], { cwd: root, encoding: 'utf8' })
  if (result.status !== 0) throw new Error(`tqserver build failed: ${result.stderr}`)
}

console.log(`tqserver production reload benchmark: node ${process.version}, ${cpus().length} x ${cpus()[0]?.model ?? 'cpu'}, ${WORKERS} SDK workers`)
await main()
