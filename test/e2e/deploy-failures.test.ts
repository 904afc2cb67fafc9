// tqserver deploy when something goes wrong: an unknown target, a build failure (nothing is
// copied), a changed tqserver package (the target's restart: command runs instead of a reload) and
// npm ci failing (npm's message, no reload).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { access, mkdir, readFile, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { npm, usePackedFolder } from '../helpers/package.js'
import { writeFiles } from '../helpers/project.js'
import { deploy, workers } from '../helpers/deploy.js'

const exists = (path: string) => access(path).then(() => true, () => false)

test('deploy stops at a build failure, shows npm ci failing, and runs restart: when the tqserver package changed', async (t) => {
  const { dir, tarball } = await usePackedFolder(t)
  const source = join(dir, 'source')
  await mkdir(source)
  await npm(source, ['init', '-y'])
  // Only package.json and the lockfile: these workers import nothing.
  await npm(source, ['install', '--package-lock-only', '--no-audit', '--no-fund', '--prefer-offline', tarball])
  const { 'workers/cmd/server.mjs': program } = workers(1)
  await writeFiles(source, {
    'workers/cmd/server.mjs': program!,
    'workers/cmd/worker.yaml': 'command: node server.mjs\n',
    'workers/broken/src/main.ts': 'export const = 1\n',
    'config/deployment.yaml': 'targets:\n  old:\n    path: ../old\n    restart: echo "restarted in $PWD" > restarted.txt\n  other: /nowhere\n'
  })
  const target = join(dir, 'old')

  const unknown = await deploy(t, source, 'nope')
  assert.equal(unknown.code, 1)
  assert.match(unknown.output, /no target "nope" in config\/deployment\.yaml \(targets: old, other\) \[TQ_ERR_DEPLOY_UNKNOWN_TARGET\]/)

  const broken = await deploy(t, source, 'old')
  assert.equal(broken.code, 1)
  assert.match(broken.output, /worker broken failed to build/)
  assert.match(broken.output, /the build of broken failed: nothing was copied to .*old \[TQ_ERR_DEPLOY_BUILD_FAILED\]/)
  assert.equal(await exists(target), false)
  await rm(join(source, 'workers', 'broken'), { recursive: true })

  // A target that runs an older tqserver: after the install, its restart command runs instead of a reload.
  await writeFiles(target, { 'node_modules/tqserver/package.json': '{ "name": "tqserver", "version": "0.0.1" }\n' })
  const restarted = await deploy(t, source, 'old')
  assert.equal(restarted.code, 0, restarted.output)
  assert.match(restarted.output, /the tqserver package changed \(0\.0\.1 -> \d+\.\d+\.\d+\): a reload would keep the old server code; restarting: echo/)
  assert.doesNotMatch(restarted.output, /reloading the server/)
  assert.equal(await readFile(join(target, 'restarted.txt'), 'utf8'), `restarted in ${target}\n`)

  // A dependency npm cannot install: it says why, and nothing is reloaded.
  const pkg = JSON.parse(await readFile(join(source, 'package.json'), 'utf8')) as { dependencies: Record<string, string> }
  await writeFile(join(source, 'package.json'), JSON.stringify({ ...pkg, dependencies: { ...pkg.dependencies, tqserver: 'file:../no-such-package.tgz' } }, null, 2))
  const install = await deploy(t, source, 'old')
  assert.equal(install.code, 1, install.output)
  assert.match(install.output, /npm error enoent ENOENT: no such file or directory, open '.*no-such-package\.tgz'/)
  assert.match(install.output, /npm ci --omit=dev failed in .*old \(exit code \d+; its output is above\): the server there was not reloaded \[TQ_ERR_DEPLOY_INSTALL_FAILED\]/)
  assert.doesNotMatch(install.output, /reloading the server|restarting/)
})
