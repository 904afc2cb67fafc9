// How many processes serve the public port (`proxies` in server.yaml): `auto` is one per core this
// process may use, counting a cgroup's CPU quota (a container limited to 2 CPUs on a 32-core node
// gets 2); dev and hand-off keep one.
import { readFileSync } from 'node:fs'
import { availableParallelism } from 'node:os'
import type { BuildMode } from '../build/builder.js'

export interface ProxyCount {
  count: number
  /** Why, for the start-up log line. */
  reason: string
  /** Something the user asked for is not what they get, or costs more than it gives: say so (warn). */
  warning?: string
}

export function proxyCount (setting: 'auto' | number, mode: BuildMode, handoff: boolean): ProxyCount {
  const ignored = setting !== 'auto' && setting > 1 ? `proxies: ${setting} is not used: ` : undefined
  if (mode === 'dev') return { count: 1, reason: 'dev mode serves from one process', warning: ignored && `${ignored}dev mode serves from one process` }
  if (handoff) return { count: 1, reason: 'handoff: true serves from one process', warning: ignored && `${ignored}handoff: true serves from one process` }
  const cores = availableParallelism()
  const quota = cgroupCpuQuota()
  const usable = Math.max(1, Math.min(cores, quota === undefined ? cores : Math.ceil(quota)))
  const available = `${cores} cores${quota === undefined ? '' : `, a CPU quota of ${quota}`}`
  if (setting === 'auto') return { count: usable, reason: `proxies: auto, ${available}` }
  const warning = setting > usable ? `proxies: ${setting} is more processes than cores to run them (${available}): each takes memory and they compete for the same cores` : undefined
  return { count: setting, reason: `proxies: ${setting}`, warning }
}

/** CPUs the cgroup (v2) may use, e.g. 1.5 for "150000 100000" in cpu.max; undefined without a limit. */
function cgroupCpuQuota (): number | undefined {
  try {
    const [quota, period] = readFileSync('/sys/fs/cgroup/cpu.max', 'utf8').trim().split(' ')
    return quota === 'max' || !quota || !period ? undefined : Number(quota) / Number(period)
  } catch {
    return undefined
  }
}

/**
 * Whether the port can be bound by each process with SO_REUSEPORT, where the kernel spreads
 * connections evenly over them (Node >= 22.12 on Linux). Otherwise data planes share one socket,
 * and a burst of new connections may all go to whichever process wakes first (docs/performance.md).
 */
export function hasReusePort (): boolean {
  const [major = 0, minor = 0] = process.versions.node.split('.').map(Number)
  return process.platform === 'linux' && (major > 22 || (major === 22 && minor >= 12))
}
