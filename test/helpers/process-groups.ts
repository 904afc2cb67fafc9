// Process groups as /proc shows them: the groups led below a process, who is still in them, and a
// cleanup that kills whatever a test left in them.
import { readdirSync, readFileSync } from 'node:fs'
import type { TestContext } from 'node:test'
import type { CliProcess } from './cli.js'
import { defer } from './cleanup.js'
import { childPids } from './wait.js'

interface ProcessStat { pid: number, state: string, pgid: number }

function statOf (pid: number): ProcessStat | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    // After "pid (comm) ": state, ppid, pgrp. comm may hold spaces and parentheses.
    const [state, , pgid] = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return { pid, state: state!, pgid: Number(pgid) }
  } catch {
    return undefined // gone
  }
}

/** Every process below `pid`, however deep. */
export function descendantPids (pid: number): number[] {
  const found: number[] = []
  const queue = childPids(pid)
  while (queue.length > 0) {
    const next = queue.shift()!
    found.push(next)
    queue.push(...childPids(next))
  }
  return found
}

/**
 * The process groups led by processes below `pid`. Only leaders count: a child that did not start
 * a group of its own (esbuild's service) shares the test runner's group, which is not ours to kill.
 */
export function groupsLedBelow (pid: number): number[] {
  return descendantPids(pid).filter((child) => statOf(child)?.pgid === child)
}

/** Processes still running (zombies are not) in any of `groups`, as "pid (group pgid)". */
export function liveMembers (groups: Iterable<number>): string[] {
  const wanted = new Set(groups)
  const members: string[] = []
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    const stat = statOf(Number(entry))
    if (stat && stat.state !== 'Z' && wanted.has(stat.pgid)) members.push(`${stat.pid} (group ${stat.pgid})`)
  }
  return members
}

/**
 * After the test: SIGKILL the server if it still runs (first noting the groups led below it), then
 * every group in `groups` or noted that still has a live process. Fill `groups` before the server
 * goes, whose workers cannot be found from it afterwards.
 */
export function killLeftoverGroups (t: TestContext, server: CliProcess, groups: Set<number>): void {
  defer(t, async () => {
    if (server.child.exitCode === null && server.child.signalCode === null) {
      for (const group of groupsLedBelow(server.child.pid!)) groups.add(group)
      server.child.kill('SIGKILL')
    }
    await server.exited
    for (const group of groups) {
      if (liveMembers([group]).length === 0) continue
      try {
        process.kill(-group, 'SIGKILL')
      } catch {} // gone meanwhile
    }
  })
}
