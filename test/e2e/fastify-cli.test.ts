// Standalone with fastify-cli: `fastify start` on the package's "./app" export serves the workers,
// passes tqserver's options given after `--`, and a SIGTERM drains and stops every worker.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createRequire } from 'node:module'
import { join } from 'node:path'
import { runCli, workersStarted } from '../helpers/cli.js'
import { clientFor } from '../helpers/host.js'
import { freePort, PORTS } from '../helpers/ports.js'
import { REPO_ROOT, useProject } from '../helpers/project.js'
import { isAlive, until, within } from '../helpers/wait.js'

const FASTIFY_CLI = join(REPO_ROOT, 'node_modules', 'fastify-cli', 'cli.js')

test('fastify start serves the workers through the ./app export and drains on SIGTERM', async (t) => {
  const root = await useProject(t, 'sdk')
  const [first, last] = PORTS.fastifyCli.split('-').map(Number) as [number, number]
  // fastify-cli takes -p 0 for its default, 3000: the server gets a port that is free now.
  const port = await freePort()
  // What a user's project resolves for the package's "./app" export.
  const app = createRequire(join(root, 'package.json')).resolve('tqserver/app')
  const cli = runCli(t, [
    'start', '-o', '-g', '20000', '-l', 'info', '-a', '127.0.0.1', '-p', String(port),
    app, '--', '--workerPorts', `${first}-${last}`, '--mode', 'prod'
  ], { cwd: root, script: FASTIFY_CLI })
  await Promise.race([
    cli.logs.waitFor((line) => line.msg === `Server listening at http://127.0.0.1:${port}`, 60_000, 'fastify-cli to listen'),
    cli.exited.then(({ code }) => { throw new Error(`fastify-cli exited with ${code}: ${cli.stderr()}`) })
  ])
  await workersStarted(cli.logs)
  const fetch = clientFor(t, `http://127.0.0.1:${port}`)

  const res = await fetch('/app/')
  assert.equal(res.statusCode, 200)
  const { worker, pid } = await res.body.json() as { worker: string, pid: number }
  assert.equal(worker, 'app')
  const health = await (await fetch('/health')).body.json() as { status: string, workers: Record<string, { instances: Array<{ port: number }> }> }
  assert.equal(health.status, 'healthy')
  const workerPort = health.workers.app!.instances[0]!.port
  assert.ok(workerPort >= first && workerPort <= last, `the worker port ${workerPort} comes from --workerPorts`)
  assert.equal((await fetch('/livez')).statusCode, 200)

  // A request in flight when SIGTERM arrives still gets its answer.
  const slow = fetch('/app/slow?ms=500')
  await until(5000, 'the slow request to be in flight', async () =>
    !(await (await fetch('/metrics')).body.text()).includes('tqserver_requests_in_flight{worker="app"} 0'))
  cli.child.kill('SIGTERM')
  const answer = await slow
  assert.deepEqual([answer.statusCode, await answer.body.json()], [200, { slow: true, ms: 500 }])
  assert.deepEqual(await within(20_000, 'fastify-cli to exit', cli.exited), { code: 0, signal: null })
  assert.equal(isAlive(pid), false, 'the worker stopped with the server')
})
