// Worker port ranges, one per test file: files run two at a time, and two pools probing the same
// range could both hand out a port before either worker has bound it. Benchmarks use 25000-31999.
// All stay below the kernel's ephemeral ports (32768 and up here): a client socket could take such
// a port between the pool's check and the worker's bind (EADDRINUSE).
import { createServer, type AddressInfo } from 'node:net'

export const PORTS = {
  proxyRouting: '20000-20099',
  proxyStreaming: '20100-20199',
  workerDown: '20200-20299',
  staticFiles: '20300-20399',
  embedding: '20400-20499',
  plainWorker: '20500-20599',
  startFailure: '20600-20699',
  cliShutdown: '20700-20799',
  cliErrors: '20800-20899',
  cliCommands: '20900-20999',
  portPool: '21000-21099',
  examples: '21100-21199',
  reloadStorm: '21200-21299',
  hotReload: '21300-21399',
  liveReload: '21400-21499',
  prodReload: '21500-21599',
  deploy: '21600-21699',
  healthChecks: '21700-21799',
  dashboard: '21800-21899',
  crashUnderLoad: '21900-21999',
  instances: '22000-22099',
  recycling: '22100-22199',
  hostile: '22200-22299',
  websocket: '22300-22399',
  noLeaks: '22400-22499',
  commandWorker: '22500-22599',
  handoff: '22600-22699',
  metrics: '22700-22799',
  fastifyCli: '22800-22899',
  dockerEntrypoint: '22900-22999',
  scaleOut: '23000-23099',
  logFile: '23100-23199',
  killTimeout: '23200-23299',
  drainTimeout: '23300-23399',
  crashBackoff: '23400-23499',
  shutdownSignals: '23500-23599',
  reloadFailures: '23600-23699',
  partialSwitch: '23700-23799',
  disableWorker: '23800-23899',
  /** On the host's network: the container of test/docker/image.test.ts. */
  dockerImage: '23900-23919',
  forwarderEdges: '24000-24099',
  staticRange: '24100-24199',
  traversalFastPath: '24200-24299',
  handoffEdges: '24300-24399',
  buildPruning: '24400-24499',
  watcherInputs: '24500-24599',
  hostKilled: '24700-24749',
  portRace: '24750-24799',
  hungWorker: '24800-24849',
  /** One port for two workers. */
  poolExhausted: '24600-24600',
  publicFiles: '24650-24669',
  startUp: '24850-24899',
  diskFull: '24900-24919',
  memoryLeak: '24920-24939',
  edgeHttp: '24940-24944',
  edgeHttpEmbedded: '24945-24949',
  edgeForwarded: '24950-24959',
  /** Hand-off runs of edge-http (first half) and edge-forwarded (second half). */
  edgeHandoff: '24670-24699',
  handoffRules: '24980-24999',
  /** Two hosts: the first half, the second half. */
  slowClients: '24960-24979'
} as const

/**
 * A port no one listens on now, for a server that must be told its port up front (its health
 * check reads it too). The kernel hands out ephemeral ports in turn, so another program taking
 * it before the server binds is unlikely; it fails with EADDRINUSE if it happens.
 */
export async function freePort (): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  await new Promise((resolve) => server.close(resolve))
  return port
}
