// What bench:proxy and bench:tls share: a project with one trivial JSON worker, server processes
// pinned to CPU 0, `tqserver start` awaited until its worker serves, and wrk pinned to CPU 1 with
// the CPU per request of the processes behind it read from /proc.
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { mkdir, mkdtemp, symlink, writeFile } from 'node:fs/promises'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { request, type Dispatcher } from 'undici'
import { LogRecorder } from '../test/helpers/logs.js'
import { cpuTicks, TICKS_PER_SECOND } from './process-info.js'

export const repo = fileURLToPath(new URL('../../', import.meta.url))
export const has = (command: string): boolean => spawnSync('sh', ['-c', `command -v ${command}`]).status === 0

/** A temporary project whose worker `hello` answers GET /hello (served at /hello/hello through tqserver). */
export async function makeHelloProject (prefix: string): Promise<string> {
  const root = await mkdtemp(join(tmpdir(), prefix))
  await mkdir(join(root, 'workers', 'hello', 'src'), { recursive: true })
  await writeFile(join(root, 'workers/hello/src/main.ts'),
    "import { serve } from 'tqserver/worker'\nawait serve(async (app) => { app.get('/hello', async () => ({ hello: 'world' })) })\n")
  await mkdir(join(root, 'node_modules'))
  await symlink(repo, join(root, 'node_modules', 'tqserver'), 'dir')
  return root
}

export type Pinned = (command: string, args: string[], options?: { cwd?: string }) => ChildProcess

/** Starts processes on CPU 0 and remembers them in `children`, for `stopAll`. taskset execs the command: the child's pid is the command's. */
export function pinnedSpawner (children: ChildProcess[]): Pinned {
  return (command, args, options = {}) => {
    const child = spawn('taskset', ['-c', '0', command, ...args], { ...options, stdio: ['ignore', 'pipe', 'inherit'] })
    children.push(child)
    return child
  }
}

export async function stopAll (children: ChildProcess[]): Promise<void> {
  for (const child of children) child.kill('SIGTERM')
  await Promise.all(children.map((child) => child.exitCode === null && child.signalCode === null ? new Promise((resolve) => child.once('exit', resolve)) : undefined))
}

export interface StartedTqserver {
  child: ChildProcess
  log: LogRecorder
  /** The public URL it logged (https:// with TLS). */
  url: string
  /** The processes serving the port: the host, then its data planes. */
  pids: number[]
  worker: { pid: number, port: number }
}

/** `tqserver start` in `root` with `args`, once its worker serves. `dispatcher`: for /health over HTTPS. */
export async function startTqserver (pinned: Pinned, root: string, args: string[], dispatcher?: Dispatcher): Promise<StartedTqserver> {
  const child = pinned(process.execPath, [join(repo, 'dist/src/cli/main.js'), 'start', '--port', '0', ...args], { cwd: root })
  const log = new LogRecorder()
  child.stdout!.on('data', (chunk: Buffer) => log.write(chunk))
  const url = String((await log.waitFor((line) => line.msg === 'tqserver listening', 60_000, 'tqserver listening')).url)
  // The host listens before its workers serve.
  await log.waitFor((line) => line.msg === 'workers started', 60_000, 'the worker to serve')
  const proxies = args.includes('--proxies') ? args[args.indexOf('--proxies') + 1] : '1'
  const dataPlanes = proxies === '1' ? [] : (await log.waitFor((line) => line.msg === 'data planes serving', 30_000, 'the data planes')).dataPlanes as number[]
  const health = await (await request(`${url}/health`, dispatcher ? { dispatcher } : {})).body.json() as { workers: { hello: { instances: Array<{ pid: number, port: number }> } } }
  return { child, log, url, pids: [child.pid!, ...dataPlanes], worker: health.workers.hello.instances[0]! }
}

/** Resolves once something accepts TCP connections on 127.0.0.1:`port`. */
export async function waitForPort (port: number): Promise<void> {
  for (let i = 0; i < 200; i++) {
    const open = await new Promise<boolean>((resolve) => {
      const socket = connect(port, '127.0.0.1', () => { socket.destroy(); resolve(true) }).on('error', () => resolve(false))
    })
    if (open) return
    await new Promise((resolve) => setTimeout(resolve, 25))
  }
  throw new Error(`nothing listens on ${port}`)
}

/** `proxyPids`: every process of the proxy, read before each run (nginx forks its worker); `workerPid`: when not the shared worker. */
export interface Target { name: string, url: string, proxyPids: () => number[], workerPid?: number }
export interface Run { rps: number, p50: number, p99: number, cpuUs: { proxy: number, worker: number } }

/** CPU µs per request of `pids` between two cpuTicks readings. */
export const usPerRequest = (ticks: number, requests: number): number => (ticks * (1_000_000 / TICKS_PER_SECOND)) / requests

/** wrk on CPU 1 (keep-alive, one thread) for `seconds`, bounded by a timeout. */
export function runWrk (target: Target, seconds: number, connections: number, workerPid: number): Run {
  const proxyPids = target.proxyPids()
  if (target.workerPid !== undefined) workerPid = target.workerPid
  const before = { proxy: cpuTicks(proxyPids), worker: cpuTicks([workerPid]) }
  const out = execFileSync('taskset', ['-c', '1', 'wrk', '-t1', `-c${connections}`, `-d${seconds}s`, '--latency', target.url], { encoding: 'utf8', timeout: (seconds + 30) * 1000 })
  const after = { proxy: cpuTicks(proxyPids), worker: cpuTicks([workerPid]) }
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)![1])
  const requests = rps * seconds
  const latency = (p: string) => toMs(new RegExp(`^\\s+${p}%\\s+([\\d.]+)(us|ms|s)`, 'm').exec(out)!)
  const errors = /Non-2xx or 3xx responses: (\d+)|Socket errors: .*/.exec(out)
  if (errors) console.log(`  ${target.name}: ${errors[0]}`)
  return { rps, p50: latency('50'), p99: latency('99'), cpuUs: { proxy: usPerRequest(after.proxy - before.proxy, requests), worker: usPerRequest(after.worker - before.worker, requests) } }
}

function toMs (match: RegExpExecArray): number {
  const value = Number(match[1])
  return match[2] === 'us' ? value / 1000 : match[2] === 's' ? value * 1000 : value
}
