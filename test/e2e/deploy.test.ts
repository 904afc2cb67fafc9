// scripts/deploy.sh to a local target with a running server: the new version ends up served, only
// built artifacts are copied, and a target without a running server is a clear failure.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { access, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { TestContext } from 'node:test'
import { startCliServer } from '../helpers/cli.js'
import { clientFor } from '../helpers/host.js'
import { PORTS } from '../helpers/ports.js'
import { REPO_ROOT, useProject, writeFiles } from '../helpers/project.js'
import { within } from '../helpers/wait.js'
import { defer } from '../helpers/cleanup.js'

function deploy (t: TestContext, root: string, target: string): Promise<{ code: number | null, output: string }> {
  const child = spawn(join(REPO_ROOT, 'scripts', 'deploy.sh'), [target], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  child.stdout.on('data', (chunk: Buffer) => { output += chunk.toString() })
  child.stderr.on('data', (chunk: Buffer) => { output += chunk.toString() })
  defer(t, () => { if (child.exitCode === null) child.kill('SIGKILL') })
  return within(60_000, 'deploy.sh to finish', new Promise((resolve) => child.once('exit', (code) => resolve({ code, output }))))
}

test('deploy.sh builds, copies the built workers, reloads the target and ends with the new version served', async (t) => {
  const target = await useProject(t, undefined)
  const source = await useProject(t, 'multi', { 'config/deployment.yaml': `targets:\n  local: ${target}\n  elsewhere: /nonexistent/path\n` })

  const unknown = await deploy(t, source, 'nope')
  assert.equal(unknown.code, 1)
  assert.match(unknown.output, /no target "nope" in .*deployment\.yaml \(targets: local, elsewhere\)/)

  const noServer = await deploy(t, source, 'local')
  assert.notEqual(noServer.code, 0, 'without a running server the deploy fails')
  assert.match(noServer.output, /no tqserver runs in .* \[TQ_ERR_CLI_NOT_RUNNING\]/)
  await access(join(target, 'workers', 'a', 'bin', 'current.json'))
  await assert.rejects(access(join(target, 'workers', 'a', 'src')), 'sources are not copied')

  const server = await startCliServer(t, 'start', target, PORTS.deploy)
  const fetch = clientFor(t, server.url)
  assert.equal((await (await fetch('/a/')).body.json() as { version: number }).version, 1)

  await writeFiles(source, { 'workers/a/src/version.ts': 'export const VERSION = 2\n' })
  await writeFile(join(source, 'workers', 'b', 'worker.yaml'), 'env:\n  GREETING: deployed\n')
  const result = await deploy(t, source, 'local')
  assert.equal(result.code, 0, result.output)
  assert.match(result.output, /reloaded in \d+ ms: switched a, b; unchanged c/)
  assert.match(result.output, /deploy: local is serving the new versions/)
  assert.equal((await (await fetch('/a/')).body.json() as { version: number }).version, 2)
  assert.equal((await (await fetch('/b/')).body.json() as { greeting: string }).greeting, 'deployed')
})
