// One instance of a worker: a slot that runs one process at a time from one build. A crashed
// instance is restarted in the same slot (new process, new port); a reload replaces the slot.
import type { BuildResult, BuildMode } from '../build/builder.js'
import type { OutputBuffer } from './log-capture.js'
import type { Logger } from '../logger.js'
import type { PortPool } from './port-pool.js'
import type { WorkerSpec } from '../config/worker-discovery.js'
import { CONFIG_ENV, HOST_ENV, WORKER_ENV } from '../env-names.js'
import { trustText, type TrustProxy } from '../forwarded-headers.js'
import { describeExit, WorkerProcess, type ExitInfo, type SpawnOptions } from './worker-process.js'
import { InstanceState } from './worker-state.js'

/** Workers listen on loopback only; only the host faces the network. */
export const WORKER_HOST = '127.0.0.1'
/** Start attempts on another port, each time the port was taken before the worker bound it. */
const PORT_RACE_RETRIES = 3

export interface InstanceOptions {
  spec: WorkerSpec
  build: BuildResult
  mode: BuildMode
  /** The host's trustProxy, passed on so that a worker finds the client as the host does. */
  trustProxy: TrustProxy
  pool: PortPool
  log: Logger
  output: OutputBuffer
  /** Called when the process exits on its own while serving (a crash). */
  onCrash: (instance: WorkerInstance, exit: ExitInfo) => void
  /** Starts the process: a fresh one by default, or a warm standby (dev). */
  launch?: (options: SpawnOptions) => WorkerProcess
}

/** The environment every worker process starts from: the server's, less its own settings. */
export function baseEnv (mode: BuildMode): Record<string, string> {
  const env: Record<string, string | undefined> = { NODE_ENV: mode === 'prod' ? 'production' : 'development', ...process.env }
  // The host's own settings would mislead a worker reading its own.
  for (const name of [...Object.keys(HOST_ENV), CONFIG_ENV]) delete env[name]
  return env as Record<string, string>
}

let nextId = 1

export class WorkerInstance {
  /** Unique within the server, for logs and /health. */
  readonly id = nextId++
  readonly spec: WorkerSpec
  readonly build: BuildResult
  readonly state: InstanceState
  readonly #options: InstanceOptions
  #process: WorkerProcess | undefined
  #restarts = 0
  #startedAt: number | undefined

  constructor (options: InstanceOptions) {
    this.#options = options
    this.spec = options.spec
    this.build = options.build
    this.state = new InstanceState(options.log, () => ({ worker: this.spec.name, pid: this.pid, port: this.port }))
  }

  get pid (): number | undefined {
    return this.#process?.pid
  }

  get port (): number | undefined {
    return this.#process?.port
  }

  /** The upstream the proxy sends requests to, e.g. http://127.0.0.1:9003. */
  get origin (): string | undefined {
    return this.#process?.origin
  }

  /** The current process, for connection hand-off (src/proxy/handoff-front.ts). */
  get process (): WorkerProcess | undefined {
    return this.#process
  }

  /** The process whose memory and CPU are this instance's. */
  get measuredPid (): number | undefined {
    return this.#process?.measuredPid
  }

  get restarts (): number {
    return this.#restarts
  }

  /** When the current process became healthy (epoch ms). */
  get startedAt (): number | undefined {
    return this.#startedAt
  }

  /**
   * Starts a process and resolves once it answers GET /health (state HEALTHY). On failure the
   * process is killed, the state is CRASHED and the error (with the worker's output) is thrown.
   * Stopped meanwhile (`stop()`), it resolves in state STOPPED with no process left.
   */
  async start (reason: string): Promise<void> {
    if (this.state.is('BACKOFF', 'FAILED')) this.#restarts++
    this.#process = undefined
    this.state.transition('STARTING', reason)
    const { spec, pool, log } = this.#options
    /** The last process, when it lost its port to another program before it could bind it. */
    let raced: WorkerProcess | undefined
    let process: WorkerProcess | undefined
    for (let retries = 0; ; retries++) {
      process = undefined
      try {
        const port = await pool.acquire()
        // Stopped meanwhile: stop() found no process to stop, so start none.
        if (this.state.is('STOPPED')) {
          pool.release(port)
          return
        }
        if (raced) log.warn({ worker: spec.name, pid: raced.pid, port: raced.port, nextPort: port }, 'worker port taken before the worker could bind it; retrying on another port')
        process = this.#spawn(port)
        await process.waitReady(spec.timeouts.startTimeout)
        break
      } catch (err) {
        await process?.kill()
        // The pool checked the port free, but another socket (an outgoing connection's local port,
        // when the range lies in the kernel's ephemeral one) can take it before the worker binds it.
        // Our process is gone now: whatever holds its port is not ours. Not the worker's fault, so
        // neither a crash nor a failed start: try another port at once.
        raced = process && retries < PORT_RACE_RETRIES && await pool.isHeldElsewhere(process.port) ? process : undefined
        if (this.state.is('STOPPED')) return
        if (raced) continue
        this.state.transition('CRASHED', (err as Error).message.split('\n')[0]!)
        throw err
      }
    }
    // Stopped as it became ready: no process is left.
    if (this.state.is('STOPPED')) {
      await process?.kill()
      return
    }
    this.#startedAt = Date.now()
    this.state.transition('HEALTHY', 'answered GET /health')
  }

  /** Takes the instance out of rotation; the caller waits for its in-flight requests. */
  beginDrain (reason: string): void {
    this.state.transition('DRAINING', reason)
  }

  /** Stops the process (SIGTERM, SIGKILL after killTimeout) and ends in STOPPED. Idempotent. */
  async stop (reason: string): Promise<void> {
    if (this.state.is('STOPPED')) return
    const process = this.#process
    if (this.state.is('HEALTHY', 'UNHEALTHY')) this.state.transition('DRAINING', reason)
    // A start in progress sees STOPPED and gives up quietly instead of reporting a crash.
    if (!this.state.is('DRAINING')) this.state.transition('STOPPED', reason)
    await process?.stop(this.spec.timeouts.killTimeout)
    if (this.state.is('DRAINING')) this.state.transition('STOPPED', `process ${describeExit(await process!.exited)}`)
  }

  /** Starts a process on a leased port; the port goes back to the pool when the process exits. */
  #spawn (port: number): WorkerProcess {
    const { spec, pool, log, output } = this.#options
    let process: WorkerProcess
    try {
      const launch = this.#options.launch ?? WorkerProcess.spawn
      process = launch({ worker: spec.name, file: this.build.file, command: spec.command, cwd: spec.dir, port, host: WORKER_HOST, env: this.#env(port), log, output })
    } catch (err) {
      pool.release(port)
      throw err
    }
    this.#process = process
    process.exited.then((exit) => this.#onExit(process, exit), () => {})
    return process
  }

  #onExit (process: WorkerProcess, exit: ExitInfo): void {
    this.#options.pool.release(process.port)
    if (process !== this.#process || !this.state.is('HEALTHY', 'UNHEALTHY')) return
    this.state.transition('CRASHED', `exited with ${describeExit(exit)}`)
    this.#options.onCrash(this, exit)
  }

  #env (port: number): Record<string, string> {
    const { spec, mode, trustProxy } = this.#options
    return {
      ...baseEnv(mode),
      ...spec.env,
      [WORKER_ENV.port]: String(port),
      [WORKER_ENV.host]: WORKER_HOST,
      [WORKER_ENV.name]: spec.name,
      [WORKER_ENV.route]: spec.route,
      [WORKER_ENV.mode]: mode,
      [WORKER_ENV.hostTrustProxy]: trustText(trustProxy)
    }
  }
}
