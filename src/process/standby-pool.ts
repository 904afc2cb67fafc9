// Keeps warm standby processes (src/worker/standby.ts) ready for dev reloads: a new worker version is
// loaded into one instead of a freshly spawned Node, and a new standby warms up in the background.
// Measured in bench/reload.ts and docs/performance.md.
import type { ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { OutputBuffer, captureOutput, type OutputSink } from './log-capture.js'
import type { Logger } from '../logger.js'
import { forkNode } from './worker-process.js'

const STANDBY_SCRIPT = new URL('../worker/standby.js', import.meta.url)
/** A standby that dies while warming this many times in a row disables the pool (a broken install). */
const MAX_FAILURES = 3
const TAIL_LINES = 10

export interface StandbyOptions {
  /** How many standbys to keep ready. */
  size: number
  /** Working directory while warming (the project root, so packages resolve as for workers). */
  cwd: string
  /** Environment while warming; the worker's own is applied when it loads. */
  env: Record<string, string>
  log: Logger
}

export interface Standby {
  child: ChildProcess
  sink: OutputSink
}

export class StandbyPool {
  readonly #options: StandbyOptions
  readonly #ready: Standby[] = []
  readonly #warming = new Set<ChildProcess>()
  #failures = 0
  #closed = false

  constructor (options: StandbyOptions) {
    this.#options = options
  }

  /** Starts standbys until `size` are ready or warming. */
  fill (): void {
    while (!this.#closed && this.#failures < MAX_FAILURES && this.#ready.length + this.#warming.size < this.#options.size) {
      this.#spawn()
    }
  }

  /**
   * A ready standby, now the caller's; undefined when none is ready. The pool is not refilled
   * here: a warming standby takes a core for ~300 ms, which would slow the new worker's start and
   * first requests. The caller calls fill() once its switch is done.
   */
  take (): Standby | undefined {
    let standby = this.#ready.shift()
    while (standby && (standby.child.exitCode !== null || standby.child.signalCode !== null)) standby = this.#ready.shift()
    return standby
  }

  /** Kills every standby that has not been taken. */
  async close (): Promise<void> {
    this.#closed = true
    const children = [...this.#warming, ...this.#ready.map((standby) => standby.child)]
    this.#ready.length = 0
    this.#warming.clear()
    await Promise.all(children.map((child) => new Promise((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) return resolve(undefined)
      child.once('exit', resolve)
      child.kill('SIGKILL')
    })))
  }

  #spawn (): void {
    const { cwd, env, log } = this.#options
    const child = forkNode(fileURLToPath(STANDBY_SCRIPT), cwd, env)
    if (child.pid === undefined) {
      this.#failures++
      return
    }
    const sink: OutputSink = { log: log.child({ standby: child.pid }), buffer: new OutputBuffer(TAIL_LINES) }
    captureOutput({ stdout: child.stdout, stderr: child.stderr }, child.pid, sink)
    this.#warming.add(child)
    const onMessage = (message: { type?: string }) => {
      if (message?.type !== 'standby' || !this.#warming.delete(child)) return
      child.off('message', onMessage)
      this.#failures = 0
      this.#ready.push({ child, sink })
      log.debug({ pid: child.pid }, 'standby ready')
    }
    child.on('message', onMessage)
    child.once('exit', (code, signal) => {
      const index = this.#ready.findIndex((standby) => standby.child === child)
      if (index !== -1) this.#ready.splice(index, 1)
      if (!this.#warming.delete(child) || this.#closed) return
      this.#failures++
      log.warn({ pid: child.pid, code, signal, output: sink.buffer.tail(child.pid!, TAIL_LINES) },
        this.#failures >= MAX_FAILURES ? 'standby process failed again; dev reloads will start fresh processes' : 'standby process failed while warming')
      this.fill()
    })
  }
}
