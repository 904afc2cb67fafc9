// The tqserver command line: help and usage errors, configuration errors as one line, build, new,
// and `start` building only what is missing.
import { test } from 'node:test'
import { existsSync } from 'node:fs'
import assert from 'node:assert/strict'
import { once } from 'node:events'
import { readFile, writeFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import { join } from 'node:path'
import { runCliToEnd, startCliServer } from '../helpers/cli.js'
import { clientFor } from '../helpers/host.js'
import { PORTS } from '../helpers/ports.js'
import { useProject, writeFiles } from '../helpers/project.js'
import { defer } from '../helpers/cleanup.js'

test('--help prints the commands; a wrong command or flag is a usage error (exit 2)', async (t) => {
  const root = await useProject(t, undefined)
  const help = await runCliToEnd(t, ['--help'], { cwd: root })
  assert.equal(help.code, 0)
  for (const command of ['dev', 'start', 'build', 'reload', 'status', 'new']) {
    assert.match(help.stdout, new RegExp(`^  ${command} +\\S`, 'm'))
    const own = await runCliToEnd(t, [command, '--help'], { cwd: root })
    assert.equal(own.code, 0)
    assert.match(own.stdout, new RegExp(`^tqserver ${command} .*\\n\\S`), `${command} --help shows its usage and what it does`)
    assert.deepEqual((await runCliToEnd(t, ['help', command], { cwd: root })).stdout, own.stdout)
  }
  assert.match((await runCliToEnd(t, ['new', '--help'], { cwd: root })).stdout, /--template html/)
  const unknown = await runCliToEnd(t, ['serve'], { cwd: root })
  assert.deepEqual([unknown.code, unknown.stderr], [2, 'tqserver: unknown command "serve" (see tqserver --help) [TQ_ERR_CLI_USAGE]\n'])
  const flag = await runCliToEnd(t, ['start', '--prot', '80'], { cwd: root })
  assert.equal(flag.code, 2)
  assert.match(flag.stderr, /^tqserver: Unknown option '--prot'.*\[TQ_ERR_CLI_USAGE\]\n$/)
})

test('a configuration error stops start-up with one line naming the file or flag and the key', async (t) => {
  const root = await useProject(t, 'routing', { 'config/server.yaml': 'prot: 80\n' })
  const file = await runCliToEnd(t, ['start'], { cwd: root })
  assert.deepEqual([file.code, file.stderr],
    [1, 'tqserver: config/server.yaml: unknown key "prot" (did you mean "port"?) [TQ_ERR_CONFIG_UNKNOWN_KEY]\n'])

  await writeFile(join(root, 'config', 'server.yaml'), '')
  const flag = await runCliToEnd(t, ['start', '--port', 'eighty'], { cwd: root })
  assert.deepEqual([flag.code, flag.stderr],
    [1, 'tqserver: --port: key "port" must be of type integer (got "eighty") [TQ_ERR_CONFIG_INVALID_VALUE]\n'])

  const env = await runCliToEnd(t, ['start'], { cwd: root, env: { TQ_WORKER_PORTS: '9999-9000' } })
  assert.equal(env.code, 1)
  assert.match(env.stderr, /^tqserver: environment variable TQ_WORKER_PORTS: key "workerPorts" is reversed or empty/)

  await writeFile(join(root, 'workers', 'api', 'worker.yaml'), 'entry: ../../shared/echo.ts\npath: /apix\n')
  const duplicate = await runCliToEnd(t, ['start', '--port', '0', '--worker-ports', PORTS.cliCommands], { cwd: root })
  assert.equal(duplicate.code, 1)
  assert.match(duplicate.stderr, /two workers are served at path "\/apix": workers\/api\/worker\.yaml and workers\/apix\/worker\.yaml/)
})

test('a server port held by another program is a clear error, before any worker starts', async (t) => {
  const root = await useProject(t, 'routing')
  const squatter = createServer().listen(0, '127.0.0.1')
  await once(squatter, 'listening')
  defer(t, () => squatter.close())
  const port = (squatter.address() as { port: number }).port
  const result = await runCliToEnd(t, ['start', '--port', String(port), '--worker-ports', PORTS.cliCommands], { cwd: root })
  assert.deepEqual([result.code, result.stderr], [1,
    `tqserver: port ${port} on 127.0.0.1 is held by another program; choose another with --port or TQ_PORT [TQ_ERR_PORT_IN_USE]\n`])
  assert.equal(result.stdout, '', 'no worker was built or started')
})

test('build makes production bundles; a failing worker fails the command but not the others', async (t) => {
  const root = await useProject(t, 'routing', { 'workers/broken/src/main.ts': 'export const x = (\n' })
  const result = await runCliToEnd(t, ['build'], { cwd: root })
  assert.equal(result.code, 1)
  assert.match(result.stderr, /worker broken failed to build:\n✘ \[ERROR\] Unexpected end of file/)
  for (const name of ['api', 'api-v2', 'apix', 'index']) assert.match(result.stdout, new RegExp(`^built ${name} -> workers/${name}/bin/[0-9a-f]{12}/main\\.mjs in `, 'm'))
  const manifest = JSON.parse(await readFile(join(root, 'workers', 'api', 'bin', 'current.json'), 'utf8')) as { id: string, file: string, mode: string }
  assert.equal(manifest.mode, 'prod')
  const bundle = await readFile(join(root, 'workers', 'api', 'bin', manifest.file), 'utf8')
  assert.ok(bundle.split('\n').length < 10, 'the production bundle is minified')

  const one = await runCliToEnd(t, ['build', 'apix'], { cwd: root })
  assert.deepEqual([one.code, one.stdout.split('\n').filter(Boolean).length], [0, 1])
  const unknown = await runCliToEnd(t, ['build', 'nope'], { cwd: root })
  assert.deepEqual([unknown.code, unknown.stderr], [1, 'tqserver: no worker named nope [TQ_ERR_WORKER_NOT_FOUND]\n'])
})

test('start runs the existing build, building only what is missing', async (t) => {
  const root = await useProject(t, 'plain')
  assert.equal((await runCliToEnd(t, ['build'], { cwd: root })).code, 0)
  const source = join(root, 'workers', 'hello', 'src', 'main.ts')
  await writeFile(source, (await readFile(source, 'utf8')).replace('plain: true', 'plain: "edited but not built"'))
  await writeFiles(root, { 'workers/second/src/main.ts': await readFile(source, 'utf8') })
  const server = await startCliServer(t, 'start', root, PORTS.cliCommands)
  const fetch = clientFor(t, server.url)
  assert.deepEqual(server.logs.lines.filter((line) => line.msg === 'no production build: building').map((line) => [line.worker, line.reason]),
    [['second', 'no usable bin/current.json']], 'only the worker without a build is built, and the log says why')
  assert.equal((await (await fetch('/hello/')).body.json() as { plain: unknown }).plain, true, 'hello runs its earlier build')
  assert.equal((await (await fetch('/second/')).body.json() as { plain: unknown }).plain, 'edited but not built', 'second had no build, so it was built')
})

test('new scaffolds a worker that start then serves; an existing or invalid name is refused', async (t) => {
  const root = await useProject(t, undefined, { 'workers/.keep': '' })
  const created = await runCliToEnd(t, ['new', 'hello'], { cwd: root })
  assert.deepEqual([created.code, created.stdout], [0, 'created workers/hello: edit src/main.ts; it is served at /hello\n'])
  const again = await runCliToEnd(t, ['new', 'hello'], { cwd: root })
  assert.deepEqual([again.code, again.stderr], [1, 'tqserver: workers/hello already exists [TQ_ERR_CLI_WORKER_EXISTS]\n'])
  const invalid = await runCliToEnd(t, ['new', 'Hello World'], { cwd: root })
  assert.equal(invalid.code, 1)
  assert.match(invalid.stderr, /\[TQ_ERR_CLI_INVALID_NAME\]/)
  const reserved = await runCliToEnd(t, ['new', 'health'], { cwd: root })
  assert.deepEqual([reserved.code, reserved.stderr], [1, 'tqserver: no worker can be called "health": the server answers /health itself [TQ_ERR_CLI_RESERVED_NAME]\n'])
  assert.equal(existsSync(join(root, 'workers', 'health')), false, 'nothing is written')

  const page = await runCliToEnd(t, ['new', 'page', '--template', 'html'], { cwd: root })
  assert.deepEqual([page.code, page.stdout], [0, 'created workers/page: edit src/main.ts; it is served at /page\n'])
  const unknown = await runCliToEnd(t, ['new', 'other', '--template', 'vue'], { cwd: root })
  assert.deepEqual([unknown.code, unknown.stderr], [2, 'tqserver: --template must be one of api, html (got "vue") (see tqserver --help) [TQ_ERR_CLI_USAGE]\n'])

  const server = await startCliServer(t, 'start', root, PORTS.cliCommands)
  const fetch = clientFor(t, server.url)
  assert.deepEqual(await (await fetch('/hello/hello?name=tq')).body.json(), { hello: 'tq' })
  assert.equal((await fetch('/hello/hello?name=')).statusCode, 400, 'the api template validates its query')
  const html = await fetch('/page/?name=%3Cb%3E')
  assert.match(String(html.headers['content-type']), /^text\/html/)
  const body = await html.body.text()
  assert.match(body, /<h1>Hello, &#60;b&#62;<\/h1>/, 'the html template escapes what it echoes')
  assert.match(body, /href="\/page\/style\.css"/)
  const css = await fetch('/page/style.css')
  assert.deepEqual([css.statusCode, String(css.headers['content-type'])], [200, 'text/css; charset=utf-8'])
  await css.body.dump()

  // status: the running server's /health as a table, one row per instance.
  const status = await runCliToEnd(t, ['status'], { cwd: root })
  assert.equal(status.code, 0)
  const lines = status.stdout.split('\n')
  assert.equal(lines[0], `tqserver at ${server.url}: healthy, 2 of 100 worker ports leased`)
  assert.match(lines[2]!, /^WORKER +ROUTE +STATUS +STATE +PID +PORT +UPTIME +RSS +CPU +REQS +ERRS +P99 +RESTARTS +BUILD$/)
  const health = await (await fetch('/health')).body.json() as { workers: Record<string, { instances: Array<{ pid: number, port: number }> }> }
  for (const [name, route] of [['hello', '/hello'], ['page', '/page']] as const) {
    const { pid, port } = health.workers[name]!.instances[0]!
    assert.ok(lines.some((line) => new RegExp(`^${name} +${route} +healthy +HEALTHY +${pid} +${port} +\\d+s +(\\d+MB|-) .* [0-9a-f]{12} prod$`).test(line)), `a row for ${name}, with its production build`)
  }
  const json = await runCliToEnd(t, ['status', '--json'], { cwd: root })
  const report = JSON.parse(json.stdout) as { status: string, dataPlanes?: Array<{ pid: number }> }
  assert.equal(report.status, 'healthy')
  // With several processes serving the port (proxies: auto on a machine of several cores), a line names them.
  if (report.dataPlanes) assert.match(status.stdout, new RegExp(`\nserved by ${report.dataPlanes.length} processes: ${server.child.pid} \\(control plane, \\d+ requests`))
})

test('status and reload say so when no server runs in the root', async (t) => {
  const root = await useProject(t, undefined, { 'workers/.keep': '' })
  for (const command of ['status', 'reload']) {
    const result = await runCliToEnd(t, [command], { cwd: root })
    assert.equal(result.code, 1)
    assert.match(result.stderr, /^tqserver: no tqserver runs in .* \(no \.tqserver\/servers\/<port>\.json names a running process; or pass --url\) \[TQ_ERR_CLI_NOT_RUNNING\]\n$/)
  }
})
