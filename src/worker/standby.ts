// A standby: a Node process started ahead of time, with Fastify and the worker SDK loaded and
// warmed, that becomes a worker when the server sends it a build to load. A dev reload then skips
// Node's start-up and Fastify's first-use costs. Single use: once it has loaded a worker it is that
// worker (a module cache cannot be emptied), and the server starts the next standby.
import { pathToFileURL } from 'node:url'
import { warmUp } from './sdk.js'

interface LoadMessage { type: 'load', file: string, cwd: string, env: Record<string, string> }

function onMessage (message: LoadMessage): void {
  if (message?.type !== 'load') return
  // From now on the worker's own handles keep the process alive, as in a spawned worker.
  process.off('message', onMessage)
  process.channel?.unref()
  process.chdir(message.cwd)
  Object.assign(process.env, message.env)
  import(pathToFileURL(message.file).href).catch((err: unknown) => {
    console.error(err)
    process.exit(1)
  })
}

await warmUp()
process.on('message', onMessage)
// The worker preload unref'd the IPC channel, which turns off Node's automatic ref for a
// 'message' listener: ref it explicitly, or the standby would exit while it waits.
process.channel?.ref()
process.send?.({ type: 'standby' })
