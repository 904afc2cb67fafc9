// A worker that is not TypeScript (`command:` in worker.yaml): the example Python worker is run,
// routed, switched on change and stopped like any other; its build command's failure is reported.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { cp, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { startHost } from '../helpers/host.js'
import { PORTS } from '../helpers/ports.js'
import { REPO_ROOT, useProject } from '../helpers/project.js'
import { isAlive, waitForExit } from '../helpers/wait.js'

test('a Python worker under the same contract', async (t) => {
  const root = await useProject(t, undefined, {
    'workers/broken/worker.yaml': 'command: [sh, run.sh]\nbuild: \'echo compiling; echo "error: missing semicolon" >&2; exit 3\'\n',
    'workers/broken/run.sh': 'exit 1\n'
  })
  await cp(join(REPO_ROOT, 'workers', 'py'), join(root, 'workers', 'py'), { recursive: true })
  const host = await startHost(t, { root, mode: 'dev', workerPorts: PORTS.commandWorker, liveReload: false })

  const first = await (await host.fetch('/py/hello?x=1')).body.json() as { hello: string, path: string, prefix: string, pid: number }
  assert.deepEqual({ ...first, pid: 0 }, { hello: 'from Python', path: '/hello?x=1', prefix: '/py', pid: 0 })
  const report = host.app.tqserver.status()
  assert.equal(report.workers.py!.status, 'healthy')
  assert.equal(report.workers.py!.lastBuild.mode, 'dev')
  const devPointer = JSON.parse(await readFile(join(root, 'workers', 'py', 'bin', 'dev.json'), 'utf8')) as { id: string, file: string }
  assert.deepEqual([devPointer.id, devPointer.file], [report.workers.py!.lastBuild.id, ''], 'a dev version id, in the dev pointer')
  assert.ok(report.workers.py!.output.some((line) => line.text === 'GET /hello?x=1 200'), "the program's output is captured")
  assert.match(report.workers.broken!.lastBuild.error!.message, /^worker broken failed to build:\nbuild command "echo compiling; .*" exited with code 3\ncompiling\nerror: missing semicolon$/)

  const switched = host.logs.next((line) => line.worker === 'py' && line.msg === 'worker switched', 15_000, 'py to switch')
  const source = join(root, 'workers', 'py', 'server.py')
  await writeFile(source, (await readFile(source, 'utf8')).replace('"from Python"', '"from Python, again"'))
  await switched
  const second = await (await host.fetch('/py/')).body.json() as { hello: string, pid: number }
  assert.equal(second.hello, 'from Python, again')
  assert.equal(isAlive(first.pid), false, 'the old Python process is gone')

  await host.app.close()
  await waitForExit(second.pid, 5000)
})

test('a command given as a shell string: the shell and its program stop on a switch and with the host', async (t) => {
  // Debian's sh (dash) does not exec the last command of `sh -c`: python3 is the shell's child,
  // one process further from the server than the list form.
  const root = await useProject(t, undefined)
  await cp(join(REPO_ROOT, 'workers', 'py'), join(root, 'workers', 'py'), { recursive: true })
  await writeFile(join(root, 'workers', 'py', 'worker.yaml'), 'command: python3 server.py\n')
  const host = await startHost(t, { root, workerPorts: PORTS.commandWorker })
  const program = async () => (await (await host.fetch('/py/')).body.json() as { pid: number }).pid
  const first = await program()
  const shim = host.app.tqserver.status().workers.py!.instances[0]!.pid!
  assert.equal(host.app.tqserver.status().workers.py!.lastBuild.mode, 'prod')
  assert.equal((JSON.parse(await readFile(join(root, 'workers', 'py', 'bin', 'current.json'), 'utf8')) as { mode: string }).mode, 'prod')
  assert.notEqual(first, shim)

  await host.app.tqserver.restart('py')
  await waitForExit(first, 5000)
  const second = await program()
  assert.notEqual(second, first)
  await host.app.close()
  await waitForExit(second, 5000)
})
