// The example workers of the quick start (workers/index and workers/api) serve what the README says.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { cp } from 'node:fs/promises'
import { join } from 'node:path'
import { startCliServer } from '../helpers/cli.js'
import { clientFor } from '../helpers/host.js'
import { PORTS } from '../helpers/ports.js'
import { REPO_ROOT, useProject } from '../helpers/project.js'

test('the example workers: an HTML page with its stylesheet, and a JSON API that validates input', async (t) => {
  const root = await useProject(t, undefined)
  await cp(join(REPO_ROOT, 'workers'), join(root, 'workers'), { recursive: true, filter: (source) => !source.includes('/bin') })
  const server = await startCliServer(t, 'dev', root, PORTS.examples)
  const fetch = clientFor(t, server.url)

  const page = await fetch('/?name=reader')
  assert.equal(page.statusCode, 200)
  const html = await page.body.text()
  assert.match(html, /<h1>Hello, reader!<\/h1>/, 'rendered from private/templates/page.html')
  assert.match(html, /<link rel="stylesheet" href="\/style.css">/)
  const css = await fetch('/style.css')
  assert.deepEqual([css.statusCode, css.headers['content-type']], [200, 'text/css; charset=utf-8'])
  await css.body.dump()
  const escaped = await fetch('/?name=%3Cscript%3E')
  assert.match(await escaped.body.text(), /Hello, &#60;script&#62;!/)

  const hello = await fetch('/api/hello?name=you')
  assert.deepEqual((await hello.body.json() as { hello: string }).hello, 'you')
  const echo = await fetch('/api/echo', { method: 'POST', body: JSON.stringify({ title: 'hi', tags: ['a'] }), headers: { 'content-type': 'application/json' } })
  assert.equal(echo.statusCode, 201)
  assert.deepEqual((await echo.body.json() as { received: unknown }).received, { title: 'hi', tags: ['a'] })
  const invalid = await fetch('/api/echo', { method: 'POST', body: JSON.stringify({ title: '' }), headers: { 'content-type': 'application/json' } })
  assert.equal(invalid.statusCode, 400)
  assert.match((await invalid.body.json() as { message: string }).message, /title/)
})
