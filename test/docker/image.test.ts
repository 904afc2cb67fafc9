// The image for real, with a Docker engine: `npm run test:docker` (npm test needs no engine and
// skips this folder). docker/Dockerfile builds; the container serves every example worker under
// tini as a non-root user; Docker's HEALTHCHECK turns healthy; `docker stop` drains every worker
// and the container exits 0. The container is removed whatever happens.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { defer } from '../helpers/cleanup.js'
import { parseDockerfile } from '../helpers/dockerfile.js'
import { freePort, PORTS } from '../helpers/ports.js'
import { REPO_ROOT } from '../helpers/project.js'
import { until } from '../helpers/wait.js'

const IMAGE = 'tqserver-app:test'
/** A cold build with the classic builder on vfs storage took 25 min here (docker/README.md). */
const BUILD_MS = 40 * 60_000
/** Docker counts image sizes in SI megabytes. */
const MB = 1e6
/** Every process of the container, from /proc: pid, name, uid. Runs inside it, with its node. */
const LIST_PROCESSES = `const fs = require('fs'); console.log(JSON.stringify(fs.readdirSync('/proc').filter((d) => /^\\d+$/.test(d)).flatMap((pid) => {
  try { const s = fs.readFileSync('/proc/' + pid + '/status', 'utf8'); return [{ pid: +pid, name: /^Name:\\s+(.*)$/m.exec(s)[1], uid: +/^Uid:\\s+(\\d+)/m.exec(s)[1] }] } catch { return [] }
})))`

interface Run { code: number | null, stdout: string, stderr: string }
interface LogLine { level?: number, msg?: string, worker?: string, to?: string, reason?: string, signal?: string, workers?: string[] }
interface HealthBody { status: string, workers: Record<string, { status: string }> }

/** Runs the docker command to its end (killed after `timeoutMs`). */
async function docker (args: string[], timeoutMs = 60_000): Promise<Run> {
  return await new Promise((resolve, reject) => {
    const child = spawn('docker', args, { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'], signal: AbortSignal.timeout(timeoutMs) })
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => { stdout += chunk })
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk })
    child.on('error', (err) => reject(err.name === 'AbortError'
      ? new Error(`docker ${args[0]} did not finish in ${timeoutMs} ms: ${lastLines(stderr + stdout)}`)
      : new Error(`cannot run docker (${err.message}): a Docker engine and its CLI are needed`)))
    child.on('close', (code) => resolve({ code, stdout, stderr }))
  })
}

/** Runs the docker command and returns its output, which must be a success. */
async function dockerOk (args: string[], timeoutMs?: number): Promise<string> {
  const run = await docker(args, timeoutMs)
  assert.equal(run.code, 0, `docker ${args.join(' ')} failed: ${lastLines(run.stderr + run.stdout)}`)
  return run.stdout.trim()
}

function lastLines (text: string, count = 40): string {
  return text.trim().split('\n').slice(-count).join('\n')
}

const seconds = (ms: number) => (ms / 1000).toFixed(1)

test('the image builds small, serves every worker, turns healthy and stops cleanly on docker stop', async (t) => {
  const engine = await docker(['info', '--format', '{{.ServerVersion}}'])
  assert.equal(engine.code, 0, `no Docker engine answers; start one (docker/README.md): ${lastLines(engine.stderr)}`)
  // The final stage's base (no registry: pulled if absent, or the build fails on it).
  const stages = parseDockerfile(await readFile(join(REPO_ROOT, 'docker', 'Dockerfile'), 'utf8'))
  const base = stages.at(-1)![0]!.args.split(/\s+/)[0]!
  if ((await docker(['image', 'inspect', base])).code !== 0) {
    const pulled = await docker(['pull', base], 10 * 60_000)
    assert.equal(pulled.code, 0, `the base image ${base} is neither here nor pullable; build or load it first (docker/README.md): ${lastLines(pulled.stderr)}`)
  }

  // --network host: an engine with no bridge network (like the one this was written on) builds too.
  const buildStarted = performance.now()
  await dockerOk(['build', '--network', 'host', '-f', 'docker/Dockerfile', '-t', IMAGE, '.'], BUILD_MS)
  const buildMs = performance.now() - buildStarted
  const size = Number(await dockerOk(['image', 'inspect', '--format', '{{.Size}}', IMAGE]))
  const baseSize = Number(await dockerOk(['image', 'inspect', '--format', '{{.Size}}', base]))
  t.diagnostic(`build ${seconds(buildMs)} s; image ${(size / MB).toFixed(1)} MB, ${base} ${(baseSize / MB).toFixed(1)} MB`)
  assert.ok(size - baseSize < 100 * MB, `the image adds ${((size - baseSize) / MB).toFixed(1)} MB to its base (at most 100)`)

  const port = await freePort()
  const name = `tqserver-test-${process.pid}`
  defer(t, () => docker(['rm', '--force', name]))
  const runStarted = performance.now()
  await dockerOk(['run', '--detach', '--name', name, '--network', 'host', '--env', `TQ_PORT=${port}`,
    '--env', `TQ_WORKER_PORTS=${PORTS.dockerImage}`, IMAGE])
  const logs = async () => { const run = await docker(['logs', name]); return run.stdout + run.stderr }
  // `docker wait` ends when the container does and prints its exit code.
  const exited = docker(['wait', name], BUILD_MS)
  let isStopping = false
  const died = exited.then(async (run) => {
    if (!isStopping) throw new Error(`the container exited (${run.stdout.trim()}) on its own: ${lastLines(await logs())}`)
  })
  died.catch(() => {}) // raced below, while the container should run

  const url = `http://127.0.0.1:${port}`
  const health = await Promise.race([died, until(120_000, 'every worker healthy at /health', async () => {
    const response = await fetch(`${url}/health`, { headers: { accept: 'application/json' } }).catch(() => undefined)
    const body = response && await response.json() as HealthBody
    return body?.status === 'healthy' ? body : undefined
  }, 250)]) as HealthBody
  t.diagnostic(`every worker healthy ${seconds(performance.now() - runStarted)} s after docker run`)
  assert.deepEqual(Object.keys(health.workers).sort(), ['api', 'index', 'py'])

  const page = await fetch(`${url}/`)
  assert.equal(page.status, 200)
  assert.match(page.headers.get('content-type') ?? '', /^text\/html/)
  assert.match(await page.text(), /<h1>Hello, there!<\/h1>/)
  const api = await fetch(`${url}/api/hello?name=docker`)
  assert.equal(api.status, 200)
  assert.deepEqual({ ...await api.json() as object, pid: 0 }, { hello: 'docker', worker: 'api', pid: 0 })
  const python = await fetch(`${url}/py/`)
  assert.equal(python.status, 200)
  assert.equal((await python.json() as { hello: string }).hello, 'from Python')
  const healthAgain = await fetch(`${url}/health`)
  assert.equal(healthAgain.status, 200)
  assert.equal((await healthAgain.json() as HealthBody).status, 'healthy')

  // tini is PID 1; the server and every worker run as the image's user (uid 1000, not root).
  const processes = JSON.parse(await dockerOk(['exec', name, 'node', '-e', LIST_PROCESSES])) as Array<{ pid: number, name: string, uid: number }>
  assert.equal(processes.find(({ pid }) => pid === 1)?.name, 'tini')
  assert.deepEqual(processes.filter(({ uid }) => uid !== 1000), [])
  assert.ok(processes.some(({ name }) => name === 'python3'), 'the Python worker runs')

  await Promise.race([died, until(90_000, 'Docker\'s HEALTHCHECK to report healthy', async () =>
    await dockerOk(['inspect', '--format', '{{.State.Health.Status}}', name]) === 'healthy', 500)])

  isStopping = true
  const stopStarted = performance.now()
  await dockerOk(['stop', '-t', '30', name])
  const stopMs = performance.now() - stopStarted
  assert.equal((await exited).stdout.trim(), '0', 'the container exits 0 (137 would be a SIGKILL after the stop timeout)')
  t.diagnostic(`docker stop ${seconds(stopMs)} s, exit code 0`)

  const lines = (await logs()).split('\n').flatMap((line) => {
    try { return [JSON.parse(line) as LogLine] } catch { return [] }
  })
  const workers = lines.find(({ msg }) => msg === 'tqserver listening')?.workers ?? []
  assert.deepEqual(workers.sort(), ['api', 'index', 'py'])
  const shutdown = lines.findIndex(({ msg, signal }) => msg === 'shutting down: draining workers' && signal === 'SIGTERM')
  assert.ok(shutdown >= 0, 'SIGTERM reached the server')
  const changes = lines.slice(shutdown).filter(({ msg }) => msg === 'worker state changed')
  for (const worker of workers) {
    assert.ok(changes.some((line) => line.worker === worker && line.to === 'DRAINING'), `${worker} drained`)
    assert.ok(changes.some((line) => line.worker === worker && line.to === 'STOPPED' && line.reason === 'process code 0'), `${worker} exited by itself`)
  }
  assert.deepEqual(lines.filter(({ level }) => (level ?? 0) >= 50), [], 'no error in the log')
})
