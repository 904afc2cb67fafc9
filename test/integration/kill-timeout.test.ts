// killTimeout: a worker that ignores SIGTERM is killed with SIGKILL once killTimeout has passed,
// not sooner, whether it is stopped or replaced by a switch; worker.yaml may set its own.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { startHost, type Host } from '../helpers/host.js'
import type { LogLine } from '../helpers/logs.js'
import { PORTS } from '../helpers/ports.js'
import { useProject } from '../helpers/project.js'
import { isAlive, waitForExit, within } from '../helpers/wait.js'

const KILL_TIMEOUT_MS = 1000
/**
 * Node's timers count from the event loop's clock, read at the start of a loop turn, so a timer
 * may fire a few ms before its delay has passed by the clock the test reads.
 */
const TIMER_SLACK_MS = 50

async function stubbornPid (host: Host): Promise<number> {
  return (await (await host.fetch('/stubborn/')).body.json() as { pid: number }).pid
}

const stateOf = (pid: number, to: string) => (line: LogLine) => line.msg === 'worker state changed' && line.pid === pid && line.to === to

/**
 * How process `pid` ended: it left the rotation (DRAINING, logged before SIGTERM is sent), got
 * SIGTERM and said so, then was stopped.
 */
async function howItEnded (host: Host, pid: number) {
  const draining = await host.logs.waitFor(stateOf(pid, 'DRAINING'), 15_000, 'the instance to drain')
  await host.logs.waitFor((line) => line.worker === 'stubborn' && line.pid === pid && line.msg === 'ignoring SIGTERM', 15_000, 'the worker to get SIGTERM')
  const stopped = await host.logs.waitFor(stateOf(pid, 'STOPPED'), 15_000, 'the instance to stop')
  return { draining, stopped }
}

test('a worker that ignores SIGTERM is killed with SIGKILL after killTimeout, not sooner, and is gone', async (t) => {
  const root = await useProject(t, 'ignores-sigterm', { 'config/server.yaml': `killTimeout: ${KILL_TIMEOUT_MS}\n` })
  const host = await startHost(t, { root, workerPorts: PORTS.killTimeout })
  const pid = await stubbornPid(host)

  const began = performance.now()
  await within(15_000, 'the worker to be stopped', host.app.tqserver.stop('stubborn'))
  const tookMs = performance.now() - began
  const { stopped } = await howItEnded(host, pid)
  assert.equal(stopped.reason, 'process signal SIGKILL')
  assert.ok(tookMs >= KILL_TIMEOUT_MS - TIMER_SLACK_MS, `stopped after ${Math.round(tookMs)} ms, at least killTimeout`)
  await waitForExit(pid, 5000)
  assert.equal(isAlive(pid), false)
})

test('a switch waits the killTimeout of worker.yaml, which overrides the server\'s, before killing the old instance', async (t) => {
  const workerKillTimeoutMs = 2500
  const root = await useProject(t, 'ignores-sigterm', {
    'config/server.yaml': `killTimeout: ${KILL_TIMEOUT_MS}\n`,
    'workers/stubborn/worker.yaml': `killTimeout: ${workerKillTimeoutMs}\n`
  })
  const host = await startHost(t, { root, workerPorts: PORTS.killTimeout })
  const old = await stubbornPid(host)

  await within(15_000, 'the switch', host.app.tqserver.restart('stubborn'))
  const { draining, stopped } = await howItEnded(host, old)
  assert.equal(stopped.reason, 'process signal SIGKILL')
  const waitedMs = (stopped.time as number) - (draining.time as number)
  assert.ok(waitedMs >= workerKillTimeoutMs - TIMER_SLACK_MS, `killed ${waitedMs} ms after it left the rotation, at least the worker's killTimeout`)
  await waitForExit(old, 5000)
  assert.notEqual(await stubbornPid(host), old, 'the new instance serves')
})
