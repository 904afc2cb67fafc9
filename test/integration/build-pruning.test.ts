// Old builds in workers/<name>/bin/ are pruned after each build: the current build and every build
// a running instance uses are kept, then the newest others of the same mode up to three builds in
// all; the rest go. Builds of the other mode (a dev server beside a production one) are left alone.
// Through a dev host: a running version outlives newer builds that failed to start, so it can
// still restart after a crash.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readdir, readFile, utimes, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { pino } from 'pino'
import { Builder } from '../../src/build/builder.js'
import { defer } from '../helpers/cleanup.js'
import { startHost } from '../helpers/host.js'
import { PORTS } from '../helpers/ports.js'
import { useProject } from '../helpers/project.js'
import { testSpec } from '../helpers/spec.js'
import { until } from '../helpers/wait.js'

/** The build folders in bin/, sorted (not current.json, not a temporary folder). */
async function builds (binDir: string): Promise<string[]> {
  const entries = await readdir(binDir, { withFileTypes: true })
  return entries.filter((entry) => entry.isDirectory() && !entry.name.startsWith('.')).map((entry) => entry.name).sort()
}

test('a build keeps the current build and those in use, then the newest others up to three', async (t) => {
  const root = await useProject(t, 'plain')
  const dir = join(root, 'workers', 'hello')
  const binDir = join(dir, 'bin')
  const spec = testSpec('hello', '/hello', { dir, entry: 'src/main.ts' })
  const builder = new Builder('prod', pino({ level: 'silent' }))
  defer(t, () => builder.dispose())
  const ids: string[] = []
  /** Builds version `n` (its own output, so its own folder), dated n minutes after the first. */
  const build = async (n: number, inUse: string[] = []) => {
    await writeFile(join(dir, 'src', 'main.ts'), `import { createServer } from 'node:http'\ncreateServer((req, res) => res.end('version ${n}')).listen(Number(process.env.PORT), process.env.HOST)\n`)
    const result = await builder.build(spec, inUse)
    // Folder times decide which builds are newest; set them, so that builds made within one tick
    // of the file system's clock still have an order.
    const at = new Date(Date.UTC(2026, 0, 1, 0, n))
    await utimes(join(binDir, result.id), at, at)
    ids[n] = result.id
    assert.equal(JSON.parse(await readFile(join(binDir, 'current.json'), 'utf8')).id, result.id, `version ${n} is current`)
    return builds(binDir)
  }
  const of = (...versions: number[]) => versions.map((n) => ids[n]!).sort()

  await build(1)
  await build(2)
  assert.deepEqual(await build(3), of(1, 2, 3), 'three builds are kept')
  assert.deepEqual(await build(4), of(2, 3, 4), 'the oldest goes')
  assert.deepEqual(await build(5, [ids[2]!]), of(2, 4, 5), 'one in use is kept, however old; the oldest of the rest goes')
  assert.deepEqual(await build(6, [ids[2]!, ids[4]!]), of(2, 4, 6), 'two in use and the current: three')
  assert.deepEqual(await build(7, [ids[2]!, ids[4]!, ids[6]!]), of(2, 4, 6, 7), 'all in use are kept, even past three')
  assert.deepEqual(await build(8), of(6, 7, 8), 'once none is in use, the newest three')
})

test('each mode prunes only its own builds: a dev server beside a production one in the root keeps its build', async (t) => {
  const root = await useProject(t, 'plain')
  const dir = join(root, 'workers', 'hello')
  const binDir = join(dir, 'bin')
  const spec = testSpec('hello', '/hello', { dir, entry: 'src/main.ts' })
  const builders = { prod: new Builder('prod', pino({ level: 'silent' })), dev: new Builder('dev', pino({ level: 'silent' })) }
  defer(t, () => Promise.all([builders.prod.dispose(), builders.dev.dispose()]))
  const ids: string[] = []
  const build = async (mode: 'prod' | 'dev', n: number) => {
    await writeFile(join(dir, 'src', 'main.ts'), `import { createServer } from 'node:http'\ncreateServer((req, res) => res.end('version ${n}')).listen(Number(process.env.PORT), process.env.HOST)\n`)
    const result = await builders[mode].build(spec)
    const at = new Date(Date.UTC(2026, 0, 1, 0, n))
    await utimes(join(binDir, result.id), at, at)
    ids[n] = result.id
    const pointer = JSON.parse(await readFile(join(binDir, mode === 'prod' ? 'current.json' : 'dev.json'), 'utf8')) as { id: string, mode: string }
    assert.deepEqual([pointer.id, pointer.mode], [result.id, mode], `version ${n} is the current ${mode} build`)
    return builds(binDir)
  }
  const of = (...versions: number[]) => versions.map((n) => ids[n]!).sort()

  await build('prod', 1)
  for (let n = 2; n <= 4; n++) await build('dev', n)
  assert.deepEqual(await build('dev', 5), of(1, 3, 4, 5), 'four dev builds: the newest three, and the production one')
  await build('prod', 6)
  await build('prod', 7)
  assert.deepEqual(await build('prod', 8), of(3, 4, 5, 6, 7, 8), 'production keeps its newest three and leaves the dev builds alone')
  assert.deepEqual(await build('dev', 9), of(4, 5, 6, 7, 8, 9))
})

test('dev: a running version outlives newer builds that failed to start, and restarts from its build', async (t) => {
  const root = await useProject(t, 'versioned')
  // A long debounce makes each save one report (and one switch), whatever the machine's speed: a
  // late second report of a failing save would start it again just as the test kills the instance.
  const host = await startHost(t, { root, mode: 'dev', workerPorts: PORTS.buildPruning, liveReload: false, reloadDebounce: 150 })
  const app = (file: string) => join(root, 'workers', 'app', file)
  const binDir = app('bin')
  const get = async <T>(path: string): Promise<T> => await (await host.fetch(path)).body.json() as T
  const instance = () => host.app.tqserver.status().workers.app!.instances[0]!

  const switched = host.logs.next((line) => line.worker === 'app' && line.msg === 'worker switched', 15_000, 'version 1 to switch in')
  await writeFile(app('src/version.ts'), 'export const VERSION = 1\n')
  await switched
  const running = instance()
  assert.equal((await get<{ version: number }>('/app/version')).version, 1)

  // Three newer builds, each failing at boot: the running version keeps serving from its build.
  for (let n = 2; n <= 4; n++) {
    const failed = host.logs.next((line) => line.worker === 'app' && line.msg === 'new instance failed to start; the running version keeps serving', 15_000, `version ${n} to fail at boot`)
    await writeFile(app('src/version.ts'), `export const VERSION = ${n}\nthrow new Error('version ${n} fails at boot')\n`)
    await failed
  }
  const kept = await builds(binDir)
  assert.ok(kept.includes(running.build), `the running build ${running.build} is still in bin/ (${kept.join(', ')})`)
  assert.equal(kept.length, 3, 'the running build, the current one and the newest other')

  // It crashes: the restart needs its build.
  await host.app.tqserver.idle()
  process.kill(running.pid!, 'SIGKILL')
  const restarted = await until(20_000, 'the instance to be restarted and healthy', () => {
    const now = instance()
    return now.pid !== running.pid && now.state === 'HEALTHY' ? now : undefined
  })
  assert.equal(restarted.build, running.build)
  assert.equal((await get<{ version: number }>('/app/version')).version, 1)
})

test('two builders of one worker at once (two servers in one root): both get the build, neither fails', async (t) => {
  const root = await useProject(t, 'plain')
  const dir = join(root, 'workers', 'hello')
  const spec = testSpec('hello', '/hello', { dir, entry: 'src/main.ts' })
  const builders = [new Builder('prod', pino({ level: 'silent' })), new Builder('prod', pino({ level: 'silent' }))]
  defer(t, () => Promise.all(builders.map((builder) => builder.dispose())))
  const [first, second] = await Promise.all(builders.map((builder) => builder.build(spec, [])))
  assert.equal(first!.id, second!.id)
  assert.deepEqual(await builds(join(dir, 'bin')), [first!.id])
})
