// Production reload: SIGHUP to serving for 1 and for 20 changed workers, with and without load.
// `tqserver start` runs as its own process over 20 copies of the versioned SDK worker
// (test/fixtures/versioned); a round bumps the version of 1 or of all 20 workers, runs
// `tqserver build` for them, sends SIGHUP, and times until every changed worker answers with its
// new version. Run: npm run bench:prod-reload [-- rounds]
import { spawn, spawnSync } from 'node:child_process'
import { cp, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises'
import { cpus, tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Agent } from 'undici'
import { LogRecorder } from '../test/helpers/logs.js'
import { startLoad } from '../test/helpers/load.js'
import { median } from './stats.js'

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

  const server = spawn(process.execPath, [cli, 'start', '--port', '0', '--worker-ports', '34000-34999'], { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] })
  // The server's JSON log lines, read with the tests' recorder; a 20-worker reload takes seconds.
  const log = new LogRecorder()
  server.stdout.on('data', (chunk: Buffer) => log.write(chunk))
  const nextLine = (msg: string) => log.next((line) => line.msg === msg, 120_000, msg)
  const url = String((await nextLine('tqserver listening')).url)
  const hostRss = async () => (Number(/VmRSS:\s+(\d+)/.exec(await readFile(`/proc/${server.pid}/status`, 'utf8'))![1]) / 1024).toFixed(0)
  console.log(`host RSS with ${WORKERS} workers running: ${await hostRss()} MB`)
  const agent = new Agent({ connections: 64, keepAliveTimeout: 60_000 })
  const versionOf = async (name: string) => {
    const res = await agent.request({ origin: url, path: `/${name}/version`, method: 'GET' })
    return (await res.body.json() as { version: number }).version
  }

  let version = 0
  async function round (changed: string[]): Promise<{ total: number, reload: number }> {
    version++
    for (const name of changed) await writeFile(join(root, 'workers', name, 'src/version.ts'), `export const VERSION = ${version}\n`)
    build(root, changed)
    const finished = nextLine('reload finished')
    const started = performance.now()
    server.kill('SIGHUP')
    await Promise.all(changed.map(async (name) => {
      while (await versionOf(name) !== version) await new Promise((resolve) => setTimeout(resolve, 2))
    }))
    const total = performance.now() - started
    return { total, reload: Number((await finished).durationMs) }
  }

  for (const underLoad of [false, true]) {
    const load = underLoad ? startLoad(url, names.map((name) => `/${name}`), LOAD_CLIENTS) : undefined
    for (const count of [1, WORKERS]) {
      const totals: number[] = []
      const reloads: number[] = []
      for (let r = 0; r < (count === 1 ? ROUNDS * 2 : ROUNDS); r++) {
        const { total, reload } = await round(names.slice(0, count))
        totals.push(total)
        reloads.push(reload)
      }
      console.log(`${underLoad ? 'under load' : 'no load   '} ${String(count).padStart(2)} changed: SIGHUP -> all serving p50 ${median(totals).toFixed(0)} ms, max ${Math.max(...totals).toFixed(0)} ms; reload summary p50 ${median(reloads).toFixed(0)} ms (${totals.length} rounds)`)
    }
    const result = await load?.stop()
    if (result) console.log(`  requests ${result.ok + result.failures.length}, failed ${result.failures.length} (${LOAD_CLIENTS} keep-alive clients over ${WORKERS} workers)`)
  }
  console.log(`host RSS after the reloads: ${await hostRss()} MB`)
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
