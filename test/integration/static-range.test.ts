// Range requests for a worker's public/ files are answered by the host: 206 with exactly the bytes
// asked for and a Content-Range, 416 (with the size) for a range past the end, a full 200 when
// If-Range no longer matches; never the worker. In dev, with live reload on, a range of an HTML
// page is the page's bytes only (the reload script goes on whole pages).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { startHost } from '../helpers/host.js'
import { PORTS } from '../helpers/ports.js'
import { useProject } from '../helpers/project.js'

const DIGITS = '0123456789abcdefghij'
const PAGE = '<!doctype html><html><body><p>ranged page</p></body></html>\n'

test('Range requests on public/ files', async (t) => {
  const root = await useProject(t, 'routing', {
    'workers/index/public/digits.txt': DIGITS,
    'workers/index/public/page.html': PAGE
  })
  const host = await startHost(t, { root, mode: 'dev', workerPorts: PORTS.staticRange, liveReload: true })
  const served = async () => (await (await host.fetch('/__served')).body.json() as { served: number }).served
  const ranged = async (path: string, range: string, extra: Record<string, string> = {}) => {
    const res = await host.fetch(path, { headers: { range, ...extra } })
    return { status: res.statusCode, headers: res.headers, body: await res.body.text() }
  }

  await t.test('a satisfiable range gets 206 with exactly its bytes', async () => {
    const before = await served()
    const cases: Array<[string, string, string]> = [
      ['bytes=2-5', '2345', 'bytes 2-5/20'],
      ['bytes=0-0', '0', 'bytes 0-0/20'],
      ['bytes=15-', 'fghij', 'bytes 15-19/20'],
      ['bytes=-3', 'hij', 'bytes 17-19/20'],
      ['bytes=5-100', '56789abcdefghij', 'bytes 5-19/20']
    ]
    for (const [range, bytes, contentRange] of cases) {
      const answer = await ranged('/digits.txt', range)
      assert.deepEqual(
        [answer.status, answer.body, answer.headers['content-range'], answer.headers['content-length']],
        [206, bytes, contentRange, String(bytes.length)], range)
      assert.equal(answer.headers['accept-ranges'], 'bytes')
    }
    assert.equal(await served(), before, 'the worker saw none of them')
  })

  await t.test('a range past the end gets 416 with the size, from the host', async () => {
    const before = await served()
    for (const range of ['bytes=20-30', 'bytes=100-', 'bytes=50-60']) {
      const answer = await ranged('/digits.txt', range)
      assert.equal(answer.status, 416, range)
      assert.equal(answer.headers['content-range'], 'bytes */20', range)
    }
    assert.equal(await served(), before, 'the worker saw none of them')
  })

  await t.test('If-Range: the range while the file is unchanged, the whole file once it changed', async () => {
    const etag = String((await host.fetch('/digits.txt')).headers.etag)
    await (await host.fetch('/digits.txt')).body.dump()
    const fresh = await ranged('/digits.txt', 'bytes=2-5', { 'if-range': etag })
    assert.deepEqual([fresh.status, fresh.body], [206, '2345'])
    const stale = await ranged('/digits.txt', 'bytes=2-5', { 'if-range': '"an-older-version"' })
    assert.deepEqual([stale.status, stale.body, stale.headers['content-range']], [200, DIGITS, undefined])
  })

  await t.test('a failed If-Match gets 412 from the host', async () => {
    const before = await served()
    const answer = await ranged('/digits.txt', 'bytes=2-5', { 'if-match': '"an-older-version"' })
    assert.equal(answer.status, 412)
    assert.equal(await served(), before, 'the worker did not see it')
  })

  await t.test('a range of an HTML page in dev is its bytes only; the whole page gets the reload script', async () => {
    const whole = await host.fetch('/page.html')
    assert.match(await whole.body.text(), /live-reload\.js/)
    const part = await ranged('/page.html', 'bytes=0-14')
    assert.deepEqual([part.status, part.body, part.headers['content-range']], [206, '<!doctype html>', `bytes 0-14/${PAGE.length}`])
    const tail = await ranged('/page.html', `bytes=-${PAGE.length - 15}`)
    assert.equal(tail.body, PAGE.slice(15), 'the last bytes are the file, with nothing appended')
  })
})
