// A worker's public/ files are served by the host at the worker's route without reaching the
// worker; nothing outside public/ (and no dotfile) is ever served from disk.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { startHost } from '../helpers/host.js'
import { PORTS } from '../helpers/ports.js'
import { useProject } from '../helpers/project.js'

test('static files', async (t) => {
  const root = await useProject(t, 'routing', { 'workers/api/public/logo.svg': '<svg xmlns="http://www.w3.org/2000/svg"/>\n' })
  const host = await startHost(t, { root, workerPorts: PORTS.staticFiles })
  const served = async (prefix: string) => (await (await host.fetch(`${prefix}/__served`)).body.json() as { served: number }).served

  await t.test('serves public/ files at the route without waking the worker', async () => {
    const before = await served('')
    const file = await host.fetch('/hello.txt')
    assert.equal(file.statusCode, 200)
    assert.equal(await file.body.text(), 'hello from public\n')
    assert.match(String(file.headers['content-type']), /^text\/plain/)
    const nested = await host.fetch('/sub/page.html')
    assert.equal(await nested.body.text(), '<p>nested</p>\n')
    const head = await host.fetch('/hello.txt', { method: 'HEAD' })
    assert.equal(head.statusCode, 200)
    assert.equal(head.headers['content-length'], '18')
    await head.body.dump()
    const etag = String(file.headers.etag)
    const cached = await host.fetch('/hello.txt', { headers: { 'if-none-match': etag } })
    assert.equal(cached.statusCode, 304)
    await cached.body.dump()
    assert.equal(await served(''), before, 'the index worker saw none of these requests')
  })

  await t.test("serves a prefixed worker's files after its prefix only", async () => {
    const logo = await host.fetch('/api/logo.svg')
    assert.equal(logo.statusCode, 200)
    assert.match(String(logo.headers['content-type']), /^image\/svg\+xml/)
    await logo.body.dump()
    const elsewhere = await host.fetch('/logo.svg')
    assert.equal((await elsewhere.body.json() as { worker: string }).worker, 'index', 'not a file of the index worker')
  })

  await t.test('leaves other methods to the worker', async () => {
    const post = await host.fetch('/hello.txt', { method: 'POST', body: 'x' })
    assert.deepEqual((await post.body.json() as { worker: string, url: string }).url, '/hello.txt')
  })

  await t.test('never serves a dotfile or anything outside public/', async () => {
    const attempts = [
      '/.secret', '/sub/../.secret', '/..%2fprivate/data.txt', '/%2e%2e/private/data.txt',
      '/sub/%2e%2e/%2e%2e/private/data.txt', '/..\\private\\data.txt', '/%2e%2e%5cprivate%5cdata.txt', '/public/hello.txt'
    ]
    for (const path of attempts) {
      const res = await host.fetch(path)
      const body = await res.body.text()
      assert.ok(!body.includes('SECRET=1') && !body.includes('private data'), `${path} leaked a file (${res.statusCode})`)
      assert.ok(res.statusCode === 400 || res.headers['content-type'] === 'application/json', `${path}: refused, or answered by the worker (${res.statusCode})`)
    }
  })
})
