// Waiting for things to happen, with a deadline whose error says what never happened; and what
// /proc says of other processes.
import { readdirSync, readFileSync } from 'node:fs'
import { readFile } from 'node:fs/promises'

/** Resolves with `promise`, or rejects after `ms` with "timed out after ms: <what>". */
export async function within<T> (ms: number, what: string, promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const deadline = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms)
  })
  try {
    return await Promise.race([promise, deadline])
  } finally {
    clearTimeout(timer)
  }
}

/**
 * Calls `check` every `intervalMs` until it returns something other than undefined or false, and
 * resolves with that; rejects after `ms` with "timed out after ms: <what>". For what has no event
 * to wait for (another process's state, a file another process writes). Stops polling at the
 * deadline.
 */
export async function until<T> (ms: number, what: string, check: () => T | undefined | false | Promise<T | undefined | false>, intervalMs = 20): Promise<T> {
  const deadline = performance.now() + ms
  while (true) {
    const value = await within(Math.max(1, deadline - performance.now()), what, Promise.resolve().then(check)).catch((err: unknown) => {
      throw performance.now() >= deadline ? new Error(`timed out after ${ms} ms: ${what}`) : err
    })
    if (value !== undefined && value !== false) return value
    if (performance.now() >= deadline) throw new Error(`timed out after ${ms} ms: ${what}`)
    await new Promise((resolve) => setTimeout(resolve, intervalMs))
  }
}

export function isAlive (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

/**
 * Resolves once `pid` has exited. A process that is not our child cannot be waited on, so this
 * looks at /proc every 20 ms (a zombie counts as exited).
 */
export async function waitForExit (pid: number, ms: number): Promise<void> {
  await until(ms, `process ${pid} to exit`, async () => {
    const state = await processState(pid)
    return state === undefined || state === 'Z'
  })
}

async function processState (pid: number): Promise<string | undefined> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8')
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3)
  } catch {
    return undefined
  }
}

/** Direct children of `pid`, from every thread's children list (a thread may have forked them). */
export function childPids (pid: number): number[] {
  const children: number[] = []
  try {
    for (const task of readdirSync(`/proc/${pid}/task`)) {
      const list = readFileSync(`/proc/${pid}/task/${task}/children`, 'utf8').trim()
      if (list) children.push(...list.split(' ').map(Number))
    }
  } catch {} // the process is gone
  return children
}

/** Peak resident memory of a process (VmHWM), in bytes. */
export async function peakRss (pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8')
  const match = /VmHWM:\s+(\d+) kB/.exec(status)
  if (!match) throw new Error(`no VmHWM for ${pid}`)
  return Number(match[1]) * 1024
}
