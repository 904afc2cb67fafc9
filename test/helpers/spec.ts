// A worker spec for unit tests that need one without a folder on disk.
import type { WorkerSpec } from '../../src/config/worker-discovery.js'

export function testSpec (name: string, route = `/${name}`, overrides: Partial<WorkerSpec> = {}): WorkerSpec {
  return {
    name,
    route,
    enabled: true,
    dir: `/nonexistent/${name}`,
    instances: 1,
    entry: '',
    command: undefined,
    build: undefined,
    maxRequests: 0,
    maxMemoryMb: 0,
    bodyLimit: 0,
    external: [],
    env: {},
    timeouts: { startTimeout: 1, drainTimeout: 1, killTimeout: 1, upstreamTimeout: 1 },
    publicDir: '/nonexistent',
    source: '',
    ...overrides
  }
}
