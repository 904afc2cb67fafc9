// Browser live reload in dev: HTML pages carry a script; its event stream says "reload" once the
// worker has switched. With liveReload off, pages are left as the worker sent them.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { startHost } from '../helpers/host.js'
import { PORTS } from '../helpers/ports.js'
import { useProject } from '../helpers/project.js'
import { within } from '../helpers/wait.js'

test('a page served in dev reloads itself after its worker switched', async (t) => {
  const root = await useProject(t, 'versioned')
  const host = await startHost(t, { root, mode: 'dev', workerPorts: PORTS.liveReload })

  const page = await host.fetch('/app/page')
  assert.equal(page.headers['content-length'], undefined, 'the length changed, so it is not sent')
  const html = await page.body.text()
  assert.match(html, /<p>version 0<\/p><\/body><\/html>\n<script src="\/__tqserver\/live-reload.js"><\/script>\n$/)
  const script = await host.fetch('/__tqserver/live-reload.js')
  assert.match(await script.body.text(), /new EventSource\("\/__tqserver\/live-reload"\)/)
  const json = await host.fetch('/app/version')
  assert.doesNotMatch(await json.body.text(), /script/, 'JSON is left alone')

  const events = await host.fetch('/__tqserver/live-reload', { headers: { accept: 'text/event-stream' } })
  assert.equal(events.headers['content-type'], 'text/event-stream')
  let received = ''
  const reload = within(15_000, 'a reload event', new Promise<string>((resolve) => {
    events.body.on('data', (chunk: Buffer) => {
      received += chunk.toString()
      const event = /event: reload\ndata: (.*)\n\n/.exec(received)
      if (event) resolve(event[1]!)
    })
  }))
  await writeFile(join(root, 'workers', 'app', 'src', 'version.ts'), 'export const VERSION = 1\n')
  assert.deepEqual(JSON.parse(await reload), { worker: 'app', reason: 'new version serving' })
  assert.equal((await (await host.fetch('/app/version')).body.json() as { version: number }).version, 1, 'the new version serves before the page is told')
})

test('liveReload: false leaves pages alone', async (t) => {
  const root = await useProject(t, 'versioned')
  const host = await startHost(t, { root, mode: 'dev', workerPorts: PORTS.liveReload, liveReload: false })
  assert.equal(await (await host.fetch('/app/page')).body.text(), '<!doctype html><html><body><p>version 0</p></body></html>')
})
