// The tqserver CLI as a child process, its JSON log lines recorded, killed after the test.
import { spawn, type ChildProcess } from 'node:child_process'
import { join } from 'node:path'
import type { TestContext } from 'node:test'
import { LogRecorder } from './logs.js'
import { REPO_ROOT } from './project.js'
import { within } from './wait.js'
import { defer } from './cleanup.js'

export const CLI = join(REPO_ROOT, 'dist', 'src', 'cli', 'main.js')

export interface CliProcess {
  child: ChildProcess
  logs: LogRecorder
  stderr: () => string
  exited: Promise<{ code: number | null, signal: NodeJS.Signals | null }>
}

/** Runs `tqserver ...args` (or another Node script: `options.script`) with JSON logs on stdout. */
export function runCli (t: TestContext, args: string[], options: { cwd: string, env?: Record<string, string>, script?: string }): CliProcess {
  const child = spawn(process.execPath, [options.script ?? CLI, ...args], {
    cwd: options.cwd,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...options.env },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  const logs = new LogRecorder()
  let stderr = ''
  child.stdout!.on('data', (chunk: Buffer) => logs.write(chunk))
  child.stderr!.on('data', (chunk: Buffer) => { stderr += chunk.toString() })
  const exited = new Promise<{ code: number | null, signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }))
  })
  defer(t, async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    await exited
  })
  return { child, logs, stderr: () => stderr, exited }
}

/** Runs a command that ends by itself; resolves with its exit code and output. */
export async function runCliToEnd (t: TestContext, args: string[], options: { cwd: string, env?: Record<string, string> }) {
  const cli = runCli(t, args, options)
  let stdout = ''
  cli.child.stdout!.on('data', (chunk: Buffer) => { stdout += chunk.toString() })
  const { code } = await within(60_000, `tqserver ${args.join(' ')} to exit`, cli.exited)
  return { code, stdout, stderr: cli.stderr() }
}

/**
 * Starts `tqserver <command>` on a free port and resolves with its URL once it listens and (unless
 * `wait` is false) its workers have been started. `script`: another tqserver, such as a project's
 * node_modules/.bin/tqserver.
 */
export async function startCliServer (t: TestContext, command: 'dev' | 'start', root: string, workerPorts: string, extraArgs: string[] = [], { wait = true, script = CLI } = {}) {
  const cli = runCli(t, [command, '--port', '0', '--worker-ports', workerPorts, ...extraArgs], { cwd: root, script })
  const listening = await untilExit(cli, cli.logs.waitFor((line) => line.msg === 'tqserver listening', 60_000, 'tqserver to listen'))
  if (wait) await untilExit(cli, workersStarted(cli.logs))
  return { ...cli, url: String(listening.url) }
}

/** The log line that says every worker found at start has been started once. */
export function workersStarted (logs: LogRecorder) {
  return logs.waitFor((line) => String(line.msg).startsWith('workers started'), 60_000, 'the workers to start')
}

/** `waiting`, unless the process exits first. */
function untilExit<T> (cli: CliProcess, waiting: Promise<T>): Promise<T> {
  return Promise.race([
    waiting,
    cli.exited.then(({ code }) => { throw new Error(`tqserver exited with ${code}: ${cli.stderr()}`) })
  ])
}
