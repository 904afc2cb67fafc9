// Dev mode's watcher (src/reload/watcher.ts): a build input outside workers/ rebuilds the workers
// that import it and no other; editors' temp files change nothing; and a save that chokidar drops
// (it ignores a file's further changes for 50 ms after one) is still reported, by the re-check
// 60 ms after each change, while a single save is reported once.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { EventEmitter } from 'node:events'
import { writeFileSync } from 'node:fs'
import { rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { pino } from 'pino'
import { WorkerWatcher, type ChangeKind } from '../../src/reload/watcher.js'
import { defer } from '../helpers/cleanup.js'
import { startHost } from '../helpers/host.js'
import type { LogLine } from '../helpers/logs.js'
import { PORTS } from '../helpers/ports.js'
import { useProject } from '../helpers/project.js'
import { within } from '../helpers/wait.js'

test('dev: inputs outside workers/ and editor temp files', async (t) => {
  const root = await useProject(t, 'shared-input')
  // A long debounce puts the changes of one test step into one report, whatever the machine's speed.
  const host = await startHost(t, { root, mode: 'dev', workerPorts: PORTS.watcherInputs, liveReload: false, reloadDebounce: 150 })
  const is = (worker: string, msg: string) => (line: LogLine) => line.worker === worker && line.msg === msg
  const count = (worker: string, msg: string) => host.logs.count(is(worker, msg))
  const get = async <T>(path: string): Promise<T> => await (await host.fetch(path)).body.json() as T

  await t.test('a shared file imported from outside workers/ rebuilds the worker that imports it, and only that one', async () => {
    assert.equal((await get<{ greeting: string }>('/uses-shared')).greeting, 'hello')
    const standaloneBuilds = count('standalone', 'worker built')
    const switched = host.logs.next(is('uses-shared', 'worker switched'), 15_000, 'uses-shared to switch')
    await writeFile(join(root, 'shared', 'greeting.ts'), "export const GREETING = 'hello again'\n")
    assert.equal((await switched).reason, 'source changed')
    assert.equal((await get<{ greeting: string }>('/uses-shared')).greeting, 'hello again')
    await host.app.tqserver.idle()
    assert.equal(count('standalone', 'worker built'), standaloneBuilds, 'standalone does not import it')
    assert.equal(count('standalone', 'worker switched'), 1, 'standalone switched only when it started')
  })

  await t.test("editors' temp files, backups and vim's 4913 probe change nothing", async () => {
    const src = (file: string) => join(root, 'workers', 'uses-shared', 'src', file)
    const builds = count('uses-shared', 'worker built')
    const files = host.logs.next(is('uses-shared', 'worker files changed'), 15_000, 'the changes to be reported')
    await writeFile(src('main.ts.swp'), 'vim swap')
    await writeFile(src('.main.ts.swx'), 'vim swap')
    await writeFile(src('main.ts~'), 'backup')
    await writeFile(src('main.ts.tmp'), 'temp')
    await writeFile(src('4913'), '')
    await rm(src('4913'))
    // Then a change that is reported (public/: no build), in the same debounce window.
    await writeFile(join(root, 'workers', 'uses-shared', 'public', 'sentinel.txt'), 'seen')
    assert.deepEqual((await files).changes, ['public'])
    await host.app.tqserver.idle()
    assert.equal(count('uses-shared', 'worker built'), builds, 'no build')
  })
})

test('the re-check reports a save chokidar dropped, and a single save once', async (t) => {
  const root = await useProject(t, 'shared-input')
  const file = join(root, 'workers', 'uses-shared', 'src', 'main.ts')
  const reports = new EventEmitter()
  let onReport: (() => void) | undefined
  const watcher = new WorkerWatcher({
    workersDir: join(root, 'workers'),
    // Reported as soon as chokidar tells: the report, and what the test does on it, fall in
    // chokidar's 50 ms window after the change.
    debounceMs: 0,
    log: pino({ level: 'silent' }),
    onChange: (worker: string, kinds: Set<ChangeKind>) => {
      onReport?.()
      reports.emit('report', worker, [...kinds])
    }
  })
  await watcher.start()
  defer(t, () => watcher.close())
  const nextReport = (what: string) => within(10_000, what, new Promise<[string, ChangeKind[]]>((resolve) => {
    reports.once('report', (worker: string, kinds: ChangeKind[]) => resolve([worker, kinds]))
  }))
  const reportsWithin = (ms: number) => new Promise<number>((resolve) => {
    let seen = 0
    const listener = () => seen++
    reports.on('report', listener)
    setTimeout(() => {
      reports.off('report', listener)
      resolve(seen)
    }, ms)
  })

  await t.test('a second save while chokidar ignores the file is reported', async () => {
    // The second save comes right after the first is reported (a build would have read the file
    // by then): chokidar, still within 50 ms of the first change, does not report it.
    onReport = () => {
      onReport = undefined
      writeFileSync(file, '// second save\n')
    }
    const first = nextReport('the first save to be reported')
    const second = first.then(() => nextReport('the second save to be reported'))
    writeFileSync(file, '// first save\n')
    assert.deepEqual(await first, ['uses-shared', ['source']])
    assert.deepEqual(await second, ['uses-shared', ['source']])
  })

  await t.test('a single save is reported once', async () => {
    // Let the previous test's re-checks run out first; time itself is under test here.
    await reportsWithin(300)
    const first = nextReport('the save to be reported')
    writeFileSync(file, '// one save\n')
    await first
    assert.equal(await reportsWithin(500), 0, 'reported again by the re-check, 60 ms later')
  })
})
