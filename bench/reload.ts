// Save-to-serving latency of dev hot reload: `tqserver dev` runs as its own process on a copy of
// test/fixtures/versioned; this script rewrites the worker's src/version.ts and measures the time
// until a GET answers with the new version, 50 times without load and 50 times under keep-alive
// GET/POST load (8 clients), counting failed requests. Run: npm run bench:reload [-- saves]
import { spawn } from 'node:child_process'
import { cp, mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises'
import { cpus, tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Agent } from 'undici'

const SAVES = Number(process.argv[2] ?? 50)
/** Standby processes (0 measures fresh spawns): npm run bench:reload -- 50 0 */
const standbys = Number(process.argv[3] ?? 1)
const LOAD_CLIENTS = 8
const repo = fileURLToPath(new URL('../../', import.meta.url))

interface Phase { build: number[], ready: number[], total: number[], noticed: number[], seen: number[] }

async function main (): Promise<void> {
  const root = await mkdtemp(join(tmpdir(), 'tq-bench-reload-'))
  await cp(join(repo, 'test/fixtures/versioned'), root, { recursive: true })
  await mkdir(join(root, 'node_modules'))
  await symlink(repo, join(root, 'node_modules', 'tqserver'), 'dir')
  const versionFile = join(root, 'workers/app/src/version.ts')
  await mkdir(join(root, 'config'))
  await writeFile(join(root, 'config/server.yaml'), `logLevel: debug\nliveReload: false\nstandbys: ${standbys}\n`)

  const server = spawn(process.execPath, [join(repo, 'dist/src/cli.js'), 'dev', '--port', '0', '--worker-ports', '23000-23999'],
    { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] })
  const lines: Array<Record<string, unknown>> = []
  const listeners = new Set<(line: Record<string, unknown>) => void>()
  let pending = ''
  server.stdout.on('data', (chunk: Buffer) => {
    pending += chunk.toString()
    let newline
    while ((newline = pending.indexOf('\n')) !== -1) {
      const line = JSON.parse(pending.slice(0, newline)) as Record<string, unknown>
      pending = pending.slice(newline + 1)
      lines.push(line)
      for (const listener of listeners) listener(line)
    }
  })
  const nextLine = (match: (line: Record<string, unknown>) => boolean) => new Promise<Record<string, unknown>>((resolve) => {
    const listener = (line: Record<string, unknown>) => {
      if (!match(line)) return
      listeners.delete(listener)
      resolve(line)
    }
    listeners.add(listener)
  })
  const firstStandby = nextLine((line) => line.msg === 'standby ready')
  const url = String((await nextLine((line) => line.msg === 'tqserver listening')).url)
  if (standbys > 0) await firstStandby
  const agent = new Agent({ connections: LOAD_CLIENTS + 1, keepAliveTimeout: 60_000 })
  const getVersion = async () => {
    const res = await agent.request({ origin: url, path: '/app/version', method: 'GET' })
    return (await res.body.json() as { version: number }).version
  }

  let version = 0
  async function measure (label: string, underLoad: boolean): Promise<Phase & { failures: number, requests: number }> {
    const phase: Phase = { build: [], ready: [], total: [], noticed: [], seen: [] }
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
      const standbyReady = nextLine((line) => line.msg === 'standby ready')
      const started = performance.now()
      const startedAt = Date.now()
      await writeFile(versionFile, `export const VERSION = ${version}\n`)
      // Poll every millisecond: a tighter loop would itself load the host it measures.
      while (await getVersion() !== version) await new Promise((resolve) => setTimeout(resolve, 1))
      phase.total.push(performance.now() - started)
      const seenAt = Date.now()
      await switched // the old instance is gone before the next save
      // A person saves again seconds later: by then the next standby is warm. Wait for it here.
      if (standbys > 0) await standbyReady
      const recent = lines.slice(-40)
      const built = recent.findLast((line) => line.msg === 'worker built')
      if (built) phase.build.push(Number(built.durationMs))
      const healthy = recent.findLast((line) => line.to === 'HEALTHY')
      const starting = recent.findLast((line) => line.to === 'STARTING')
      if (healthy && starting) phase.ready.push(Number(healthy.time) - Number(starting.time))
      const noticed = recent.find((line) => line.msg === 'worker files changed' && Number(line.time) >= startedAt)
      if (noticed) phase.noticed.push(Number(noticed.time) - startedAt)
      if (healthy) phase.seen.push(seenAt - Number(healthy.time))
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

function percentile (values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? NaN
}

function report (label: string, phase: Phase, failures: number, requests: number): void {
  const row = (name: string, values: number[]) =>
    `  ${name.padEnd(22)} p50 ${percentile(values, 0.5).toFixed(1).padStart(7)} ms   p95 ${percentile(values, 0.95).toFixed(1).padStart(7)} ms   max ${Math.max(...values).toFixed(1).padStart(7)} ms`
  console.log(`\n${label}: ${SAVES} saves`)
  console.log(row('save -> new version', phase.total))
  console.log(row('  save -> noticed', phase.noticed))
  console.log(row('  esbuild rebuild', phase.build))
  console.log(row('  start -> /health 200', phase.ready))
  console.log(row('  healthy -> answered', phase.seen))
  if (requests > 0) console.log(`  requests ${requests}, failed ${failures}`)
}

console.log(`tqserver dev reload benchmark: node ${process.version}, ${cpus().length} x ${cpus()[0]?.model ?? 'cpu'}, ${standbys} standby`)
await main()
