// One worker process on one port: spawn it, wait until it serves, stop it (gracefully, or not).
import { fork, spawn, type ChildProcess } from 'node:child_process'
import { readFileSync } from 'node:fs'
import type { Socket } from 'node:net'
import { groupReaper } from './group-reaper.js'
import { probeHealth } from './health-probe.js'
import { captureOutput, type OutputBuffer, type OutputSink } from './log-capture.js'
import type { Logger } from '../logger.js'
import { TQ_ERR_WORKER_EXITED, TQ_ERR_WORKER_SPAWN, TQ_ERR_WORKER_START_TIMEOUT } from '../errors.js'

/**
 * The worker-side code every worker starts with, read once, when the server starts: a deploy's
 * `npm ci` removes node_modules/tqserver for seconds, and a worker restarted meanwhile must start.
 */
const workerCode = (name: string) => readFileSync(new URL(`../worker/${name}`, import.meta.url), 'utf8')
  .replace(/\n\/\/# sourceMappingURL=.*\s*$/, '\n')
/** Runs a `command:` worker (not Node) under the contract's process rules. */
const COMMAND_SHIM = { code: workerCode('command-shim.js') }
/** Loaded into every Node worker before its own code: exit when the server is gone. */
const PRELOAD = `data:text/javascript;base64,${Buffer.from(workerCode('preload.js')).toString('base64')}`
/** Not the server's own flags (an --inspect port would clash). Source maps for stack traces. */
export const WORKER_EXEC_ARGV = ['--enable-source-maps', '--import', PRELOAD]
/** Output lines quoted in a start-up error. */
const TAIL_LINES = 20
const PROBE_TIMEOUT_MS = 2_000
const POLL_FIRST_MS = 10
const POLL_MAX_MS = 200
const OUTPUT_GRACE_MS = 200

export interface ExitInfo { code: number | null, signal: NodeJS.Signals | null }

export interface SpawnOptions {
  worker: string
  /** Built file run with node. */
  file: string
  /** Instead of `file`: a program that is not Node (`command:` in worker.yaml). */
  command?: string | string[]
  cwd: string
  port: number
  host: string
  env: Record<string, string>
  log: Logger
  output: OutputBuffer
}

export class WorkerProcess {
  readonly worker: string
  readonly pid: number
  readonly port: number
  readonly host: string
  /** Settles when the process has exited, however it ended. */
  readonly exited: Promise<ExitInfo>
  readonly #child: ChildProcess
  readonly #output: OutputBuffer
  /** The program's own pid when a shim runs it (a `command:` worker), for its memory and CPU. */
  #commandPid: number | undefined
  /** Said in its 'ready' message that it can take handed-off connections (the SDK can). */
  #acceptsConnections = false
  /** Runs each time the worker reports a handed-off connection closed. */
  onConnectionReleased: (() => void) | undefined
  #exit: ExitInfo | undefined
  #wake: (() => void) | undefined
  #stopping: Promise<ExitInfo> | undefined

  private constructor (child: ChildProcess, options: SpawnOptions) {
    this.#child = child
    this.#output = options.output
    this.worker = options.worker
    this.pid = child.pid!
    this.port = options.port
    this.host = options.host
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        // Let the last output lines (a crash's stack trace) arrive before anyone reads the tail;
        // bounded, because a grandchild may hold the pipes open.
        const settle = () => {
          clearTimeout(timer)
          if (this.#exit) return
          this.#exit = { code, signal }
          this.#wake?.()
          resolve(this.#exit)
        }
        const timer = setTimeout(settle, OUTPUT_GRACE_MS)
        child.once('close', settle)
      })
    })
    child.on('message', (message: { type?: unknown, pid?: number, handoff?: boolean }) => {
      if (message?.type === 'ready') {
        this.#acceptsConnections = message.handoff === true
        this.#wake?.()
      }
      if (message?.type === 'command') this.#onCommand(message.pid, child, options)
      if (message?.type === 'tq:released') this.onConnectionReleased?.()
    })
    // A worker's IPC errors (it exited while we wrote) must not crash the server.
    child.on('error', (err) => options.log.debug({ err }, 'worker process error'))
  }

  /**
   * The shim reports the program's pid, which leads a group of its own (the shim's detached spawn):
   * SIGKILL reaches that group too, and it dies with the host. Taken only from the shim, once: a
   * Node worker's message must not name a group for us to kill (-1 would be every process).
   */
  #onCommand (pid: unknown, child: ChildProcess, options: SpawnOptions): void {
    if (options.command === undefined || this.#commandPid !== undefined || typeof pid !== 'number' || !Number.isInteger(pid) || pid <= 1) return
    // A message read after the shim's exit: its program's group is no longer ours to list.
    if (child.exitCode !== null || child.signalCode !== null) return
    this.#commandPid = pid
    groupReaper().add(pid)
    child.once('exit', (_code, signal) => {
      // Killed by a signal, the shim ran no exit handler and killed nothing: the program would be
      // left running (its group cannot have been recycled while the program, the shim's child, runs).
      if (signal !== null) signalGroup(pid, 'SIGKILL')
      groupReaper().delete(pid)
    })
  }

  static spawn (options: SpawnOptions): WorkerProcess {
    const child = options.command === undefined
      ? forkNode(options.file, options.cwd, options.env)
      : forkNode(COMMAND_SHIM, options.cwd, { ...options.env, TQ_COMMAND: JSON.stringify(options.command) })
    if (child.pid === undefined) throw new TQ_ERR_WORKER_SPAWN(options.worker, 'the operating system refused to start node')
    captureOutput({ stdout: child.stdout, stderr: child.stderr }, child.pid, { log: options.log.child({ worker: options.worker, pid: child.pid }), buffer: options.output })
    return new WorkerProcess(child, options)
  }

  /**
   * Turns a warm standby process (src/worker/standby.ts) into this worker: it is sent the built file to
   * import, with the worker's folder and environment, and from then on is like a spawned one.
   */
  static adopt (child: ChildProcess, sink: OutputSink, options: SpawnOptions): WorkerProcess {
    sink.log = options.log.child({ worker: options.worker, pid: child.pid })
    sink.buffer = options.output
    const process = new WorkerProcess(child, options)
    child.send({ type: 'load', file: options.file, cwd: options.cwd, env: options.env })
    return process
  }

  get acceptsConnections (): boolean {
    return this.#acceptsConnections && !this.#exit && this.#child.connected
  }

  /**
   * Hands a client connection to the worker (connection hand-off), with the bytes already read
   * from it and what the worker needs to know. Calls back false if the worker could not take it.
   */
  handOff (socket: Socket, message: Record<string, unknown>, sent: (ok: boolean) => void): void {
    this.#child.send({ type: 'tq:connection', ...message }, socket, { keepOpen: false }, (err) => sent(err === null || err === undefined))
  }

  /** Tells the worker to close its handed-off connections: this instance is being retired. */
  drainConnections (): void {
    // The callback swallows a send error: a worker that has gone needs no telling.
    if (this.#child.connected) this.#child.send({ type: 'tq:drain' }, () => {})
  }

  /** The process whose memory and CPU are the worker's. */
  get measuredPid (): number {
    return this.#commandPid ?? this.pid
  }

  get origin (): string {
    return `http://${this.host}:${this.port}`
  }

  /**
   * Resolves once GET /health answers 200. Probes at once when the worker sends IPC 'ready', and
   * polls otherwise (a worker need not use the SDK). Rejects when the process exits first or the
   * timeout passes, quoting the worker's last output lines.
   */
  async waitReady (timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs
    let delay = POLL_FIRST_MS
    while (true) {
      if (this.#exit) throw new TQ_ERR_WORKER_EXITED(this.worker, this.pid, describeExit(this.#exit), this.#tail())
      const remaining = deadline - Date.now()
      if (remaining <= 0) throw new TQ_ERR_WORKER_START_TIMEOUT(this.worker, this.pid, this.port, timeoutMs, this.#tail())
      const probe = await probeHealth(this.port, this.host, Math.min(remaining, PROBE_TIMEOUT_MS))
      if (probe.ok) return
      await this.#nap(Math.min(delay, Math.max(0, deadline - Date.now())))
      delay = Math.min(delay * 2, POLL_MAX_MS)
    }
  }

  /** SIGTERM, then SIGKILL after `killTimeoutMs`. Idempotent: a second call waits for the first. */
  stop (killTimeoutMs: number): Promise<ExitInfo> {
    if (this.#stopping) return this.#stopping
    if (this.#exit) return this.exited
    this.#signal('SIGTERM')
    // A stopped process (SIGSTOP, a debugger) acts on SIGTERM only once continued, as systemd's
    // SendSIGCONT knows; to a running one SIGCONT does nothing.
    this.#signal('SIGCONT')
    const timer = setTimeout(() => this.#signal('SIGKILL'), killTimeoutMs)
    this.#stopping = this.exited.finally(() => clearTimeout(timer))
    return this.#stopping
  }

  /** SIGKILL at once; resolves when the process is gone. */
  kill (): Promise<ExitInfo> {
    if (!this.#exit) this.#signal('SIGKILL')
    return this.exited
  }

  /**
   * Signals the worker's whole process group (it leads one: forkNode), so that what it started
   * (a shell and its program, for a `command:` given as a string) stops with it. SIGKILL also goes
   * to a `command:` program's own group: the shim passes SIGTERM on, but once it is killed it can
   * pass nothing, and the program would be left running. SIGTERM is not sent twice, as a program
   * may take a second one to mean "exit now".
   */
  #signal (signal: NodeJS.Signals): void {
    signalGroup(this.pid, signal)
    if (signal === 'SIGKILL' && this.#commandPid !== undefined) signalGroup(this.#commandPid, signal)
  }

  /** Waits `ms`, or less when the worker says it is ready or exits. */
  #nap (ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms)
      const self = this
      function done () {
        clearTimeout(timer)
        self.#wake = undefined
        resolve()
      }
      this.#wake = done
    })
  }

  #tail (): string {
    const tail = this.#output.tail(this.pid, TAIL_LINES)
    return tail ? `; its last output:\n${tail}` : '; it wrote no output'
  }
}

/** A Node child as every worker (and standby) runs: our flags, pipes for output, an IPC channel. */
export function forkNode (entry: string | { code: string }, cwd: string, env: Record<string, string>): ChildProcess {
  const options = {
    cwd,
    env,
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'] as Array<'ignore' | 'pipe' | 'ipc'>,
    // Its own process group: Ctrl-C in a terminal reaches the server, which drains the workers,
    // instead of killing them under in-flight requests.
    detached: true
  }
  // A file, or code held in memory (run as fork would run a file: same flags, same IPC channel).
  const child = typeof entry === 'string'
    ? fork(entry, [], { ...options, execArgv: WORKER_EXEC_ARGV })
    : spawn(process.execPath, [...WORKER_EXEC_ARGV, '--input-type=module', '--eval', entry.code], options)
  // Spawn failures arrive as 'error' with no pid; the caller reports them.
  if (child.pid === undefined) child.on('error', () => {})
  // What the worker started in its group does not outlive it (a helper that ignores SIGTERM
  // would hold on otherwise): killed as soon as the worker has gone, before the group is unlisted.
  child.once('exit', () => signalGroup(child.pid!, 'SIGKILL'))
  // Killed with the host if the host dies, even when its event loop is blocked.
  groupReaper().watch(child)
  return child
}

function signalGroup (pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal)
  } catch {
    // Already gone.
  }
}

export function describeExit (exit: ExitInfo): string {
  return exit.signal ? `signal ${exit.signal}` : `code ${exit.code}`
}
