// The switch's queue: one switch per worker at a time, and every request made during a
// switch merged into exactly one more, which uses the latest spec and all the work asked for (and
// leaves no instance that was to be replaced behind).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mergePlans, WorkerSwitch, type SwitchPlan, type SwitchHost } from '../../src/supervision/worker-switch.js'
import { RouteTable } from '../../src/routing/route-table.js'
import { StaticFiles } from '../../src/routing/static-files.js'
import type { WorkerInstance } from '../../src/process/worker-instance.js'
import type { BuildResult } from '../../src/build/builder.js'
import type { WorkerSpec } from '../../src/config/worker-discovery.js'
import { testSpec } from '../helpers/spec.js'

const spec = (name: string, note: string): WorkerSpec => testSpec(name, `/${name}`, { instances: 0, entry: note })

/** A host whose builds finish when the test says; it records what each switch asked for. */
function fakeHost () {
  const builds: Array<{ entry: string, finish: () => void }> = []
  const log = { level: 'info', trace () {}, debug () {}, info () {}, warn () {}, error () {}, fatal () {}, child () { return log } }
  const host: SwitchHost = {
    routes: new RouteTable(),
    log,
    stopping: false,
    current: () => undefined,
    build: (s) => new Promise<BuildResult>((resolve) => {
      builds.push({ entry: s.entry, finish: () => resolve({ id: s.entry, mode: 'dev' as const, file: '', builtAt: 0, durationMs: 0, inputs: [] }) })
    }),
    createInstance: () => { throw new Error('no instances in this test') },
    retire: async () => {},
    committed: () => {},
    finished: () => {},
    startFailed: async () => {}
  }
  return { host, builds }
}

const plan = (note: string, extra: Partial<SwitchPlan> = {}): SwitchPlan => ({ spec: spec('api', note), rebuild: true, restart: false, reason: note, ...extra })

test('requests made during a switch are merged into exactly one more switch', async () => {
  const { host, builds } = fakeHost()
  const switcher = new WorkerSwitch(host)
  const first = switcher.run(plan('v1'))
  await new Promise((resolve) => setImmediate(resolve))
  assert.deepEqual(builds.map((b) => b.entry), ['v1'])

  const second = switcher.run(plan('v2'))
  const third = switcher.run(plan('v3'))
  const fourth = switcher.run(plan('v4'))
  assert.equal(second, third)
  assert.equal(third, fourth)
  builds[0]!.finish()
  assert.equal(await first, 'switched')
  await new Promise((resolve) => setImmediate(resolve))
  assert.deepEqual(builds.map((b) => b.entry), ['v1', 'v4'], 'one more switch, with the latest spec')
  builds[1]!.finish()
  assert.equal(await fourth, 'switched')

  const fifth = switcher.run(plan('v5'))
  await new Promise((resolve) => setImmediate(resolve))
  builds[2]!.finish()
  assert.equal(await fifth, 'switched')
  assert.equal(builds.length, 3)
  await switcher.idle()
})

test('other workers switch independently; idle() waits for all of them', async () => {
  const { host, builds } = fakeHost()
  const switcher = new WorkerSwitch(host)
  void switcher.run({ ...plan('a1'), spec: spec('a', 'a1') })
  void switcher.run({ ...plan('b1'), spec: spec('b', 'b1') })
  await new Promise((resolve) => setImmediate(resolve))
  assert.deepEqual(builds.map((b) => b.entry), ['a1', 'b1'], 'both started at once')
  let idle = false
  const waiting = switcher.idle().then(() => { idle = true })
  builds[0]!.finish()
  await new Promise((resolve) => setImmediate(resolve))
  assert.equal(idle, false)
  builds[1]!.finish()
  await waiting
})

test('a merged request keeps the work each asked for: a rebuild and a restart', async () => {
  // One instance serves build "same", and every build gives "same" again (an edit that changes
  // nothing): a switch then starts a new instance only when a restart was asked for.
  const { host, builds } = fakeHost()
  const started: string[] = []
  const serving = { state: { is: () => true }, origin: 'http://127.0.0.1:1', beginDrain () {} } as unknown as WorkerInstance
  host.routes.setWorker(spec('api', 'v0'), new StaticFiles('/nonexistent'))
  host.routes.addInstance('api', serving)
  host.current = () => ({ spec: spec('api', 'v0'), build: { id: 'same', mode: 'dev' as const, file: '', builtAt: 0, durationMs: 0, inputs: [] } })
  host.build = (s) => new Promise<BuildResult>((resolve) => {
    builds.push({ entry: s.entry, finish: () => resolve({ id: 'same', mode: 'dev' as const, file: '', builtAt: 0, durationMs: 0, inputs: [] }) })
  })
  host.createInstance = (s) => {
    started.push(s.entry)
    return { start: async () => {}, state: { is: () => false } } as unknown as WorkerInstance
  }
  const withInstance = (note: string, extra: Partial<SwitchPlan>) => ({ ...plan(note, extra), spec: testSpec('api', '/api', { entry: note }) })

  const switcher = new WorkerSwitch(host)
  assert.equal(await switcher.run(withInstance('v1', { rebuild: false, restart: false })), 'unchanged', 'nothing asked, nothing done')
  const first = switcher.run(withInstance('v2', { rebuild: true, restart: false }))
  await new Promise((resolve) => setImmediate(resolve))
  // Merged while v2 builds: each asks for something the last one does not.
  const merged = switcher.run(withInstance('v3', { rebuild: false, restart: true }))
  void switcher.run(withInstance('v4', { rebuild: true, restart: false }))
  void switcher.run(withInstance('v5', { rebuild: false, restart: false }))
  builds[0]!.finish()
  assert.equal(await first, 'unchanged', 'a rebuild alone that gives the same build changes nothing')
  await new Promise((resolve) => setImmediate(resolve))
  assert.deepEqual(builds.map((b) => b.entry), ['v2', 'v5'], 'the rebuild v4 asked for happens, with the latest spec')
  builds[1]!.finish()
  assert.equal(await merged, 'switched', 'the restart v3 asked for happens')
  assert.deepEqual(started, ['v5'])
})

test('merged replacements of single instances leave none behind', () => {
  const a = { id: 'a' } as unknown as WorkerInstance
  const b = { id: 'b' } as unknown as WorkerInstance
  const replace = (instance: WorkerInstance) => plan('old spec', { rebuild: false, restart: true, replace: instance })
  const built = { id: 'sighup', mode: 'prod' as const, file: '', builtAt: 0, durationMs: 0, inputs: [] }

  assert.equal(mergePlans(replace(a), replace(a)).replace, a, 'the same one: still only that one')
  const both = mergePlans(replace(a), replace(b))
  assert.deepEqual([both.replace, both.restart], [undefined, true], 'two: every instance is restarted')
  const afterReload = mergePlans(plan('new spec', { build: built }), replace(a))
  assert.deepEqual([afterReload.replace, afterReload.spec.entry, afterReload.build, afterReload.restart], [undefined, 'new spec', built, true],
    'one behind a waiting switch: that switch, with its spec and build, restarting every instance')
  const beforeReload = mergePlans(replace(a), plan('new spec'))
  assert.deepEqual([beforeReload.replace, beforeReload.spec.entry, beforeReload.restart], [undefined, 'new spec', true])
})
