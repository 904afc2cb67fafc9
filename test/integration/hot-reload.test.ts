// Dev mode: what each kind of file change does, and how bad changes leave the running version
// serving. One host in dev mode; the subtests run in order on the same project.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdir, rename, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { startHost } from '../helpers/host.js'
import type { LogLine } from '../helpers/logs.js'
import { PORTS } from '../helpers/ports.js'
import { useProject } from '../helpers/project.js'

const plainWorker = `import { createServer } from 'node:http'
createServer((req, res) => res.end('extra ' + req.url)).listen(Number(process.env.PORT), process.env.HOST)
`

test('hot reload in dev mode', async (t) => {
  const root = await useProject(t, 'versioned', { 'workers/app/private/data.txt': 'first' })
  // A long debounce makes "a burst is one build" independent of the machine's speed.
  const host = await startHost(t, { root, mode: 'dev', workerPorts: PORTS.hotReload, liveReload: false, reloadDebounce: 150 })
  const app = (file: string) => join(root, 'workers', 'app', file)
  const get = async <T>(path: string): Promise<T> => await (await host.fetch(path)).body.json() as T
  const is = (worker: string, msg: string) => (line: LogLine) => line.worker === worker && line.msg === msg
  const switches = (worker: string) => host.logs.count(is(worker, 'worker switched'))
  const nextSwitch = (worker: string) => host.logs.next(is(worker, 'worker switched'), 15_000, `${worker} to switch`)
  const builds = () => host.logs.count(is('app', 'worker built'))

  await t.test('a source change is built and switched in', async () => {
    const switched = nextSwitch('app')
    await writeFile(app('src/version.ts'), 'export const VERSION = 1\n')
    assert.equal((await switched).reason, 'source changed')
    assert.equal((await get<{ version: number }>('/app/version')).version, 1)
  })

  await t.test('a build error keeps the running version and is reported with its place; the fix switches', async () => {
    const failed = host.logs.next(is('app', 'worker build failed; the running version keeps serving'), 15_000, 'the build to fail')
    await writeFile(app('src/version.ts'), 'export const VERSION = \n')
    await failed
    assert.equal((await get<{ version: number }>('/app/version')).version, 1)
    const error = host.app.tqserver.status().workers.app!.lastBuild.error!
    assert.deepEqual(error.locations.map(({ file, line }) => ({ file, line })), [{ file: 'src/version.ts', line: 2 }])
    const switched = nextSwitch('app')
    await writeFile(app('src/version.ts'), 'export const VERSION = 2\n')
    await switched
    assert.equal((await get<{ version: number }>('/app/version')).version, 2)
    assert.equal(host.app.tqserver.status().workers.app!.lastBuild.error, null)
  })

  await t.test('a new version that crashes at boot keeps the old one serving, with the reason', async () => {
    const failed = host.logs.next(is('app', 'new instance failed to start; the running version keeps serving'), 15_000, 'the new instance to fail')
    await writeFile(app('src/version.ts'), "export const VERSION = 3\nconsole.error('about to fail')\nthrow new Error('boom at boot')\n")
    await failed
    assert.equal((await get<{ version: number }>('/app/version')).version, 2)
    const report = host.app.tqserver.status().workers.app!
    assert.equal(report.status, 'healthy')
    assert.match(report.lastError!.message, /exited during start-up with code 1; its last output:\nabout to fail[\s\S]*boom at boot/)
    assert.deepEqual(report.instances.map((instance) => instance.state), ['HEALTHY'])
    const switched = nextSwitch('app')
    await writeFile(app('src/version.ts'), 'export const VERSION = 4\n')
    await switched
    assert.equal((await get<{ version: number }>('/app/version')).version, 4)
  })

  await t.test('a burst of 10 saves in 50 ms gives one build', async () => {
    const before = builds()
    const switched = nextSwitch('app')
    for (let i = 5; i < 15; i++) {
      await writeFile(app('src/version.ts'), `export const VERSION = ${i}\n`)
      await new Promise((resolve) => setTimeout(resolve, 5)) // the burst itself is under test
    }
    await switched
    assert.equal((await get<{ version: number }>('/app/version')).version, 14)
    assert.equal(builds() - before, 1)
  })

  await t.test("an editor's atomic save (temp file renamed over) is a change", async () => {
    const switched = nextSwitch('app')
    await writeFile(app('src/.version.ts.swp'), 'export const VERSION = 15\n')
    await rename(app('src/.version.ts.swp'), app('src/version.ts'))
    await switched
    assert.equal((await get<{ version: number }>('/app/version')).version, 15)
  })

  await t.test('a private/ change switches without a build', async () => {
    const { pid } = await get<{ pid: number }>('/app/private')
    const before = builds()
    const switched = nextSwitch('app')
    await writeFile(app('private/data.txt'), 'second')
    assert.equal((await switched).reason, 'private changed')
    const after = await get<{ data: string, pid: number }>('/app/private')
    assert.equal(after.data, 'second')
    assert.notEqual(after.pid, pid)
    assert.equal(builds(), before)
  })

  await t.test('a public/ change is served at once, without a switch', async () => {
    const count = switches('app')
    const rescanned = host.logs.next(is('app', 'public files rescanned'), 15_000, 'public/ to be rescanned')
    await mkdir(app('public'), { recursive: true })
    await writeFile(app('public/new.txt'), 'fresh file')
    await rescanned
    assert.equal(await (await host.fetch('/app/new.txt')).body.text(), 'fresh file')
    assert.equal(switches('app'), count)
  })

  await t.test('worker.yaml: an invalid edit keeps the running version; a valid one switches', async () => {
    const invalid = host.logs.next(is('app', 'worker configuration is invalid; the running version keeps serving'), 15_000, 'the invalid worker.yaml to be reported')
    await writeFile(app('worker.yaml'), 'instancez: 2\n')
    await invalid
    assert.equal((await get<{ version: number }>('/app/version')).version, 15)
    assert.match(host.app.tqserver.status().workers.app!.lastError!.message, /unknown key "instancez"/)
    const switched = nextSwitch('app')
    await writeFile(app('worker.yaml'), 'env:\n  GREETING: hello from yaml\n')
    assert.equal((await switched).reason, 'config changed')
    assert.equal((await get<{ value: string }>('/app/env/GREETING')).value, 'hello from yaml')
  })

  await t.test('a worker folder added at run time is built, started and routed; removed, it is stopped', async () => {
    const started = nextSwitch('extra')
    await mkdir(join(root, 'workers', 'extra', 'src'), { recursive: true })
    await writeFile(join(root, 'workers', 'extra', 'src', 'main.ts'), plainWorker)
    await started
    assert.equal(await (await host.fetch('/extra/hi')).body.text(), 'extra /hi')
    const stopped = host.logs.next((line) => line.worker === 'extra' && line.to === 'STOPPED', 15_000, 'extra to stop')
    await rm(join(root, 'workers', 'extra'), { recursive: true })
    await stopped
    const gone = await host.fetch('/extra/hi')
    assert.equal(gone.statusCode, 404)
    assert.equal((await gone.body.json() as { code: string }).code, 'TQ_ERR_PROXY_NO_ROUTE')
    assert.equal(host.app.tqserver.status().workers.extra, undefined)
  })
})
