// The reaper: one small shell process per host process that SIGKILLs every worker process group
// still listed when the host dies, however it dies. The host tells it each group as it starts and
// ends; the end of its input, which the kernel gives it when the host exits (by SIGKILL too), is
// its cue. A worker cannot do this for itself: the preload's 'disconnect' handler runs only when
// the worker's event loop turns, so one stuck in `while (true) {}` would outlive the host.
import { spawn, type ChildProcess } from 'node:child_process'
import type { Socket } from 'node:net'

/**
 * Reads `add PGID` and `del PGID` lines. At the end of its input it SIGKILLs each group still
 * listed and exits. dash's `kill` takes `-s KILL -- -PGID` (it refuses `kill -9 -- -PGID`). It
 * ignores what a terminal or a supervisor sends the host's group or session: only the end of its
 * input ends it. Groups 0 and 1 are refused: `kill -- -1` would signal every process.
 */
const SCRIPT = `trap '' INT TERM HUP QUIT
groups=' '
while read -r op pgid; do
  case $pgid in ''|*[!0-9]*|0*|1) continue ;; esac
  case $op@$groups in
    add@*" $pgid "*) ;;
    add@*) groups="$groups$pgid " ;;
    del@*" $pgid "*) groups="\${groups%% $pgid *} \${groups#* $pgid }" ;;
  esac
done
for pgid in $groups; do kill -s KILL -- "-$pgid" 2>/dev/null; done
`

export class GroupReaper {
  /** The live groups, told again to a reaper started after the last one died. */
  readonly #groups = new Set<number>()
  #child: ChildProcess | undefined

  /** The reaper's pid, once one runs. */
  get pid (): number | undefined {
    return this.#child?.pid
  }

  /**
   * Lists the group led by `pgid` until delete(). Starts the reaper if none runs: the first time,
   * or after it died (someone killed it), when it is told every listed group again.
   */
  add (pgid: number): void {
    if (!Number.isInteger(pgid) || pgid <= 1) return
    this.#groups.add(pgid)
    if (this.#child) this.#write(`add ${pgid}\n`)
    else this.#spawn()
  }

  /** Unlists a group whose leader has exited, so that a recycled pid is never killed. */
  delete (pgid: number): void {
    if (this.#groups.delete(pgid)) this.#write(`del ${pgid}\n`)
  }

  /** Lists the group `child` leads (it was spawned detached) until it exits. */
  watch (child: ChildProcess): void {
    const pid = child.pid
    if (pid === undefined) return
    this.add(pid)
    child.once('exit', () => this.delete(pid))
  }

  #spawn (): void {
    const child = spawn('/bin/sh', ['-c', SCRIPT], {
      // Nothing of the host's: no pipe of a worker or of whoever started the host is held open.
      stdio: ['pipe', 'ignore', 'ignore'],
      cwd: '/',
      env: {},
      // A group of its own: Ctrl-C in a terminal reaches the host's group, not the reaper.
      detached: true
    })
    // /bin/sh missing: no reaper; the next add() tries again. Workers still exit with the host
    // unless their event loop is blocked (the preload).
    child.once('error', () => this.#forget(child))
    if (child.pid === undefined) return
    this.#child = child
    child.once('exit', () => this.#forget(child))
    // EPIPE: the reaper died and its 'exit' has not arrived yet. What we wrote is lost: start
    // another at once, told every group (no loop: a reaper just started is alive when written to).
    child.stdin!.on('error', () => {
      if (this.#child !== child) return
      this.#forget(child)
      if (this.#groups.size > 0) this.#spawn()
    })
    // Neither the process nor its input keeps the host running.
    child.unref()
    ;(child.stdin as Socket).unref()
    this.#write([...this.#groups].map((pgid) => `add ${pgid}\n`).join(''))
  }

  #forget (child: ChildProcess): void {
    if (this.#child === child) this.#child = undefined
  }

  #write (lines: string): void {
    if (lines && this.#child?.stdin?.writable) this.#child.stdin.write(lines)
  }
}

let hostReaper: GroupReaper | undefined

/**
 * The host process's reaper, created on first use. One per process rather than per server:
 * it must outlive every close() to act when the process dies, and the kernel, closing its input
 * when the process exits, is the one owner that can end it. Servers in one process share it.
 */
export function groupReaper (): GroupReaper {
  hostReaper ??= new GroupReaper()
  return hostReaper
}
