// Save-to-serving latency of dev hot reload: `tqserver dev` runs as its own process on a copy of
// test/fixtures/versioned; this script rewrites the worker's src/version.ts and measures the time
// until a GET answers with the new version, 50 times without load and 50 times under keep-alive
// GET/POST load (8 clients), counting failed requests. With a standby it also prints how long the
// next standby takes to warm after a switch, and the RSS of each warm standby and of the worker
// process serving each new version. Run: npm run bench:reload [-- saves standbys]
import { spawn } from 'node:child_process'
import { cp, mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises'
import { cpus, tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Agent } from 'undici'
import { LogRecorder, type LogLine } from '../test/helpers/logs.js'
import { until } from '../test/helpers/wait.js'
import { rssMb } from './process-info.js'
import { percentile } from './stats.js'

const SAVES = Number(process.argv[2] ?? 50)
/** Standby processes (0 measures fresh spawns): npm run bench:reload -- 50 0 */
const standbys = Number(process.argv[3] ?? 1)
const LOAD_CLIENTS = 8
/** Nothing in a run waits longer for a log line than a fresh worker start under load. */
const LINE_TIMEOUT_MS = 60_000
const repo = fileURLToPath(new URL('../../', import.meta.url))

interface Phase {
  build: number[], ready: number[], total: number[], noticed: number[], seen: number[]
  /** From the switch to the next standby being warm, ms; RSS in MB. */
  standbyWarm: number[], standbyRss: number[], workerRss: number[]
}

async function main (): Promise<void> {
  const root = await mkdtemp(join(tmpdir(), 'tq-bench-reload-'))
  await cp(join(repo, 'test/fixtures/versioned'), root, { recursive: true })
  await mkdir(join(root, 'node_modules'))
  await symlink(repo, join(root, 'node_modules', 'tqserver'), 'dir')
  const versionFile = join(root, 'workers/app/src/version.ts')
  await mkdir(join(root, 'config'))
  await writeFile(join(root, 'config/server.yaml'), `logLevel: debug\nliveReload: false\nstandbys: ${standbys}\n`)

  const server = spawn(process.execPath, [join(repo, 'dist/src/cli/main.js'), 'dev', '--port', '0', '--worker-ports', '28000-28999'],
    { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] })
  // The server's JSON log lines, read with the tests' recorder.
  const log = new LogRecorder()
  server.stdout.on('data', (chunk: Buffer) => log.write(chunk))
  const nextLine = (match: (line: LogLine) => boolean) => log.next(match, LINE_TIMEOUT_MS, 'a log line')
  // Awaited only with standbys: a line that never comes would time out.
  const standbyReady = () => standbys > 0 ? nextLine((line) => line.msg === 'standby ready') : undefined
  const firstStandby = standbyReady()
  const url = String((await nextLine((line) => line.msg === 'tqserver listening')).url)
  // The host listens before its workers serve.
  await log.waitFor((line) => line.msg === 'workers started', LINE_TIMEOUT_MS, 'the worker to serve')
  await firstStandby
  const agent = new Agent({ connections: LOAD_CLIENTS + 1, keepAliveTimeout: 60_000 })
  const getVersion = async () => {
    const res = await agent.request({ origin: url, path: '/app/version', method: 'GET' })
    return (await res.body.json() as { version: number }).version
  }

  let version = 0
  async function measure (label: string, underLoad: boolean): Promise<Phase & { failures: number, requests: number }> {
    const phase: Phase = { build: [], ready: [], total: [], noticed: [], seen: [], standbyWarm: [], standbyRss: [], workerRss: [] }
    let running = true
    let failures = 0
    let requests = 0
    const loops = underLoad
      ? Array.from({ length: LOAD_CLIENTS }, async (_, client) => {
        for (let i = 0; running; i++) {
          const post = (i + client) % 2 === 1
          try {
            const res = await agent.request({
              origin: url,
              path: post ? '/app/echo' : '/app/version',
              method: post ? 'POST' : 'GET',
              headers: post ? { 'content-type': 'application/json' } : {},
              body: post ? '{"x":1}' : undefined
            })
            await res.body.dump()
            requests++
            if (res.statusCode !== 200) failures++
          } catch {
            failures++
          }
        }
      })
      : []
    for (let save = 0; save < SAVES; save++) {
      version++
      const switched = nextLine((line) => line.msg === 'worker switched')
      const nextStandby = standbyReady()
      const started = performance.now()
      const startedAt = Date.now()
      await writeFile(versionFile, `export const VERSION = ${version}\n`)
      // Poll every millisecond: a tighter loop would itself load the host it measures.
      await until(LINE_TIMEOUT_MS, `version ${version} served`, async () => await getVersion() === version, 1)
      phase.total.push(performance.now() - started)
      const seenAt = Date.now()
      const switchedLine = await switched // the old instance is gone before the next save
      // A person saves again seconds later: by then the next standby is warm. Wait for it here.
      const standby = await nextStandby
      if (standby) {
        phase.standbyWarm.push(Number(standby.time) - Number(switchedLine.time))
        phase.standbyRss.push(rssMb(Number(standby.pid)))
      }
      const recent = log.lines.slice(-40)
      const built = recent.findLast((line) => line.msg === 'worker built')
      if (built) phase.build.push(Number(built.durationMs))
      const healthy = recent.findLast((line) => line.to === 'HEALTHY')
      const starting = recent.findLast((line) => line.to === 'STARTING')
      if (healthy && starting) phase.ready.push(Number(healthy.time) - Number(starting.time))
      const noticed = recent.find((line) => line.msg === 'worker files changed' && Number(line.time) >= startedAt)
      if (noticed) phase.noticed.push(Number(noticed.time) - startedAt)
      if (healthy) phase.seen.push(seenAt - Number(healthy.time))
      if (healthy) phase.workerRss.push(rssMb(Number(healthy.pid)))
    }
    running = false
    await Promise.all(loops)
    report(label, phase, failures, requests)
    return { ...phase, failures, requests }
  }

  await measure('without load', false)
  await measure(`under load (${LOAD_CLIENTS} keep-alive clients, GET + POST)`, true)
  await agent.close()
  server.kill('SIGTERM')
  await new Promise((resolve) => server.once('exit', resolve))
  await rm(root, { recursive: true, force: true })
}

function report (label: string, phase: Phase, failures: number, requests: number): void {
  const row = (name: string, values: number[], unit = 'ms') => values.length === 0
    ? `  ${name.padEnd(28)} -`
    : `  ${name.padEnd(28)} p50 ${percentile(values, 0.5).toFixed(1).padStart(7)} ${unit}   p95 ${percentile(values, 0.95).toFixed(1).padStart(7)} ${unit}   max ${Math.max(...values).toFixed(1).padStart(7)} ${unit}`
  console.log(`\n${label}: ${SAVES} saves`)
  console.log(row('save -> new version', phase.total))
  console.log(row('  save -> noticed', phase.noticed))
  console.log(row('  esbuild rebuild', phase.build))
  console.log(row('  start -> /health 200', phase.ready))
  console.log(row('  healthy -> answered', phase.seen))
  if (standbys > 0) console.log(row('switch -> next standby warm', phase.standbyWarm))
  if (standbys > 0) console.log(row('standby RSS when warm', phase.standbyRss, 'MB'))
  console.log(row('new worker RSS', phase.workerRss, 'MB'))
  if (requests > 0) console.log(`  requests ${requests}, failed ${failures}`)
}

console.log(`tqserver dev reload benchmark: node ${process.version}, ${cpus().length} x ${cpus()[0]?.model ?? 'cpu'}, ${standbys} standby`)
await main()
