// A full disk where builds are written (a tmpfs of 1 MB over the worker's bin/): the build fails
// with a message that says so, leaves no partial output behind, and the running version keeps
// serving; once space is back, the next save is served. Needs root to mount the tmpfs.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { defer } from '../helpers/cleanup.js'
import { startHost } from '../helpers/host.js'
import { PORTS } from '../helpers/ports.js'
import { useProject } from '../helpers/project.js'

const mount = (...args: string[]) => spawnSync(args[0]!, args.slice(1), { encoding: 'utf8' })

test('dev: a build that finds the disk full keeps the running version serving, and the next save after space is back is served', async (t) => {
  const root = await useProject(t, 'plain')
  const bin = join(root, 'workers', 'hello', 'bin')
  await mkdir(bin)
  const mounted = mount('mount', '-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', bin)
  if (mounted.status !== 0) return t.skip(`cannot mount a tmpfs here (needs root): ${mounted.stderr.trim()}`)
  defer(t, () => { mount('umount', '-l', bin) })

  const host = await startHost(t, { root, mode: 'dev', workerPorts: PORTS.diskFull, liveReload: false })
  const answer = async () => (await (await host.fetch('/hello/')).body.json() as { plain: boolean, version?: number, pid: number })
  assert.equal((await answer()).plain, true)

  // Fill what is left of the 1 MB.
  await writeFile(join(bin, 'filler'), Buffer.alloc(2 * 1024 * 1024)).catch((err: NodeJS.ErrnoException) => assert.equal(err.code, 'ENOSPC'))
  const main = join(root, 'workers', 'hello', 'src', 'main.ts')
  const source = await readFile(main, 'utf8')
  const failed = host.logs.next((line) => line.msg === 'worker build failed; the running version keeps serving', 10_000, 'the build to fail')
  await writeFile(main, source.replace('plain: true', 'plain: true, version: 2'))
  const { err } = await failed as { err?: { message?: string } }
  assert.match(String(err?.message), /^worker hello failed to build:\ncannot write .*bin: ENOSPC: no space left on device/)
  assert.equal((await answer()).version, undefined, 'the old version serves')
  assert.deepEqual((await readdir(bin)).filter((name) => name.startsWith('.tmp')), [], 'no partial build is left to fill the disk further')

  await rm(join(bin, 'filler'))
  const switched = host.logs.next((line) => line.msg === 'worker switched' && line.worker === 'hello', 10_000, 'the new version to serve')
  await writeFile(main, source.replace('plain: true', 'plain: true, version: 3'))
  await switched
  assert.equal((await answer()).version, 3)
})
