// The route table's matching, upstream choice and in-flight accounting.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { RouteTable, type WorkerEntry } from '../../src/routing/route-table.js'
import { StaticFiles } from '../../src/routing/static-files.js'
import type { WorkerSpec } from '../../src/config/worker-discovery.js'
import { testSpec } from '../helpers/spec.js'
import type { WorkerInstance } from '../../src/process/worker-instance.js'

const spec = (name: string, route: string, enabled = true) => testSpec(name, route, { enabled })

function registryWith (...specs: WorkerSpec[]): RouteTable {
  const registry = new RouteTable()
  for (const s of specs) registry.setWorker(s, new StaticFiles(s.publicDir))
  return registry
}

test('matches the longest prefix on segment boundaries and strips it', () => {
  const registry = registryWith(spec('index', '/'), spec('api', '/api'), spec('v2', '/api/v2'))
  const cases: Array<[string, string, string]> = [
    ['/', 'index', '/'], ['/x', 'index', '/x'], ['/apix', 'index', '/apix'], ['/api', 'api', '/'], ['/api/', 'api', '/'],
    ['/api?a=1', 'api', '/'], ['/api/x/y?z', 'api', '/x/y'], ['/api/v2', 'v2', '/'], ['/api/v2/', 'v2', '/'],
    ['/api/v2/a', 'v2', '/a'], ['/api/v20', 'api', '/v20'], ['/api//x', 'api', '//x'], ['*', 'index', '*']
  ]
  for (const [url, worker, path] of cases) {
    const match = registry.match(url)
    assert.deepEqual([match?.entry.spec.name, match?.forwardPath], [worker, path], url)
  }
})

test('without a root worker an unmatched path has no route; a disabled worker is not routed', () => {
  const registry = registryWith(spec('api', '/api'), spec('old', '/old', false))
  assert.equal(registry.match('/elsewhere'), undefined)
  assert.equal(registry.match('/old/x'), undefined)
  assert.equal(registry.match('/api/x')?.entry.spec.name, 'api')
})

test('a worker removed or moved to another path is routed no more at the old one', () => {
  const registry = registryWith(spec('api', '/api'))
  registry.setWorker(spec('api', '/v1'), new StaticFiles('/nonexistent'))
  assert.equal(registry.match('/api/x'), undefined)
  assert.equal(registry.match('/v1/x')?.entry.spec.name, 'api')
  registry.removeWorker('api')
  assert.equal(registry.match('/v1/x'), undefined)
})

/** Publishes instances (stand-ins with only what publish() reads) as the worker's upstreams. */
function withUpstreams (registry: RouteTable, name: string, origins: string[]): WorkerEntry {
  for (const origin of origins) {
    registry.addInstance(name, { origin, state: { is: (state: string) => state === 'HEALTHY' } } as unknown as WorkerInstance)
  }
  registry.publish(name)
  return registry.worker(name)!
}

test('acquire picks the least busy upstream and counts the request until release', () => {
  const registry = registryWith(spec('api', '/api'))
  assert.equal(registry.acquire(registry.worker('api')!), undefined, 'no upstream: nothing to acquire')
  const entry = withUpstreams(registry, 'api', ['http://a', 'http://b'])
  const first = registry.acquire(entry)!
  const second = registry.acquire(entry)!
  assert.notEqual(first, second, 'the second request goes to the idle upstream')
  registry.release(first, 1, false)
  assert.equal(registry.acquire(entry), first)
  assert.deepEqual([registry.traffic.inflight('http://a'), registry.traffic.inflight('http://b')], [1, 1])
})

test('whenIdle resolves when the last request ends, or false at the deadline', async () => {
  const registry = registryWith(spec('api', '/api'))
  const entry = withUpstreams(registry, 'api', ['http://a'])
  assert.equal(await registry.traffic.whenIdle('http://a', 10), true, 'idle already')
  registry.acquire(entry)
  registry.acquire(entry)
  const idle = registry.traffic.whenIdle('http://a', 5000)
  registry.release('http://a', 1, false)
  registry.release('http://a', 1, false)
  assert.equal(await idle, true)
  registry.acquire(entry)
  assert.equal(await registry.traffic.whenIdle('http://a', 20), false)
})
