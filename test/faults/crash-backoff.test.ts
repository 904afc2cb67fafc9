// The restart policy with real crashes: the delay doubles from restartDelay up to restartDelayMax;
// crashLimit crashes within crashWindow end in FAILED however long each run lasted, and crashes
// further apart than the window never add up; a FAILED worker is tried again after a cool-down
// that doubles, and on a save (dev).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFile, unlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { startHost, type Host } from '../helpers/host.js'
import type { LogLine } from '../helpers/logs.js'
import { PORTS } from '../helpers/ports.js'
import { useProject } from '../helpers/project.js'

/**
 * Node's timers count from the event loop's clock, read at the start of a loop turn, so a timer
 * may fire a few ms before its delay has passed by the wall clock that log times use.
 */
const TIMER_SLACK_MS = 50
/** The marker file that makes crashy crash at boot, at the project root (outside workers/). */
const MARKER = 'crash-at-boot'

async function project (t: Parameters<typeof useProject>[0], settings: string, env: Record<string, string> = {}) {
  const yaml = Object.entries({ CRASH_MARKER: `../../${MARKER}`, ...env }).map(([key, value]) => `  ${key}: "${value}"\n`).join('')
  return useProject(t, 'crash-on-demand', { 'config/server.yaml': settings, 'workers/crashy/worker.yaml': `env:\n${yaml}` })
}

/** Crashes the serving instance; from then on every start crashes at boot (the marker). */
async function crashLoop (host: Host, root: string): Promise<void> {
  await (await host.fetch('/crashy/')).body.dump()
  await writeFile(join(root, MARKER), '')
  await (await host.fetch('/crashy/crash')).body.dump()
}

const changes = (host: Host) => host.logs.lines.filter((line) => line.msg === 'worker state changed' && line.worker === 'crashy')
const toState = (to: string) => (line: LogLine) => line.msg === 'worker state changed' && line.worker === 'crashy' && line.to === to

test('the restart delay doubles from restartDelay up to restartDelayMax, and each delay is waited', async (t) => {
  const root = await project(t, 'restartDelay: 100\nrestartDelayMax: 400\ncrashLimit: 6\ncrashWindow: 60000\n')
  const host = await startHost(t, { root, workerPorts: PORTS.crashBackoff })
  // One crash at run time, then five at boot.
  await crashLoop(host, root)
  const failed = await host.logs.waitFor(toState('FAILED'), 20_000, 'the crash loop to end in FAILED')
  assert.match(String(failed.reason), /^crashed 6 times within 60000 ms; the last: .+/)

  const lines = changes(host)
  const backoffs = lines.filter((line) => line.to === 'BACKOFF')
  assert.deepEqual(backoffs.map((line) => line.reason), [100, 200, 400, 400, 400].map((ms) => `restart in ${ms} ms`))
  for (const backoff of backoffs) {
    const restart = lines.find((line) => line.from === 'BACKOFF' && line.to === 'STARTING' && (line.time as number) >= (backoff.time as number))!
    const delay = Number(/restart in (\d+) ms/.exec(String(backoff.reason))![1])
    const waited = (restart.time as number) - (backoff.time as number)
    assert.ok(waited >= delay - TIMER_SLACK_MS, `restarted ${waited} ms after a crash announced "${String(backoff.reason)}"`)
  }
  assert.deepEqual(host.app.tqserver.status().events.filter((e) => e.type === 'crashed').map((e) => e.message.replace(/^pid \d+; /, '')),
    ['restart in 100 ms', 'restart in 200 ms', 'restart in 400 ms', 'restart in 400 ms', 'restart in 400 ms'])
})

test('crashLimit crashes within crashWindow end in FAILED, however long each run lasted', async (t) => {
  // Every run serves for a second before it crashes: a rule that forgave long runs (PM2's
  // min_uptime) would restart this worker for ever.
  const root = await project(t, 'restartDelay: 100\ncrashLimit: 3\ncrashWindow: 60000\n', { CRASH_AFTER_MS: '1000' })
  const host = await startHost(t, { root, workerPorts: PORTS.crashBackoff })
  const failed = await host.logs.waitFor(toState('FAILED'), 30_000, 'three crashes to end in FAILED')
  assert.match(String(failed.reason), /^crashed 3 times within 60000 ms; the last: exited with code \d+; retry in 30000 ms$/)
  // A run counts from STARTING: the worker's timer starts when it listens, which HEALTHY follows
  // by a health check and, on a busy machine, by a few hundred ms.
  const lines = changes(host)
  const runs = lines.filter((line) => line.to === 'STARTING').map((starting) => {
    const crashed = lines.find((line) => line.from === 'HEALTHY' && line.to === 'CRASHED' && (line.time as number) >= (starting.time as number))!
    return (crashed.time as number) - (starting.time as number)
  })
  assert.equal(runs.length, 3)
  for (const ms of runs) assert.ok(ms >= 1000 - TIMER_SLACK_MS, `a run lasted ${ms} ms before its crash`)
  const worker = host.app.tqserver.status().workers.crashy!
  assert.deepEqual([worker.status, worker.instances[0]!.state, worker.instances[0]!.restarts], ['unhealthy', 'FAILED', 2])
})

test('crashes further apart than crashWindow never add up to crashLimit', async (t) => {
  // Runs of 600 ms and a window of 300 ms: each crash is alone in its window.
  const root = await project(t, 'restartDelay: 100\ncrashLimit: 2\ncrashWindow: 300\n', { CRASH_AFTER_MS: '600' })
  const host = await startHost(t, { root, workerPorts: PORTS.crashBackoff })
  let backoffs = 0
  await host.logs.waitFor((line) => toState('FAILED')(line) || (toState('BACKOFF')(line) && ++backoffs === 3), 30_000, 'three crashes, each restarted, or FAILED')
  const lines = changes(host)
  assert.equal(lines.filter((line) => line.to === 'FAILED').length, 0)
  assert.deepEqual(lines.filter((line) => line.to === 'BACKOFF').map((line) => line.reason).slice(0, 3), ['restart in 100 ms', 'restart in 100 ms', 'restart in 100 ms'],
    'each crash is the first in its window: the delay starts again from restartDelay')
})

test('dev: a FAILED worker is tried again on a save', async (t) => {
  const root = await project(t, 'restartDelay: 100\ncrashLimit: 2\n')
  await writeFile(join(root, MARKER), '')
  const host = await startHost(t, { root, mode: 'dev', workerPorts: PORTS.crashBackoff, liveReload: false, standbys: 0 })
  await host.logs.waitFor(toState('FAILED'), 20_000, 'the crash loop at boot to end in FAILED')
  const down = await host.fetch('/crashy/')
  assert.equal(down.statusCode, 503)
  await down.body.dump()

  // What made it crash is gone (outside workers/: no change is seen). A save, even one that
  // changes nothing (the same build), tries it again.
  await unlink(join(root, MARKER))
  const switched = host.logs.next((line) => line.worker === 'crashy' && line.msg === 'worker switched', 20_000, 'the save to start the worker')
  const main = join(root, 'workers', 'crashy', 'src', 'main.ts')
  await writeFile(main, await readFile(main, 'utf8'))
  assert.equal((await switched).reason, 'source changed')
  const res = await host.fetch('/crashy/')
  assert.equal(res.statusCode, 200)
  await res.body.dump()
  const worker = host.app.tqserver.status().workers.crashy!
  assert.deepEqual([worker.status, worker.lastError], ['healthy', null])
  assert.ok(changes(host).some((line) => line.from === 'FAILED' && line.to === 'STOPPED'), 'the FAILED instance was replaced')
})

test('a FAILED worker is tried again after failedRetryDelay, doubling up to failedRetryDelayMax, and serves once the cause is gone', async (t) => {
  const root = await project(t, 'restartDelay: 50\ncrashLimit: 2\ncrashWindow: 60000\nfailedRetryDelay: 200\nfailedRetryDelayMax: 400\n')
  const host = await startHost(t, { root, workerPorts: PORTS.crashBackoff })
  await crashLoop(host, root)
  // Each retry crashes at boot: already past crashLimit in the window, so FAILED again at once.
  await host.logs.waitForCount(toState('FAILED'), 3, 20_000, 'three crash loops')
  const cooldowns = changes(host).filter((line) => line.to === 'FAILED').map((line) => /retry in (\d+) ms$/.exec(String(line.reason))?.[1])
  assert.deepEqual(cooldowns, ['200', '400', '400'])

  await unlink(join(root, MARKER))
  await host.logs.next((line) => line.msg === 'worker state changed' && line.worker === 'crashy' && line.from === 'STARTING' && line.to === 'HEALTHY', 20_000, 'the retry after the cause is gone to serve')
  const res = await host.fetch('/crashy/')
  assert.equal(res.statusCode, 200)
  await res.body.dump()
})
