// How two processes share one port, measured: the listening socket passed from one to the other
// over IPC (what data planes do: src/proxy/data-planes.ts), against a socket of each bound with
// SO_REUSEPORT (Node's `reusePort`, Linux, Node >= 22.12). Two trivial node:http servers, first
// with keep-alive connections (wrk -c50: what a load balancer in front keeps open), then with a new
// connection per request (Connection: close), where the accept path is all there is to compare.
// Reports req/s, p99, CPU per request summed over both processes, and each one's share.
// Run: npm run bench:port-sharing [-- rounds seconds]
import { execFile, fork } from 'node:child_process'
import { promisify } from 'node:util'
import { createServer, type Server } from 'node:http'
import { fileURLToPath } from 'node:url'
import { cpuTicks, TICKS_PER_SECOND } from './process-info.js'
import { median } from './stats.js'

const ROUNDS = Number(process.argv[2] ?? 3)
const SECONDS = Number(process.argv[3] ?? 5)
const PORT = 18_990
const self = fileURLToPath(import.meta.url)

/** The second process: serves on what the first sends, and says how many requests it answered. */
if (process.argv[2] === 'child') {
  let served = 0
  const server = createServer((_req, res) => { served++; res.end('{"hello":"world"}') })
  process.on('message', (message: string, handle: Server | undefined) => {
    if (message === 'handle') server.listen(handle, () => process.send!('up'))
    if (message === 'reuse') server.listen({ port: PORT, host: '127.0.0.1', reusePort: true }, () => process.send!('up'))
    if (message === 'count') process.send!(served)
  })
} else {
  await main()
}

async function run (mode: 'handle' | 'reuse', close: boolean) {
  let served = 0
  const server = createServer((_req, res) => { served++; res.end('{"hello":"world"}') })
  await new Promise<void>((resolve) => server.listen({ port: PORT, host: '127.0.0.1', reusePort: mode === 'reuse' }, resolve))
  const child = fork(self, ['child'])
  const reply = () => new Promise<unknown>((resolve) => child.once('message', resolve))
  if (mode === 'handle') child.send('handle', server)
  else child.send('reuse')
  await reply()
  const pids = [process.pid, child.pid!]
  const ticks = cpuTicks(pids)
  // wrk runs in its own process, so the servers' CPU is theirs alone; this one serves meanwhile.
  const { stdout: out } = await promisify(execFile)('wrk', ['-t1', '-c50', `-d${SECONDS}s`, '--latency', ...close ? ['-H', 'Connection: close'] : [], `http://127.0.0.1:${PORT}/`])
  const cpuSeconds = (cpuTicks(pids) - ticks) / TICKS_PER_SECOND
  child.send('count')
  const childServed = Number(await reply())
  // The next run binds the port again: both sockets must be gone.
  await new Promise((resolve) => { child.once('exit', resolve).kill() })
  await new Promise((resolve) => server.close(resolve))
  const total = served + childServed
  const p99 = /99%\s+([\d.]+)(us|ms|s)/.exec(out)
  return {
    rps: Number(/Requests\/sec:\s+([\d.]+)/.exec(out)![1]),
    p99Ms: p99 ? Number(p99[1]) * ({ us: 0.001, ms: 1, s: 1000 } as Record<string, number>)[p99[2]!]! : NaN,
    cpuUs: cpuSeconds * 1e6 / total,
    firstShare: served / total
  }
}

async function main (): Promise<void> {
  console.log(`port sharing: node ${process.version}, ${ROUNDS} rounds of ${SECONDS} s, wrk -c50`)
  console.log('| connections | sharing | req/s | p99 ms | CPU µs/req (both) | first process\'s share |')
  console.log('| --- | --- | --- | --- | --- | --- |')
  for (const close of [false, true]) {
    const results = { handle: [] as Array<Awaited<ReturnType<typeof run>>>, reuse: [] as Array<Awaited<ReturnType<typeof run>>> }
    for (let round = 0; round < ROUNDS; round++) {
      for (const mode of ['handle', 'reuse'] as const) results[mode].push(await run(mode, close))
    }
    for (const mode of ['handle', 'reuse'] as const) {
      const of = (key: 'rps' | 'p99Ms' | 'cpuUs' | 'firstShare') => median(results[mode].map((result) => result[key]))
      const shares = results[mode].map((result) => `${Math.round(result.firstShare * 100)} %`).join(', ')
      console.log(`| ${close ? 'one per request' : 'keep-alive'} | ${mode === 'handle' ? 'socket passed over IPC' : 'SO_REUSEPORT'} | ${Math.round(of('rps')).toLocaleString('en-US')} | ${of('p99Ms').toFixed(2)} | ${of('cpuUs').toFixed(1)} | ${shares} |`)
    }
  }
}
