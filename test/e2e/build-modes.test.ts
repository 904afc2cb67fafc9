// Production and dev builds have pointers of their own (bin/current.json, bin/dev.json): `tqserver
// start` never serves what `tqserver dev` built, a production reload looks at production builds
// only, and neither server's builds prune the build the other one serves.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { access, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { runCliToEnd, startCliServer } from '../helpers/cli.js'
import { clientFor } from '../helpers/host.js'
import { PORTS } from '../helpers/ports.js'
import { useProject } from '../helpers/project.js'
import { within } from '../helpers/wait.js'

interface Health { workers: Record<string, { lastBuild: { id: string, mode: string }, instances: Array<{ build: string }> }> }

/** The app worker's build as /health names it, checked against its instance's. */
async function appBuild (fetch: ReturnType<typeof clientFor>): Promise<{ id: string, mode: string }> {
  const app = (await (await fetch('/health')).body.json() as Health).workers.app!
  assert.deepEqual(app.instances.map((instance) => instance.build), [app.lastBuild.id], 'the instance runs the build /health names')
  return { id: app.lastBuild.id, mode: app.lastBuild.mode }
}

async function version (fetch: ReturnType<typeof clientFor>): Promise<number> {
  return (await (await fetch('/app/version')).body.json() as { version: number }).version
}

test('start after dev in the same root builds and serves production builds, not the dev ones, whatever names them', async (t) => {
  const root = await useProject(t, 'versioned')
  const binDir = join(root, 'workers', 'app', 'bin')
  const dev = await startCliServer(t, 'dev', root, PORTS.buildModesDev)
  const devBuild = await appBuild(clientFor(t, dev.url))
  assert.equal(devBuild.mode, 'dev')
  const devPointer = JSON.parse(await readFile(join(binDir, 'dev.json'), 'utf8')) as { id: string, file: string }
  assert.equal(devPointer.id, devBuild.id)
  assert.match(await readFile(join(binDir, devPointer.file), 'utf8'), /from "tqserver\/worker"/, 'the dev bundle leaves dependencies out')
  await assert.rejects(access(join(binDir, 'current.json')), 'dev writes no production pointer')
  dev.child.kill('SIGTERM')
  assert.equal((await within(30_000, 'the dev server to exit', dev.exited)).code, 0)
  // As an older tqserver left it: the dev build named by current.json.
  await writeFile(join(binDir, 'current.json'), await readFile(join(binDir, 'dev.json')))

  const prod = await startCliServer(t, 'start', root, PORTS.buildModesProd)
  const building = prod.logs.lines.find((line) => line.msg === 'no production build: building')
  assert.deepEqual([building?.worker, building?.reason], ['app', 'bin/current.json names a dev build'])
  const prodBuild = await appBuild(clientFor(t, prod.url))
  assert.equal(prodBuild.mode, 'prod')
  assert.notEqual(prodBuild.id, devBuild.id)
  const pointer = JSON.parse(await readFile(join(binDir, 'current.json'), 'utf8')) as { id: string, file: string, mode: string }
  assert.deepEqual([pointer.id, pointer.mode], [prodBuild.id, 'prod'])
  const bundle = await readFile(join(binDir, pointer.file), 'utf8')
  assert.ok(bundle.length / bundle.split('\n').length > 500, 'the bundle served is minified (long lines)')
  assert.doesNotMatch(bundle, /from "tqserver\/worker"/, 'and has its dependencies bundled')
})

test('beside a dev server in the same root, a production reload keeps to production builds', async (t) => {
  const root = await useProject(t, 'versioned')
  const binDir = join(root, 'workers', 'app', 'bin')
  const setVersion = (n: number) => writeFile(join(root, 'workers', 'app', 'src', 'version.ts'), `export const VERSION = ${n}\n`)
  assert.equal((await runCliToEnd(t, ['build'], { cwd: root })).code, 0)
  const prod = await startCliServer(t, 'start', root, PORTS.buildModesProd)
  const prodFetch = clientFor(t, prod.url)
  const first = await appBuild(prodFetch)
  assert.equal(first.mode, 'prod')

  // The dev server builds at start and after each save: four builds, one more than bin/ keeps.
  const dev = await startCliServer(t, 'dev', root, PORTS.buildModesDev)
  const devFetch = clientFor(t, dev.url)
  for (let n = 1; n <= 3; n++) {
    const switched = dev.logs.next((line) => line.worker === 'app' && line.msg === 'worker switched', 30_000, `dev to switch to version ${n}`)
    await setVersion(n)
    await switched
  }
  assert.equal(await version(devFetch), 3)
  assert.equal((await appBuild(devFetch)).mode, 'dev')
  await access(join(binDir, first.id, 'main.mjs')).catch(() => assert.fail('dev builds pruned the production build'))

  const reload = async () => {
    const finished = prod.logs.next((line) => line.msg === 'reload finished', 30_000, 'the production reload to finish')
    prod.child.kill('SIGHUP')
    return await finished
  }
  assert.deepEqual((await reload()).unchanged, ['app'], 'the dev builds are not production builds: nothing to switch')
  assert.deepEqual(await appBuild(prodFetch), first)
  assert.equal(await version(prodFetch), 0)

  // A production build of the edited source: the reload switches to it, the dev server carries on.
  assert.equal((await runCliToEnd(t, ['build'], { cwd: root })).code, 0)
  assert.deepEqual((await reload()).switched, ['app'])
  const second = await appBuild(prodFetch)
  assert.equal(second.mode, 'prod')
  assert.notEqual(second.id, first.id)
  assert.equal(await version(prodFetch), 3)
  assert.equal((await appBuild(devFetch)).mode, 'dev')
})
