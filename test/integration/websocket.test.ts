// WebSockets through the host: upgrades reach the worker with the prefix removed; on a switch the
// old instance's connections are closed with 1012 (service restart) and new ones reach the new
// instance. The worker answers the upgrade itself (a refusal is its own), and frames pass intact.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { once } from 'node:events'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { WebSocket } from 'ws'
import { startHost } from '../helpers/host.js'
import { PORTS } from '../helpers/ports.js'
import { useProject } from '../helpers/project.js'
import { within } from '../helpers/wait.js'
import { defer } from '../helpers/cleanup.js'

async function open (url: string): Promise<{ socket: WebSocket, greeting: { version: number, url: string, prefix: string } }> {
  const socket = new WebSocket(url)
  const [greeting] = await within(5000, `a greeting from ${url}`, once(socket, 'message')) as [Buffer]
  return { socket, greeting: JSON.parse(greeting.toString()) }
}

test('WebSocket connections across a switch', async (t) => {
  const root = await useProject(t, 'websocket', {}, ['ws'])
  const host = await startHost(t, { root, mode: 'dev', workerPorts: PORTS.websocket, liveReload: false })
  const wsUrl = `${host.url.replace('http', 'ws')}/app/ws?room=1`

  const first = await open(wsUrl)
  defer(t, () => first.socket.terminate())
  assert.deepEqual({ ...first.greeting, pid: undefined }, { version: 0, pid: undefined, url: '/ws?room=1', prefix: '/app' })
  first.socket.send('hello')
  assert.equal(String((await within(5000, 'an echo', once(first.socket, 'message')))[0]), 'echo hello')
  assert.equal(host.app.tqserver.status().workers.app!.instances[0]!.inflight, 1, 'the open connection counts as in flight')

  const closed = within(10_000, 'the old connection to be closed', once(first.socket, 'close'))
  await writeFile(join(root, 'workers', 'app', 'src', 'version.ts'), 'export const VERSION = 1\n')
  const [code, reason] = await closed as [number, Buffer]
  assert.deepEqual([code, reason.toString()], [1012, 'service restart'])

  const second = await open(wsUrl)
  defer(t, () => second.socket.terminate())
  assert.equal(second.greeting.version, 1)
  await host.app.tqserver.idle()
  assert.equal(host.app.tqserver.status().workers.app!.instances.length, 1, 'the old instance has stopped')
})

test('the worker answers the upgrade itself: a refusal reaches the client as sent, large messages pass intact', async (t) => {
  const root = await useProject(t, 'websocket', {}, ['ws'])
  const host = await startHost(t, { root, mode: 'dev', workerPorts: PORTS.websocket, liveReload: false })
  const base = host.url.replace('http', 'ws')

  // The worker's WebSocket server takes /ws only: elsewhere it answers 400, not the host with 101.
  const refused = new WebSocket(`${base}/app/elsewhere`)
  const [request, response] = await within(5000, 'the worker\'s answer', once(refused, 'unexpected-response')) as [{ destroy: () => void }, { statusCode: number }]
  assert.equal(response.statusCode, 400)
  request.destroy()

  const { socket } = await open(`${base}/app/ws`)
  defer(t, () => socket.terminate())
  const large = 'x'.repeat(200_000)
  socket.send(large)
  assert.equal(String((await within(5000, 'the large echo', once(socket, 'message')))[0]), `echo ${large}`)
})
