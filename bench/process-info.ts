// What the benchmarks read about their processes from /proc (Linux): children, CPU time, memory and
// open files. Reads are synchronous so that a figure taken between two wrk runs costs no fork.
import { readdirSync, readFileSync } from 'node:fs'

/** Kernel clock ticks per second in /proc/<pid>/stat (USER_HZ, 100 on Linux). */
export const TICKS_PER_SECOND = 100

/** Direct children of `pid`, from every thread's children list (a thread may have forked them). */
export function childrenOf (pid: number): number[] {
  const children: number[] = []
  try {
    for (const task of readdirSync(`/proc/${pid}/task`)) {
      const list = readFileSync(`/proc/${pid}/task/${task}/children`, 'utf8').trim()
      if (list) children.push(...list.split(' ').map(Number))
    }
  } catch {} // the process is gone
  return children
}

/** `pid` and every process below it. */
export function processTree (pid: number): number[] {
  const tree = [pid]
  for (let i = 0; i < tree.length; i++) tree.push(...childrenOf(tree[i]!))
  return tree
}

/** User + system CPU time of the processes (all their threads), in ticks; a process gone counts 0. */
export function cpuTicks (pids: number[]): number {
  let total = 0
  for (const pid of pids) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
      // Fields after the command name, which is in parentheses and may hold spaces.
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      total += Number(fields[11]) + Number(fields[12])
    } catch {}
  }
  return total
}

/** Resident memory (VmRSS) in MB; NaN when the process is gone. */
export function rssMb (pid: number): number {
  try {
    return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024
  } catch {
    return Number.NaN
  }
}

export function openFiles (pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length
}

/** The program's name as the kernel shows it (`comm`), or its first arguments for `node` processes. */
export function describeProcess (pid: number): string {
  try {
    const args = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean)
    const script = args.slice(1).find((arg) => !arg.startsWith('-'))
    return script ? `${args[0]!.split('/').at(-1)} ${script.split('/').slice(-2).join('/')}` : args.join(' ')
  } catch {
    return '(gone)'
  }
}
