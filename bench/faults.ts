// Faults under load, measured: a worker killed (kill -9), hung (SIGSTOP) and crash-looping (it
// crashes, then every restart crashes at boot), with one and with two instances, default settings.
// For each: the time from the fault until the host took the instance out of rotation (detect) and
// until a new instance served (replace), the requests that failed, the span from the first failed
// answer to the last, and the slowest request. `tqserver start` runs as its own process over the
// crash-on-demand fixture; 8 keep-alive clients send GET /crashy/ throughout, each about 100 a second.
// Run: npm run bench:faults [-- rounds]
import { spawn } from 'node:child_process'
import { cp, mkdir, mkdtemp, rm, symlink, unlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Agent } from 'undici'
import { LogRecorder, type LogLine } from '../test/helpers/logs.js'
import { median } from './stats.js'

const ROUNDS = Number(process.argv[2] ?? 3)
const CLIENTS = 8
/** Each client waits this long before each request: about 100 requests per second per client. */
const PACE_MS = 10
/** Load kept running after the replacement serves, so that late failures are counted. */
const AFTER_MS = 2000
const repo = fileURLToPath(new URL('../../', import.meta.url))
const cli = join(repo, 'dist/src/cli/main.js')
const MARKER = 'crash-at-boot'

type Fault = 'killed' | 'hung' | 'crash-looping'

interface Sample { detectMs: number, replaceMs: number | null, failed: number, failedSpanMs: number, maxLatencyMs: number }

async function round (fault: Fault, instances: number): Promise<Sample> {
  const root = await mkdtemp(join(tmpdir(), 'tq-bench-faults-'))
  await cp(join(repo, 'test/fixtures/crash-on-demand'), root, { recursive: true })
  await writeFile(join(root, 'workers/crashy/worker.yaml'), `instances: ${instances}\nenv:\n  CRASH_MARKER: ../../${MARKER}\n`)
  await mkdir(join(root, 'node_modules'))
  await symlink(repo, join(root, 'node_modules', 'tqserver'), 'dir')
  const server = spawn(process.execPath, [cli, 'start', '--port', '0', '--worker-ports', '29000-29099'], { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] })
  const log = new LogRecorder()
  server.stdout.on('data', (chunk: Buffer) => log.write(chunk))
  let stopped: number[] = []
  try {
    const url = String((await log.waitFor((line) => line.msg === 'tqserver listening', 30_000, 'the server to listen')).url)
    await log.waitFor((line) => line.msg === 'workers started', 30_000, 'the worker to serve')
    const healthy = log.lines.filter((line) => line.to === 'HEALTHY').map((line) => Number(line.pid))
    const victim = healthy[0]!

    const load = startLoad(url)
    await new Promise((resolve) => setTimeout(resolve, 500))
    const at = Date.now()
    const changed = (match: (line: LogLine) => boolean, what: string) => log.waitFor((line) => Number(line.time) >= at && line.msg === 'worker state changed' && match(line), 120_000, what)
    let detected: Promise<LogLine>
    let replaced: Promise<LogLine> | undefined
    if (fault === 'killed') {
      process.kill(victim, 'SIGKILL')
      detected = changed((line) => Number(line.pid) === victim && line.to === 'CRASHED', 'the crash to be seen')
    } else if (fault === 'hung') {
      process.kill(victim, 'SIGSTOP')
      stopped = [victim]
      detected = changed((line) => Number(line.pid) === victim && line.from === 'HEALTHY', 'the hang to be seen')
    } else {
      // Every restart now crashes at boot.
      await writeFile(join(root, MARKER), '')
      process.kill(victim, 'SIGKILL')
      detected = changed((line) => line.to === 'FAILED', 'the crash loop to end in FAILED')
    }
    if (fault !== 'crash-looping') replaced = changed((line) => line.to === 'HEALTHY' && !healthy.includes(Number(line.pid)), 'a new instance to serve')
    const detect = await detected
    const replace = await replaced
    await new Promise((resolve) => setTimeout(resolve, AFTER_MS))
    const requests = await load.stop()
    const failures = requests.filter((request) => request.status !== 200)
    const sample = {
      detectMs: Number(detect.time) - at,
      replaceMs: replace ? Number(replace.time) - at : null,
      failed: failures.length,
      // Reduced, not spread: a run with a healthy instance makes hundreds of thousands of requests.
      failedSpanMs: failures.length === 0 ? 0 : failures.reduce((max, r) => Math.max(max, r.end), 0) - failures.reduce((min, r) => Math.min(min, r.end), Infinity),
      maxLatencyMs: requests.reduce((max, r) => Math.max(max, r.end - r.start), 0)
    }
    if (fault === 'crash-looping') await unlink(join(root, MARKER))
    return sample
  } finally {
    for (const pid of stopped) killQuietly(pid, 'SIGKILL')
    server.kill('SIGTERM')
    await new Promise((resolve) => server.once('exit', resolve))
    await rm(root, { recursive: true, force: true })
  }
}

function killQuietly (pid: number, signal: NodeJS.Signals): void {
  try { process.kill(pid, signal) } catch {}
}

interface Request { start: number, end: number, status: number }

function startLoad (url: string) {
  const agent = new Agent({ connections: CLIENTS, headersTimeout: 120_000, bodyTimeout: 120_000 })
  const requests: Request[] = []
  let running = true
  const loops = Array.from({ length: CLIENTS }, async () => {
    while (running) {
      // Paced, as clients that retry a failure at once would make the failure count a measure of speed.
      await new Promise((resolve) => setTimeout(resolve, PACE_MS))
      const start = Date.now()
      let status = 0
      try {
        const res = await agent.request({ origin: url, path: '/crashy/', method: 'GET' })
        await res.body.dump()
        status = res.statusCode
      } catch {}
      requests.push({ start, end: Date.now(), status })
    }
  })
  return {
    stop: async () => {
      running = false
      await Promise.all(loops)
      await agent.close()
      return requests
    }
  }
}

const format = (values: number[], unit = ' ms') => `${median(values).toFixed(0)}${unit} (${Math.min(...values).toFixed(0)}-${Math.max(...values).toFixed(0)})`

console.log(`${ROUNDS} rounds per row, medians (min-max); ${CLIENTS} keep-alive clients on GET /crashy/, each a request per ${PACE_MS} ms`)
console.log('| fault | instances | detected after | new instance serves after | failed requests | failures span | slowest request |')
console.log('| --- | --- | --- | --- | --- | --- | --- |')
for (const fault of ['killed', 'hung', 'crash-looping'] as const) {
  for (const instances of [1, 2]) {
    const samples: Sample[] = []
    for (let r = 0; r < ROUNDS; r++) samples.push(await round(fault, instances))
    const replaced = samples.map((sample) => sample.replaceMs).filter((ms): ms is number => ms !== null)
    console.log(`| ${fault} | ${instances} | ${format(samples.map((s) => s.detectMs))} | ${replaced.length > 0 ? format(replaced) : 'stays FAILED until its retry'} | ` +
      `${format(samples.map((s) => s.failed), '')} | ${format(samples.map((s) => s.failedSpanMs))} | ${format(samples.map((s) => s.maxLatencyMs))} |`)
  }
}
