// Requests reach the worker that owns the longest matching prefix, with the prefix removed, the
// query string and percent-encoding untouched, and X-Forwarded-* set.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { startHost } from '../helpers/host.js'
import { PORTS } from '../helpers/ports.js'
import { useProject } from '../helpers/project.js'

interface Echo {
  worker: string
  route: string
  url: string
  method: string
  mode: string
  host: string
  port: string
  cwd: string
  greeting?: string
  headers: Record<string, string>
  bodyBytes: number
  bodySha256: string
}

test('proxy routing', async (t) => {
  const root = await useProject(t, 'routing')
  const host = await startHost(t, { root, workerPorts: PORTS.proxyRouting })
  const echo = async (path: string, options: Parameters<typeof host.fetch>[1] = {}) => {
    const res = await host.fetch(path, options)
    assert.equal(res.statusCode, 200, `${path} answered ${res.statusCode}`)
    return await res.body.json() as Echo
  }

  await t.test('routes the longest prefix on a path-segment boundary and strips it', async () => {
    const cases: Array<[string, string, string]> = [
      ['/api/users', 'api', '/users'],
      ['/api', 'api', '/'],
      ['/api/', 'api', '/'],
      ['/api?q=1', 'api', '/?q=1'],
      ['/apix/a', 'apix', '/a'],
      ['/apiy', 'index', '/apiy'],
      ['/api/v2/x', 'api-v2', '/x'],
      ['/api/v2', 'api-v2', '/'],
      ['/api/v20', 'api', '/v20'],
      ['/', 'index', '/'],
      ['/deep/er/path', 'index', '/deep/er/path']
    ]
    for (const [path, worker, url] of cases) {
      const body = await echo(path)
      assert.deepEqual([body.worker, body.url], [worker, url], `GET ${path}`)
    }
  })

  await t.test('keeps the query string and percent-encoding as sent', async () => {
    const body = await echo("/api/a%2Fb/%E2%9C%93/x%20y?q=%20a+b&q=c&empty=&odd=%zz&quote='")
    assert.equal(body.url, "/a%2Fb/%E2%9C%93/x%20y?q=%20a+b&q=c&empty=&odd=%zz&quote='")
  })

  await t.test('sets X-Forwarded-For, -Proto, -Host and -Prefix (a client\'s own are replaced: no trustProxy)', async () => {
    const api = await echo('/api/h', { headers: { host: 'shop.example', 'x-forwarded-for': '203.0.113.7' } })
    assert.equal(api.headers['x-forwarded-for'], '127.0.0.1')
    assert.equal(api.headers['x-forwarded-proto'], 'http')
    assert.equal(api.headers['x-forwarded-host'], 'shop.example')
    assert.equal(api.headers['x-forwarded-prefix'], '/api')
    assert.equal(api.headers.host, `127.0.0.1:${api.port}`)
    const index = await echo('/h', { headers: { 'x-forwarded-prefix': '/spoofed' } })
    assert.equal(index.headers['x-forwarded-for'], '127.0.0.1')
    assert.equal(index.headers['x-forwarded-prefix'], undefined, 'the root route has no prefix, and a client cannot set one')
  })

  await t.test('forwards methods and request bodies', async () => {
    const payload = Buffer.from(JSON.stringify({ title: 'x'.repeat(5000) }))
    for (const method of ['POST', 'PUT', 'PATCH', 'DELETE'] as const) {
      const body = await echo('/api/items/1', { method, body: payload, headers: { 'content-type': 'application/json' } })
      assert.deepEqual([body.method, body.url, body.bodyBytes], [method, '/items/1', payload.length])
    }
  })

  await t.test('gives the worker the environment of the worker contract, in its own folder', async () => {
    const body = await echo('/api/v2/env')
    assert.deepEqual(
      { worker: body.worker, route: body.route, mode: body.mode, host: body.host, greeting: body.greeting, cwd: body.cwd },
      { worker: 'api-v2', route: '/api/v2', mode: 'prod', host: '127.0.0.1', greeting: 'hi from v2', cwd: join(root, 'workers', 'api-v2') })
    const [first, last] = PORTS.proxyRouting.split('-').map(Number) as [number, number]
    assert.ok(Number(body.port) >= first && Number(body.port) <= last, `port ${body.port} is in workerPorts ${PORTS.proxyRouting}`)
  })

  await t.test("rewrites a redirect to the worker's own origin into its public route", async () => {
    const res = await host.fetch('/api/redirect')
    assert.equal(res.statusCode, 302)
    assert.equal(res.headers.location, '/api/target?from=redirect')
    await res.body.dump()
  })

  await t.test('refuses a path that climbs out of the route with .., encoded or not', async () => {
    for (const path of ['/api/%2e%2e/index/x', '/api/../index/x', '/api/..%5cx']) {
      const res = await host.fetch(path)
      assert.equal(res.statusCode, 400, path)
      assert.equal((await res.body.json() as { code: string }).code, 'TQ_ERR_PROXY_BAD_PATH', path)
    }
    const malformed = await host.fetch('/api/%zz')
    assert.equal(malformed.statusCode, 400, 'an invalid percent-encoding (refused by Fastify first)')
    await malformed.body.dump()
    const dots = await host.fetch('/api/v1.2/file...txt')
    assert.equal((await dots.body.json() as Echo).url, '/v1.2/file...txt', 'dots that are no .. segment pass')
  })
})

test('answers 404 with JSON, or an HTML page for a browser, when no worker serves the path', async (t) => {
  const root = await useProject(t, 'routing', { 'workers/index/worker.yaml': 'entry: ../../shared/echo.ts\nenabled: false\n' })
  const host = await startHost(t, { root, workerPorts: PORTS.proxyRouting })
  const json = await host.fetch('/nothing/here?x=1')
  assert.equal(json.statusCode, 404)
  assert.deepEqual(await json.body.json(), {
    statusCode: 404, code: 'TQ_ERR_PROXY_NO_ROUTE', error: 'Not Found', message: 'no worker serves /nothing/here'
  })
  const html = await host.fetch('/nothing', { headers: { accept: 'text/html,application/xhtml+xml,*/*;q=0.8' } })
  assert.equal(html.statusCode, 404)
  assert.match(String(html.headers['content-type']), /^text\/html/)
  assert.match(await html.body.text(), /<h1>404 Not Found<\/h1>/)
})
