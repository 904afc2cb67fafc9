// Runs a worker that is not Node (`command:` in worker.yaml) under the worker contract's process
// rules, which such a program cannot follow by itself: this small Node process holds the IPC
// channel, so the worker is killed when the server goes (even after SIGKILL), and passes SIGTERM
// and SIGINT on. Its stdout and stderr are the worker's. It exits as the worker does.
import { spawn } from 'node:child_process'

const command = JSON.parse(process.env.TQ_COMMAND ?? '""') as string | string[]
delete process.env.TQ_COMMAND
// In a process group of its own, so that every signal below reaches the program and all it
// started (a shell string runs as `sh -c`, whose program is the shell's child).
const child = Array.isArray(command)
  ? spawn(command[0]!, command.slice(1), { stdio: 'inherit', detached: true })
  : spawn(command, { stdio: 'inherit', shell: true, detached: true })

function signalProgram (signal: NodeJS.Signals): void {
  try {
    process.kill(-child.pid!, signal)
  } catch {
    // Gone already.
  }
}

child.once('error', (err) => {
  console.error(`cannot run ${JSON.stringify(command)}: ${err.message}`)
  process.exit(127)
})
child.once('spawn', () => process.send?.({ type: 'command', pid: child.pid }))
child.once('exit', (code, signal) => {
  // Ended by the signal we passed on: a normal stop.
  process.exit(code ?? (signal === 'SIGTERM' || signal === 'SIGINT' ? 0 : 1))
})
for (const signal of ['SIGTERM', 'SIGINT'] as const) process.on(signal, () => signalProgram(signal))
// However this process ends (the worker preload exits it when the server is gone), the program
// and all it started go with it: nobody could reach them any more.
process.on('exit', () => { if (child.pid !== undefined) signalProgram('SIGKILL') })
