// tqserver deploy as a user runs it: the packed package installed in a project beside the target
// folder. A TypeScript worker and a command: worker reach a running server with no failed request,
// locally and over ssh (a stand-in that runs the command here); npm ci runs only when the packages
// changed. The failures are in deploy-failures.test.ts (each file has two minutes).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { access, chmod, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { startCliServer } from '../helpers/cli.js'
import { deploy, workers } from '../helpers/deploy.js'
import { clientFor } from '../helpers/host.js'
import { startLoad } from '../helpers/load.js'
import { usePackedFolder, useInstalledProject } from '../helpers/package.js'
import { PORTS } from '../helpers/ports.js'
import { writeFiles } from '../helpers/project.js'
import { defer } from '../helpers/cleanup.js'

const exists = (path: string) => access(path).then(() => true, () => false)

/** An `ssh` that runs the remote command here, and notes the host it was given. */
async function sshStandIn (dir: string): Promise<{ bin: string, log: string }> {
  const bin = join(dir, 'ssh-bin')
  const log = join(dir, 'ssh.log')
  await mkdir(bin)
  await writeFile(join(bin, 'ssh'), `#!/bin/sh
while [ "$#" -gt 0 ]; do case "$1" in -l|-p|-o|-i) shift 2 ;; -*) shift ;; *) break ;; esac; done
echo "$1" >> '${log}'
shift
exec sh -c "$*"
`)
  await chmod(join(bin, 'ssh'), 0o755)
  return { bin, log }
}

test('deploys a TypeScript worker and a command worker to a running server under load: both serve their new version, no request fails', async (t) => {
  const { dir, tarball } = await usePackedFolder(t)
  const target = join(dir, 'target')
  const source = await useInstalledProject(dir, tarball, 'source', {
    ...workers(1),
    'workers/cmd/worker.yaml': 'command: node server.mjs\n',
    'workers/cmd/src/notes.md': 'sources of the command worker: not deployed\n',
    'workers/app/public/old.txt': 'removed before the second deploy\n',
    'config/deployment.yaml': `targets:\n  live: ../target\n  remote: deploy-host:${target}\n`
  })

  // A fresh target: everything is copied and installed, then the reload finds no server.
  const first = await deploy(t, source, 'live')
  assert.equal(first.code, 1, first.output)
  assert.match(first.output, /installing packages there: npm ci --omit=dev/)
  assert.match(first.output, /no tqserver runs in .*target .*\[TQ_ERR_CLI_NOT_RUNNING\]/)
  assert.match(first.output, /the new files are in .*target, but the reload there failed \(see above; if no server runs there, start it: tqserver start, or systemctl start tqserver\) \[TQ_ERR_DEPLOY_RELOAD_FAILED\]/)
  assert.ok(await exists(join(target, 'workers', 'app', 'bin', 'current.json')))
  assert.ok(await exists(join(target, 'workers', 'cmd', 'server.mjs')), "the command worker's program")
  assert.equal(await exists(join(target, 'workers', 'app', 'src')), false, 'TypeScript sources stay behind')
  assert.equal(await exists(join(target, 'workers', 'cmd', 'src')), false, "the command worker's src/ stays behind")

  const server = await startCliServer(t, 'start', target, PORTS.deploy, [], { script: join(target, 'node_modules', '.bin', 'tqserver') })
  const fetch = clientFor(t, server.url)
  const version = async (prefix: string) => (await (await fetch(`${prefix}/version`)).body.json() as { version: number }).version
  assert.deepEqual([await version('/app'), await version('/cmd')], [1, 1])
  const load = startLoad(server.url, ['/app', '/cmd'], 6)
  defer(t, () => load.stop())
  await load.reached(1, 10_000)

  await writeFiles(source, workers(2))
  await rm(join(source, 'workers', 'app', 'public', 'old.txt'))
  const second = await deploy(t, source, 'live')
  assert.equal(second.code, 0, second.output)
  assert.match(second.output, /packages unchanged: no npm ci/)
  assert.match(second.output, /reloaded in \d+ ms: switched app, cmd\n/)
  assert.match(second.output, /deploy: live is serving the new versions/)
  assert.deepEqual([await version('/app'), await version('/cmd')], [2, 2])
  assert.equal(await exists(join(target, 'workers', 'app', 'public', 'old.txt')), false, 'a removed file is removed there')
  const builds = (await readdir(join(target, 'workers', 'app', 'bin'))).filter((name) => name !== 'current.json')
  assert.equal(builds.length, 1, `only the current build is left after the reload (${builds.join(', ')})`)

  // Over ssh: the same steps through a remote shell.
  const ssh = await sshStandIn(dir)
  await writeFiles(source, workers(3))
  const third = await deploy(t, source, 'remote', ssh.bin)
  assert.equal(third.code, 0, third.output)
  assert.match(third.output, /reloaded in \d+ ms: switched app, cmd\n/)
  assert.deepEqual([await version('/app'), await version('/cmd')], [3, 3])
  assert.ok((await readFile(ssh.log, 'utf8')).split('\n').filter((host) => host === 'deploy-host').length >= 4, 'probe, copy, reload and clean-up went through ssh')

  const { ok, failures } = await load.stop()
  t.diagnostic(`${ok} requests answered during two deploys; deploy took ${first.ms} ms (copy, npm ci), ${second.ms} ms (no npm ci), ${third.ms} ms (ssh)`)
  assert.deepEqual(failures, [])
  assert.ok(ok > 100, `the load kept running (${ok} answers)`)
  assert.equal((await readdir(join(target, '.tqserver', 'servers'))).length, 1, "the target's own files stay")
})
