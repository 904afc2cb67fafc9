// Does the host leak across reloads? `tqserver start` runs as its own process with one SDK worker
// and one plain node:http worker; this script restarts the SDK worker N times (SIGHUP after a new
// build would do the same switch) under light keep-alive load, and reads the host's RSS, file
// descriptors and leased ports from /proc and /health before and after.
// Run: npm run bench:leaks [-- reloads]
import { spawn } from 'node:child_process'
import { cp, mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises'
import { cpus, tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Agent } from 'undici'
import { startLoad } from '../test/helpers/load.js'

const RELOADS = Number(process.argv[2] ?? 1000)
const repo = fileURLToPath(new URL('../../', import.meta.url))

async function main (): Promise<void> {
  const root = await mkdtemp(join(tmpdir(), 'tq-bench-leaks-'))
  await cp(join(repo, 'test/fixtures/versioned/workers/app'), join(root, 'workers', 'app'), { recursive: true })
  await cp(join(repo, 'test/fixtures/plain/workers/hello'), join(root, 'workers', 'hello'), { recursive: true })
  await mkdir(join(root, 'node_modules'))
  await symlink(repo, join(root, 'node_modules', 'tqserver'), 'dir')
  // A quick health check, so that its bookkeeping is exercised too.
  await mkdir(join(root, 'config'))
  await writeFile(join(root, 'config/server.yaml'), 'health:\n  interval: 200\n')

  const server = spawn(process.execPath, [join(repo, 'dist/src/cli/main.js'), 'start', '--port', '0', '--worker-ports', '35000-35999'],
    { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] })
  const url = await new Promise<string>((resolve) => {
    let pending = ''
    server.stdout.on('data', (chunk: Buffer) => {
      pending += chunk.toString()
      const match = /"url":"([^"]+)","mode"/.exec(pending)
      if (match) resolve(match[1]!)
      if (pending.length > 1_000_000) pending = pending.slice(-10_000)
    })
  })
  const agent = new Agent({ connections: 4 })
  const get = async (path: string) => (await agent.request({ origin: url, path, method: 'GET' })).body.json()
  const measure = async () => {
    const status = await readFile(`/proc/${server.pid}/status`, 'utf8')
    const health = await get('/health') as { ports: { leased: number } }
    return {
      rssMb: Number(/VmRSS:\s+(\d+)/.exec(status)![1]) / 1024,
      fds: (await readdir(`/proc/${server.pid}/fd`)).length,
      leasedPorts: health.ports.leased
    }
  }

  const load = startLoad(url, '/app', 2)

  // The restart goes through the admin-free path a user has: SIGHUP after a changed worker.yaml.
  const restart = async (i: number) => {
    await writeFile(join(root, 'workers/app/worker.yaml'), `env:\n  ROUND: "${i}"\n`)
    const before = (await get('/health') as { lastReload: { at: number } | null }).lastReload?.at ?? 0
    server.kill('SIGHUP')
    while (((await get('/health') as { lastReload: { at: number } | null }).lastReload?.at ?? 0) === before) {
      await new Promise((resolve) => setTimeout(resolve, 5))
    }
  }

  for (let i = 0; i < 50; i++) await restart(i) // warm up
  const before = await measure()
  const started = performance.now()
  for (let i = 0; i < RELOADS; i++) await restart(1000 + i)
  const seconds = (performance.now() - started) / 1000
  const after = await measure()
  const { ok, failures } = await load.stop()
  await agent.close()
  server.kill('SIGTERM')
  await new Promise((resolve) => server.once('exit', resolve))
  await rm(root, { recursive: true, force: true })

  console.log(`${RELOADS} reloads in ${seconds.toFixed(0)} s, ${ok + failures.length} requests during them, ${failures.length} failed`)
  console.log(`host RSS ${before.rssMb.toFixed(1)} MB -> ${after.rssMb.toFixed(1)} MB; fds ${before.fds} -> ${after.fds}; leased ports ${before.leasedPorts} -> ${after.leasedPorts}`)
}

console.log(`tqserver leak benchmark: node ${process.version}, ${cpus().length} x ${cpus()[0]?.model ?? 'cpu'}`)
await main()
