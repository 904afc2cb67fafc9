// What the benchmarks read about their processes from /proc (Linux): children, CPU time, memory and
// open files. Reads are synchronous so that a figure taken between two wrk runs costs no fork.
import { readdirSync, readFileSync } from 'node:fs'
import { childPids } from '../test/helpers/wait.js'

/** Kernel clock ticks per second in /proc/<pid>/stat (USER_HZ, 100 on Linux). */
export const TICKS_PER_SECOND = 100

/** `pid` and every process below it. */
export function processTree (pid: number): number[] {
  const tree = [pid]
  for (let i = 0; i < tree.length; i++) tree.push(...childPids(tree[i]!))
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

/** Flags whose value is the next argument, not the script. */
const NODE_FLAGS_WITH_VALUE = new Set(['--import', '--require', '-r', '--loader', '--experimental-loader'])

/** The program and, for a node-like command, the script it runs (its last two path parts), or the
 *  title the process gave itself. */
export function describeProcess (pid: number): string {
  try {
    const args = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean)
    // A process that set its title (PM2's daemon) shows it as one argument with spaces.
    if (args.length === 1 && args[0]!.includes(' ')) return args[0]!.replace(/\/\S*\/([^/\s]+\/[^/\s]+)/g, '$1')
    const program = args[0]!.split('/').at(-1)!
    for (let i = 1; i < args.length; i++) {
      if (NODE_FLAGS_WITH_VALUE.has(args[i]!)) i++
      else if (!args[i]!.startsWith('-')) return `${program} ${args[i]!.split('/').slice(-2).join('/')}`
    }
    return program
  } catch {
    return '(gone)'
  }
}
