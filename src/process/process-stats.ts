// Memory and CPU of a worker process, read from /proc (Linux). Elsewhere both are null.
import { readFile } from 'node:fs/promises'

/** Kernel clock ticks per second for /proc/<pid>/stat times (USER_HZ; 100 on Linux). */
const TICKS_PER_SECOND = 100
const PAGE_BYTES = 4096

export interface ProcessSample {
  at: number
  /** User + system CPU time so far, in ticks. */
  cpuTicks: number
  rssBytes: number
}

export async function sampleProcess (pid: number): Promise<ProcessSample | null> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8')
    // Fields after the command name, which is in parentheses and may hold spaces.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return { at: Date.now(), cpuTicks: Number(fields[11]) + Number(fields[12]), rssBytes: Number(fields[21]) * PAGE_BYTES }
  } catch {
    return null
  }
}

/** CPU use between two samples, as a percentage of one core. */
export function cpuPercent (previous: ProcessSample, current: ProcessSample): number {
  const seconds = (current.at - previous.at) / 1000
  if (seconds <= 0) return 0
  return Math.round(((current.cpuTicks - previous.cpuTicks) / TICKS_PER_SECOND / seconds) * 1000) / 10
}
