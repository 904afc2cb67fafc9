// A leak check across reloads: `tqserver start` runs as its own process with one SDK worker and one
// plain node:http worker, health checks every 200 ms, and 2 keep-alive clients sending requests to
// the SDK worker. The SDK worker is switched by a changed worker.yaml and SIGHUP, each reload waited
// for, 50 times to warm up and then N times. Before and after the N reloads it reads the host's RSS,
// open file descriptors and child processes (the workers) from /proc and the leased ports from
// /health, and prints them; it also samples the RSS after every tenth of the reloads. It exits 1,
// saying what grew, when the RSS at the end is above the highest RSS of the first half by more than
// the tolerance (the heap settles at a size that differs from run to run by tens of MB, and may
// rise early in a run; a leak keeps rising: with 1000 reloads one of 64 KB per reload fails the
// check, smaller ones need more reloads), when file descriptors, leased ports or child processes grew at all (after waiting up
// to 10 s for the last old instance to go), when a reload did not switch the worker (its summary
// does not list it, or the worker's pid did not change), or when a request failed. Warm-up reloads
// and their requests are not counted.
// Run: npm run check:leaks [-- reloads rss-tolerance-mb] (defaults 1000 and 32; same as bench:leaks)
import { spawn } from 'node:child_process'
import { cp, mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises'
import { cpus, tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Agent } from 'undici'
import { startLoad } from '../test/helpers/load.js'
import { childPids, until, within } from '../test/helpers/wait.js'
import { describeProcess, openFiles, rssMb } from './process-info.js'

const RELOADS = Number(process.argv[2] ?? 1000)
/** Host RSS may rise by this much over the second half of the run: the heap settles with the collector's timing. */
const RSS_TOLERANCE_MB = Number(process.argv[3] ?? 32)
const WARM_UP_RELOADS = 50
/** One reload of one small worker takes well under a second; this bounds a reload that hangs. */
const RELOAD_TIMEOUT_MS = 30_000
/** After the last reload its old instance drains and exits; the counts settle within this. */
const SETTLE_TIMEOUT_MS = 10_000
const repo = fileURLToPath(new URL('../../', import.meta.url))

interface Health {
  ports: { leased: number }
  lastReload: { at: number, switched: string[], failed: Array<{ worker: string, reason: string }> } | null
  workers: { app: { instances: Array<{ pid: number | null, state: string }> } }
}

interface Measure { rssMb: number, fds: number, leasedPorts: number, children: number[] }

async function main (): Promise<number> {
  const root = await mkdtemp(join(tmpdir(), 'tq-bench-leaks-'))
  await cp(join(repo, 'test/fixtures/versioned/workers/app'), join(root, 'workers', 'app'), { recursive: true })
  await cp(join(repo, 'test/fixtures/plain/workers/hello'), join(root, 'workers', 'hello'), { recursive: true })
  await mkdir(join(root, 'node_modules'))
  await symlink(repo, join(root, 'node_modules', 'tqserver'), 'dir')
  // A quick health check, so that its bookkeeping is exercised too.
  await mkdir(join(root, 'config'))
  await writeFile(join(root, 'config/server.yaml'), 'health:\n  interval: 200\n')

  const server = spawn(process.execPath, [join(repo, 'dist/src/cli/main.js'), 'start', '--port', '0', '--worker-ports', '30000-30999'],
    { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] })
  const pid = server.pid!
  try {
    const url = await within(60_000, 'tqserver listening', new Promise<string>((resolve) => {
      let pending = ''
      server.stdout.on('data', (chunk: Buffer) => {
        pending += chunk.toString()
        // The host listens before its workers serve: both lines are awaited.
        const match = /"url":"([^"]+)","mode"/.exec(pending)
        if (match && pending.includes('"msg":"workers started"')) resolve(match[1]!)
        if (pending.length > 1_000_000) pending = pending.slice(-10_000)
      })
    }))
    const agent = new Agent({ connections: 4 })
    const health = async () => await (await agent.request({ origin: url, path: '/health', method: 'GET' })).body.json() as Health
    const appPid = (report: Health) => report.workers.app.instances.find((instance) => instance.state === 'HEALTHY')?.pid
    const measure = async (): Promise<Measure> => ({
      rssMb: rssMb(pid), fds: openFiles(pid), leasedPorts: (await health()).ports.leased, children: childPids(pid)
    })

    const load = startLoad(url, '/app', 2)
    // The path a user has: a changed worker.yaml, then SIGHUP. Returns why the reload did not
    // switch the worker, or undefined when it did.
    const reload = async (i: number): Promise<string | undefined> => {
      await writeFile(join(root, 'workers/app/worker.yaml'), `env:\n  ROUND: "${i}"\n`)
      const before = await health()
      server.kill('SIGHUP')
      const after = await until(RELOAD_TIMEOUT_MS, `reload ${i} to finish`, async () => {
        const report = await health()
        return (report.lastReload?.at ?? 0) !== (before.lastReload?.at ?? 0) && report
      })
      const summary = after.lastReload!
      if (!summary.switched.includes('app')) return `reload ${i}: its summary switched [${summary.switched.join(', ')}], failed ${JSON.stringify(summary.failed)}`
      if (appPid(after) === appPid(before)) return `reload ${i}: the worker's pid stayed ${appPid(after)}`
      return undefined
    }

    for (let i = 0; i < WARM_UP_RELOADS; i++) await reload(i)
    const before = await measure()
    const warmUp = load.tally()
    console.log(`the host's child processes: ${before.children.map((child) => `${child} ${describeProcess(child)}`).join(', ')}`)
    const notSwitched: string[] = []
    const started = performance.now()
    const samples: number[] = []
    for (let i = 0; i < RELOADS; i++) {
      const problem = await reload(WARM_UP_RELOADS + i)
      if (problem) notSwitched.push(problem)
      if ((i + 1) % Math.ceil(RELOADS / 10) === 0) samples.push(rssMb(pid))
    }
    const firstHalfMax = Math.max(before.rssMb, ...samples.slice(0, Math.floor(samples.length / 2)))
    const seconds = (performance.now() - started) / 1000
    // The last reload's old instance may still be draining: wait for the counts to come back.
    const settled = (now: Measure) => now.fds <= before.fds && now.leasedPorts <= before.leasedPorts && now.children.length <= before.children.length
    let after = await measure()
    await until(SETTLE_TIMEOUT_MS, 'the counts to settle', async () => settled(after = await measure())).catch(() => {})
    const total = load.tally()
    await load.stop()
    await agent.close()

    const requests = total.ok + total.failures.length - warmUp.ok - warmUp.failures.length
    const failures = total.failures.slice(warmUp.failures.length)
    console.log(`${RELOADS} reloads in ${seconds.toFixed(0)} s (after ${WARM_UP_RELOADS} to warm up, not counted), ${requests} requests during them, ${failures.length} failed`)
    console.log(`host RSS after each tenth of the reloads: ${samples.map((mb) => mb.toFixed(0)).join(', ')} MB`)
    console.log(`host RSS ${before.rssMb.toFixed(1)} MB -> ${after.rssMb.toFixed(1)} MB, first half's highest ${firstHalfMax.toFixed(1)} MB (tolerance ${RSS_TOLERANCE_MB} MB); fds ${before.fds} -> ${after.fds}; ` +
      `leased ports ${before.leasedPorts} -> ${after.leasedPorts}; child processes ${before.children.length} -> ${after.children.length}; ` +
      `reloads that switched nothing: ${notSwitched.length}`)

    const problems = [
      ...(after.rssMb - firstHalfMax > RSS_TOLERANCE_MB
        ? [`host RSS kept growing: ${after.rssMb.toFixed(1)} MB at the end, ${(after.rssMb - firstHalfMax).toFixed(1)} MB above the first half's highest (more than ${RSS_TOLERANCE_MB} MB)`]
        : []),
      ...(after.fds > before.fds ? [`the host's open file descriptors grew from ${before.fds} to ${after.fds}`] : []),
      ...(after.leasedPorts > before.leasedPorts ? [`leased ports grew from ${before.leasedPorts} to ${after.leasedPorts}`] : []),
      ...(after.children.length > before.children.length
        ? [`the host's child processes grew from ${before.children.length} to ${after.children.length}: ${after.children.map((child) => `${child} ${describeProcess(child)}`).join(', ')}`]
        : []),
      ...(notSwitched.length > 0 ? [`${notSwitched.length} of ${RELOADS} reloads switched nothing, first: ${notSwitched[0]}`] : []),
      ...(failures.length > 0 ? [`${failures.length} requests failed, first: ${failures[0]}`] : [])
    ]
    if (problems.length === 0) {
      console.log('leak check passed')
      return 0
    }
    console.error(`leak check FAILED:\n  ${problems.join('\n  ')}`)
    return 1
  } finally {
    server.kill('SIGTERM')
    await within(30_000, 'tqserver to exit', new Promise((resolve) => server.exitCode === null ? server.once('exit', resolve) : resolve(undefined)))
    await rm(root, { recursive: true, force: true })
  }
}

console.log(`tqserver leak check: node ${process.version}, ${cpus().length} x ${cpus()[0]?.model ?? 'cpu'}`)
process.exitCode = await main()
