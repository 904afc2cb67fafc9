// Worker port ranges, one per test file: files run two at a time, and two pools probing the same
// range could both hand out a port before either worker has bound it. They lie in 20000-24999
// (TEST_PORTS); benchmarks use 25000-31999. Hosts listen on port 0 and freePort() serves a server
// that must know its port up front, so only these ranges can collide with another run.
// TQ_TEST_PORTS=<port> moves the whole block to start there, for two runs on one machine (two CI
// jobs, two checkouts): 10000 gives 10000-14999, 15000 gives 15000-19999 (below 10000 lie common
// ports: 8080 and tqserver's own 9000-9999). The block must stay out of the kernel's ephemeral
// ports (/proc/sys/net/ipv4/ip_local_port_range, 32768-60999 here): a client socket could take
// such a port between the pool's check and the worker's bind (EADDRINUSE). A TQ_TEST_PORTS whose
// block overlaps them is refused.
import { readFileSync } from 'node:fs'
import { createServer, type AddressInfo } from 'node:net'

/** The block every range below lies in (test/unit/test-ports.test.ts checks it), before a move. */
export const TEST_PORTS = { from: 20000, to: 24999 } as const

/** The ranges where TQ_TEST_PORTS is unset; PORTS holds them moved. */
export const RANGES = {
  /** Two servers in one root: the first's workers, the second's. */
  severalServers: '23950-23974',
  severalServersSecond: '23975-23989',
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
  deploy: '23990-23999',
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
  tls: '23000-23039',
  tlsCertificates: '23040-23079',
  /** Pebble's listeners (ACME, management, DNS, its DNS's management) and the server's plain port. */
  acme: '23080-23099',
  logFile: '23100-23149',
  dataPlanes: '23150-23199',
  killTimeout: '23200-23299',
  drainTimeout: '23300-23399',
  crashBackoff: '23400-23499',
  shutdownSignals: '23500-23599',
  reloadFailures: '23600-23699',
  partialSwitch: '23700-23799',
  disableWorker: '23800-23899',
  packageInstall: '23900-23929',
  docsCommands: '23930-23949',
  /** On the host's network: the container of test/docker/image.test.ts. */
  dockerImage: '24601-24609',
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
  /** A production server and a dev server in one root: one range each. */
  buildModesProd: '24610-24629',
  buildModesDev: '24630-24649',
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

/** Each test file's worker port range, 'from-to', moved by TQ_TEST_PORTS. */
export const PORTS = movePorts(RANGES, process.env.TQ_TEST_PORTS, ephemeralPorts())

/**
 * `ranges` shifted so that TEST_PORTS starts at `base` (TQ_TEST_PORTS's value; unset or empty:
 * unchanged). Throws if `base` is not a port number or the moved block leaves 1024-65535 or
 * overlaps `ephemeral`, the kernel's range for client sockets.
 */
export function movePorts<T extends Record<string, string>> (ranges: T, base: string | undefined, ephemeral?: readonly [number, number]): { readonly [K in keyof T]: string } {
  if (base === undefined || base === '') return { ...ranges }
  const size = TEST_PORTS.to - TEST_PORTS.from + 1
  const from = /^\d+$/.test(base) ? Number(base) : NaN
  const to = from + size - 1
  if (!(from >= 1024 && to <= 65535)) {
    throw new Error(`TQ_TEST_PORTS must be the first of ${size} ports within 1024-65535, such as 10000 (got "${base}")`)
  }
  if (ephemeral !== undefined && from <= ephemeral[1] && to >= ephemeral[0]) {
    throw new Error(`TQ_TEST_PORTS=${base} puts the tests' ports ${from}-${to} among the kernel's ephemeral ports ` +
      `${ephemeral[0]}-${ephemeral[1]}, which client sockets take; choose one from 1024 to ${ephemeral[0] - size}, such as 10000`)
  }
  const shift = from - TEST_PORTS.from
  const moved = Object.entries(ranges).map(([name, range]) => {
    const [first, last] = range.split('-').map(Number) as [number, number]
    return [name, `${first + shift}-${last + shift}`]
  })
  return Object.fromEntries(moved) as { readonly [K in keyof T]: string }
}

/** The kernel's ephemeral port range, where it can tell (Linux). */
function ephemeralPorts (): [number, number] | undefined {
  try {
    const [first, last] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number)
    return first !== undefined && last !== undefined ? [first, last] : undefined
  } catch {
    return undefined
  }
}

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
