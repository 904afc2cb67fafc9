// Standalone with fastify-cli: `fastify start` on the package's "./app" export serves the workers,
// passes tqserver's options given after `--`, and a SIGTERM drains and stops every worker; with
// https and http2 options of the app's own (docs/tls.md) it serves HTTP/2, from one process.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createRequire } from 'node:module'
import { join } from 'node:path'
import { runCli, workersStarted } from '../helpers/cli.js'
import { clientFor } from '../helpers/host.js'
import { freePort, PORTS } from '../helpers/ports.js'
import { REPO_ROOT, useProject } from '../helpers/project.js'
import { isAlive, until, within } from '../helpers/wait.js'
import { makeCertificate } from '../helpers/certificates.js'
import { h2Request } from '../helpers/tls-client.js'

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

test('fastify start with the https and http2 options of docs/tls.md serves the workers over HTTP/2, from one process', async (t) => {
  const root = await useProject(t, 'tls', {
    // docs/tls.md's app file for fastify-cli.
    'app.mjs': [
      "import { readFileSync } from 'node:fs'",
      "export { default } from 'tqserver/app'",
      "export const options = { http2: true, https: { allowHTTP1: true, cert: readFileSync('certs/app.crt'), key: readFileSync('certs/app.key') } }"
    ].join('\n')
  }, ['ws'])
  const { cert } = await makeCertificate(join(root, 'certs/app.crt'), join(root, 'certs/app.key'))
  const [first, last] = PORTS.fastifyCli.split('-').map(Number) as [number, number]
  const port = await freePort()
  const cli = runCli(t, ['start', '-o', '-l', 'info', '-a', '127.0.0.1', '-p', String(port), 'app.mjs', '--', '--workerPorts', `${first}-${last}`, '--mode', 'prod', '--proxies', '2'],
    { cwd: root, script: FASTIFY_CLI })
  await Promise.race([
    cli.logs.waitFor((line) => line.msg === `Server listening at https://127.0.0.1:${port}`, 60_000, 'fastify-cli to listen'),
    cli.exited.then(({ code }) => { throw new Error(`fastify-cli exited with ${code}: ${cli.stderr()}`) })
  ])
  await workersStarted(cli.logs)
  assert.ok(cli.logs.lines.some((line) => /^one process serves the port: this app terminates TLS itself/.test(String(line.msg))), 'the reason data planes are not used')
  const answer = await h2Request(`https://127.0.0.1:${port}`, '/app/where', cert)
  assert.equal(answer.status, 200)
  assert.equal((JSON.parse(answer.body) as { proto: string }).proto, 'https')
  cli.child.kill('SIGTERM')
  assert.deepEqual(await within(20_000, 'fastify-cli to exit', cli.exited), { code: 0, signal: null })
})
