// The image's commands as plain processes, with no Docker engine (test/docker/ runs the image
// itself, npm run test:docker): the build stage's worker build,
// then the final stage's CMD with its ENV in a copy of what the image holds, its HEALTHCHECK
// command, and SIGTERM (what tini forwards on `docker stop`) ending in exit 0.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { cp, readFile, symlink } from 'node:fs/promises'
import { join } from 'node:path'
import { runCli, workersStarted } from '../helpers/cli.js'
import { clientFor } from '../helpers/host.js'
import { execForm, parseDockerfile, stageEnv } from '../helpers/dockerfile.js'
import { freePort, PORTS } from '../helpers/ports.js'
import { REPO_ROOT, useProject } from '../helpers/project.js'
import { within } from '../helpers/wait.js'

test('the image\'s build, CMD and HEALTHCHECK run, and SIGTERM stops it cleanly', async (t) => {
  const stages = parseDockerfile(await readFile(join(REPO_ROOT, 'docker', 'Dockerfile'), 'utf8'))
  const final = stages.at(-1)!
  const buildStep = stages[0]!.filter(({ keyword }) => keyword === 'RUN').flatMap(({ args }) => args.split('&&').map((part) => part.trim()))
    .find((part) => /cli\/main\.js build$/.test(part))!
  const cmd = execForm(final.filter(({ keyword }) => keyword === 'CMD').at(-1)!.args)!
  const healthcheck = final.find(({ keyword }) => keyword === 'HEALTHCHECK')!.args
  const healthCmd = execForm(healthcheck.slice(healthcheck.indexOf('CMD ') + 4))!

  // /app as the image has it: the example workers and config, dist/ and node_modules.
  const app = await useProject(t, undefined)
  await cp(join(REPO_ROOT, 'workers'), join(app, 'workers'), { recursive: true, filter: (source) => !source.includes('/bin') })
  await cp(join(REPO_ROOT, 'config'), join(app, 'config'), { recursive: true })
  await symlink(join(REPO_ROOT, 'dist'), join(app, 'dist'), 'dir')
  const [command, script, ...args] = buildStep.split(' ')
  assert.equal(command, 'node')
  const built = spawnSync(process.execPath, [script!, ...args], { cwd: app, encoding: 'utf8' })
  assert.equal(built.status, 0, built.stderr)

  const port = await freePort()
  const env = { ...stageEnv(final), TQ_PORT: String(port), TQ_WORKER_PORTS: PORTS.dockerEntrypoint }
  assert.equal(cmd[0], 'node')
  const server = runCli(t, cmd.slice(2), { cwd: app, env, script: join(app, cmd[1]!) })
  await Promise.race([
    server.logs.waitFor((line) => line.msg === 'tqserver listening', 60_000, 'the server to listen'),
    server.exited.then(({ code }) => { throw new Error(`CMD exited with ${code}: ${server.stderr()}`) })
  ])
  await workersStarted(server.logs)
  const fetch = clientFor(t, `http://127.0.0.1:${port}`)
  assert.equal((await fetch('/readyz')).statusCode, 200)
  const api = await fetch('/api/hello?name=docker')
  assert.equal((await api.body.json() as { hello: string }).hello, 'docker')

  assert.equal(healthCmd[0], 'node')
  const probe = spawnSync(process.execPath, healthCmd.slice(1), { env: { ...process.env, ...env }, encoding: 'utf8' })
  assert.equal(probe.status, 0, `HEALTHCHECK passes: ${probe.stderr}`)

  server.child.kill('SIGTERM')
  assert.deepEqual(await within(20_000, 'the server to exit', server.exited), { code: 0, signal: null })
  const down = spawnSync(process.execPath, healthCmd.slice(1), { env: { ...process.env, ...env }, encoding: 'utf8' })
  assert.equal(down.status, 1, 'HEALTHCHECK fails once the server is gone')
})
