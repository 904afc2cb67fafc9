// The reaper on its own (src/process/group-reaper.ts), in a Node process standing in for the host:
// when that process ends, gracefully or by SIGKILL, the reaper kills each group still listed, not
// one that was unlisted, and exits; what a terminal or supervisor sends it does not stop it; it
// holds no pipe of the host's and does not keep the host alive.
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { readdirSync, readFileSync, readlinkSync } from 'node:fs'
import { join } from 'node:path'
import { defer } from '../helpers/cleanup.js'
import { liveMembers } from '../helpers/process-groups.js'
import { REPO_ROOT } from '../helpers/project.js'
import { until, waitForExit, within } from '../helpers/wait.js'

const REAPER_MODULE = join(REPO_ROOT, 'dist', 'src', 'process', 'group-reaper.js')

/**
 * Starts two process groups (sh running sleep), lists both with the reaper, unlists the second,
 * prints the pids as JSON, then ends or spins.
 */
const hostScript = (then: 'end' | 'spin') => `
import { spawn } from 'node:child_process'
import { groupReaper } from ${JSON.stringify(REAPER_MODULE)}
const group = () => { const child = spawn('sh', ['-c', 'sleep 1000 & sleep 1000'], { detached: true, stdio: 'ignore' }); child.unref(); return child.pid }
const listed = group()
const unlisted = group()
groupReaper().add(listed)
groupReaper().add(unlisted)
groupReaper().delete(unlisted)
console.log(JSON.stringify({ reaper: groupReaper().pid, listed, unlisted }))
${then === 'spin' ? 'while (true) {}' : ''}
`

interface Pids { reaper: number, listed: number, unlisted: number }

async function startHost (t: TestContext, then: 'end' | 'spin') {
  const child = spawn(process.execPath, ['--input-type=module', '-e', hostScript(then)], { stdio: ['ignore', 'pipe', 'inherit'] })
  const exited = new Promise<{ code: number | null, signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })))
  const groups = new Set<number>()
  defer(t, async () => {
    child.kill('SIGKILL')
    await exited
    for (const group of groups) {
      try {
        process.kill(-group, 'SIGKILL')
      } catch {} // gone, as it should be
    }
  })
  let output = ''
  child.stdout!.on('data', (chunk: Buffer) => { output += chunk.toString() })
  const pids = await within(10_000, 'the stand-in host to print its pids', new Promise<Pids>((resolve, reject) => {
    child.stdout!.on('data', () => { if (output.includes('\n')) resolve(JSON.parse(output) as Pids) })
    void exited.then(() => { if (!output.includes('\n')) reject(new Error('the stand-in host exited first')) })
  }))
  groups.add(pids.listed).add(pids.unlisted)
  return { child, exited, pids }
}

/** SIGHUP, SIGINT, SIGQUIT and SIGTERM (1, 2, 3, 15) as bits of /proc's SigIgn mask. */
const IGNORED = (1n << 0n) | (1n << 1n) | (1n << 2n) | (1n << 14n)

function ignoredSignals (pid: number): bigint {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  return BigInt(`0x${/^SigIgn:\s*([0-9a-f]+)$/m.exec(status)![1]!}`)
}

async function expectListedKilledOnly (pids: Pids): Promise<void> {
  await until(5000, 'the listed group to be killed', () => liveMembers([pids.listed]).length === 0)
  await waitForExit(pids.reaper, 5000)
  assert.notEqual(liveMembers([pids.unlisted]).length, 0, 'the unlisted group still runs')
}

test('a host that ends by itself is not held by the reaper, which then kills the listed group only and exits', async (t) => {
  const { exited, pids } = await startHost(t, 'end')
  assert.deepEqual(await within(10_000, 'the stand-in host to end by itself', exited), { code: 0, signal: null })
  await expectListedKilledOnly(pids)
})

test('a host killed while spinning: the reaper, which ignored INT, TERM, HUP and QUIT, kills the listed group', async (t) => {
  const { child, exited, pids } = await startHost(t, 'spin')
  // Besides its input, /dev/null, and what this test process itself holds without close-on-exec
  // at the same number (passed down to every process below it, the host's workers too).
  const link = (pid: number | 'self', fd: string) => { try { return readlinkSync(`/proc/${pid}/fd/${fd}`) } catch { return undefined } }
  const held = readdirSync(`/proc/${pids.reaper}/fd`).filter((fd) => fd !== '0').map((fd) => [fd, link(pids.reaper, fd)] as const)
  assert.deepEqual(held.filter(([fd, target]) => target !== '/dev/null' && (Number(fd) < 3 || target !== link('self', fd))), [],
    'the reaper holds nothing the host opened')
  assert.deepEqual(liveMembers([pids.reaper]), [`${pids.reaper} (group ${pids.reaper})`], 'the reaper leads a group of its own')
  // Sent once its trap is set (the shell may not have read its script yet on a loaded machine).
  await until(5000, 'the reaper to ignore HUP, INT, QUIT and TERM', () => (ignoredSignals(pids.reaper) & IGNORED) === IGNORED)
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT'] as const) process.kill(pids.reaper, signal)
  child.kill('SIGKILL')
  await exited
  await expectListedKilledOnly(pids)
})
