// Waiting for things to happen, with a deadline whose error says what never happened.
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
  await within(ms, `process ${pid} to exit`, (async () => {
    while (await processState(pid) !== undefined && await processState(pid) !== 'Z') {
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
  })())
}

async function processState (pid: number): Promise<string | undefined> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8')
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3)
  } catch {
    return undefined
  }
}

/** Peak resident memory of a process (VmHWM), in bytes. */
export async function peakRss (pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8')
  const match = /VmHWM:\s+(\d+) kB/.exec(status)
  if (!match) throw new Error(`no VmHWM for ${pid}`)
  return Number(match[1]) * 1024
}
