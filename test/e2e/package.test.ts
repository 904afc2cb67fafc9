// tqserver as a user adds it to a project of their own: the packed tarball installed with npm into an
// empty folder, `npx tqserver init`, `npm run build`, the installed bin serving; `npm ci --omit=dev`
// installing it without a build step; init keeping what a project already has.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { access, copyFile, mkdir, readFile, rename } from 'node:fs/promises'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { spawn } from 'node:child_process'
import { defer } from '../helpers/cleanup.js'
import { runCliToEnd, startCliServer, workersStarted } from '../helpers/cli.js'
import { LogRecorder } from '../helpers/logs.js'
import { isAlive, until, waitForExit } from '../helpers/wait.js'
import { clientFor } from '../helpers/host.js'
import { npm, usePackedFolder, useInstalledProject } from '../helpers/package.js'
import { PORTS } from '../helpers/ports.js'
import { useProject, writeFiles } from '../helpers/project.js'

const run = promisify(execFile)
const exists = (path: string) => access(path).then(() => true, () => false)

test('the packed package installs into an empty project, init makes it a project, and its bin builds and serves', async (t) => {
  const { dir, tarball } = await usePackedFolder(t)
  const listing = await run('tar', ['tzf', tarball])
  const files = listing.stdout.split('\n')
  assert.ok(files.includes('package/dist/src/cli/main.js') && files.includes('package/dist/plugins/index.js'), 'dist/ ships')
  assert.ok(!files.some((file) => /^package\/(test|bench|workers|dist\/test|dist\/bench)\//.test(file)), 'no tests, benchmarks or example workers')

  const root = await useInstalledProject(dir, tarball, 'shop')
  const init = await run('npx', ['tqserver', 'init'], { cwd: root })
  assert.match(init.stdout, /created config\/server\.yaml\ncreated workers\/index\nupdated package\.json: added scripts dev, start, build\ncreated \.gitignore\nnext: npm run dev and open http:\/\/127\.0\.0\.1:8080\/\n$/)
  const pkg = JSON.parse(await readFile(join(root, 'package.json'), 'utf8')) as { scripts: Record<string, string> }
  assert.equal(pkg.scripts.start, 'exec tqserver start')
  assert.match(await readFile(join(root, '.gitignore'), 'utf8'), /^workers\/\*\/bin\/$/m)

  await writeFiles(root, {
    'workers/cmd/worker.yaml': 'command: [node, server.mjs]\n',
    'workers/cmd/server.mjs': "import { createServer } from 'node:http'\ncreateServer((req, res) => res.end('cmd')).listen(Number(process.env.PORT), process.env.HOST)\n"
  })
  const build = await npm(root, ['run', 'build'])
  assert.match(build, /built index -> workers\/index\/bin\/[0-9a-f]+\/main\.mjs/)
  const server = await startCliServer(t, 'start', root, PORTS.packageInstall, [], { script: join(root, 'node_modules', '.bin', 'tqserver') })
  const fetch = clientFor(t, server.url)
  const page = await fetch('/?name=shop')
  assert.equal(page.statusCode, 200)
  assert.match(await page.body.text(), /<h1>Hello, shop<\/h1>/)
  assert.equal((await fetch('/style.css')).statusCode, 200, 'public/ is served by the host')

  // A deploy's npm ci removes node_modules/tqserver for seconds: a worker that restarts meanwhile
  // (after a crash: SIGKILL here) must start without it, a Node worker and a command: worker alike.
  const serving = async () => {
    const report = await (await fetch('/health')).body.json() as { workers: Record<string, { instances: Array<{ pid: number, state: string }> }> }
    return Object.fromEntries(Object.entries(report.workers).map(([name, worker]) => [name, worker.instances.find((instance) => instance.state === 'HEALTHY')?.pid]))
  }
  const before = await serving()
  assert.deepEqual(Object.keys(before).sort(), ['cmd', 'index'])
  await rename(join(root, 'node_modules', 'tqserver'), join(dir, 'tqserver-away'))
  try {
    for (const pid of Object.values(before)) process.kill(pid!, 'SIGKILL')
    await until(30_000, 'both workers to serve again', async () => {
      const now = await serving()
      return Object.keys(before).every((name) => now[name] !== undefined && now[name] !== before[name])
    })
    assert.equal(await (await fetch('/cmd/')).body.text(), 'cmd')
  } finally {
    await rename(join(dir, 'tqserver-away'), join(root, 'node_modules', 'tqserver'))
  }

  // A SIGTERM sent to npx reaches its shell only, which dies of it: the server stops all the same.
  const npx = spawn('npx', ['tqserver', 'start'], { cwd: root, env: { ...process.env, TQ_PORT: '0', TQ_WORKER_PORTS: PORTS.packageInstall }, stdio: ['ignore', 'pipe', 'inherit'] })
  const npxLogs = new LogRecorder()
  npx.stdout.on('data', (chunk: Buffer) => npxLogs.write(chunk))
  const serverPid = Number((await npxLogs.waitFor((line) => line.msg === 'tqserver listening', 60_000, 'npx tqserver start to listen')).pid)
  defer(t, () => { if (isAlive(serverPid)) process.kill(serverPid, 'SIGKILL') })
  await workersStarted(npxLogs)
  npx.kill('SIGTERM')
  await waitForExit(serverPid, 20_000)
  assert.ok(npxLogs.lines.some((line) => String(line.msg).startsWith('npm, which started this server, has gone')))
  assert.ok(npxLogs.lines.some((line) => line.msg === 'worker state changed' && line.to === 'STOPPED' && line.reason === 'process code 0'), 'the worker was drained')

  // A server installs from the lockfile with runtime dependencies only, and runs nothing at install.
  const prod = join(dir, 'prod')
  await mkdir(prod)
  for (const file of ['package.json', 'package-lock.json']) await copyFile(join(root, file), join(prod, file))
  await npm(prod, ['ci', '--omit=dev', '--no-audit', '--no-fund', '--prefer-offline'])
  const version = await run(join(prod, 'node_modules', '.bin', 'tqserver'), ['--version'])
  assert.match(version.stdout, /^\d+\.\d+\.\d+\n$/)
  assert.equal(await exists(join(prod, 'node_modules', 'typescript')), false, 'no development dependency is installed')
})

test('init in an existing project keeps its files, scripts and workers, and adds only what is missing', async (t) => {
  const root = await useProject(t, undefined, {
    'workers/api/src/main.ts': 'export {}\n',
    '.gitignore': 'node_modules\ncoverage/',
    'config/server.yaml': 'port: 3000\n',
    'package.json': JSON.stringify({ name: 'existing', scripts: { test: 'node --test', dev: 'my-own-dev' } }, null, '\t')
  })
  const pkgPath = join(root, 'package.json')
  const init = async () => {
    const result = await runCliToEnd(t, ['init'], { cwd: root })
    assert.equal(result.code, 0, result.stderr)
    return result
  }

  const first = await init()
  assert.match(first.stdout, /kept {4}config\/server\.yaml\nkept {4}workers\/ \(api\)\nupdated package\.json: added scripts start, build; kept your scripts dev \(tqserver's: "exec tqserver dev"\)\nupdated \.gitignore\nnext: npx tqserver dev and open http:\/\/127\.0\.0\.1:3000\/\n$/)
  assert.equal(await readFile(join(root, 'config', 'server.yaml'), 'utf8'), 'port: 3000\n')
  assert.equal(await exists(join(root, 'workers', 'index')), false)
  const after = await readFile(pkgPath, 'utf8')
  assert.match(after, /^\t"scripts": \{$/m, 'the file keeps its tab indentation')
  assert.equal((JSON.parse(after) as { scripts: Record<string, string> }).scripts.dev, 'my-own-dev')
  assert.equal(await readFile(join(root, '.gitignore'), 'utf8'), 'node_modules\ncoverage/\n# tqserver\nworkers/*/bin/\n.tqserver/\nlogs/\n')

  const files = ['package.json', '.gitignore', 'config/server.yaml']
  const before = await Promise.all(files.map((file) => readFile(join(root, file), 'utf8')))
  const second = await init()
  assert.doesNotMatch(second.stdout, /created|updated/, 'a second init changes nothing')
  assert.deepEqual(await Promise.all(files.map((file) => readFile(join(root, file), 'utf8'))), before)
})
