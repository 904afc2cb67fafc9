// A worker that fails to build, crashes at boot or never becomes healthy is reported with the
// reason (its build error, or its last output lines), and the other workers keep serving.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { startHost } from '../helpers/host.js'
import { PORTS } from '../helpers/ports.js'
import { useProject } from '../helpers/project.js'

const healthy = `import { createServer } from 'node:http'
createServer((req, res) => res.end('ok')).listen(Number(process.env.PORT), process.env.HOST)
`

test('workers that fail to build or start', async (t) => {
  const root = await useProject(t, undefined, {
    'config/server.yaml': 'restartDelay: 1\ncrashLimit: 2\n',
    'workers/fine/src/main.ts': healthy,
    'workers/crash-on-boot/src/main.ts': "console.log('connecting to db:5432')\nconsole.error('Error: database db:5432 refused the connection')\nprocess.exit(3)\n",
    'workers/never-ready/src/main.ts': `import { createServer } from 'node:http'
createServer((req, res) => { res.statusCode = 500; res.end('still warming up') }).listen(Number(process.env.PORT), process.env.HOST)
`,
    'workers/never-ready/worker.yaml': 'startTimeout: 300\n',
    'workers/syntax-error/src/main.ts': 'const x = {\n  a: 1,,\n}\n'
  })
  const host = await startHost(t, { root, workerPorts: PORTS.startFailure })
  await host.logs.waitFor((line) => line.worker === 'crash-on-boot' && line.to === 'FAILED', 10_000, 'the crash loop to end in FAILED')
  await host.logs.waitFor((line) => line.worker === 'never-ready' && line.to === 'FAILED', 10_000, 'never-ready to end in FAILED')
  const report = host.app.tqserver.status()

  await t.test('a crash at boot is reported with its exit code and last output lines, then FAILED', () => {
    const worker = report.workers['crash-on-boot']!
    assert.equal(worker.status, 'unhealthy')
    assert.equal(worker.instances[0]!.state, 'FAILED')
    assert.match(worker.lastError!.message, /exited during start-up with code 3; its last output:\nconnecting to db:5432\nError: database db:5432 refused the connection/)
    const line = host.logs.lines.find((entry) => entry.worker === 'crash-on-boot' && entry.stream === 'stderr')
    assert.equal(line?.msg, 'Error: database db:5432 refused the connection')
    assert.equal(typeof line?.pid, 'number')
    assert.deepEqual(host.logs.transitions('crash-on-boot'),
      ['STOPPED>STARTING', 'STARTING>CRASHED', 'CRASHED>BACKOFF', 'BACKOFF>STARTING', 'STARTING>CRASHED', 'CRASHED>FAILED'])
  })

  await t.test('a worker that never answers /health 200 times out with the reason', () => {
    const worker = report.workers['never-ready']!
    assert.match(worker.lastError!.message, /did not answer GET \/health with 200 within 300 ms/)
  })

  await t.test('a build error is reported with file, line and column, and nothing is started', () => {
    const worker = report.workers['syntax-error']!
    assert.equal(worker.status, 'unhealthy')
    assert.deepEqual(worker.instances, [])
    const error = worker.lastBuild.error!
    assert.match(error.message, /worker syntax-error failed to build:\n✘ \[ERROR\] Expected identifier but found ","\n\n    src\/main.ts:2:7:/)
    assert.deepEqual(error.locations.map(({ file, line, column }) => ({ file, line, column })), [{ file: 'src/main.ts', line: 2, column: 7 }])
  })

  await t.test('the healthy worker serves, and the report says degraded', async () => {
    const res = await host.fetch('/fine')
    assert.equal(await res.body.text(), 'ok')
    assert.equal(report.status, 'degraded')
    const health = await host.fetch('/health')
    assert.equal(health.statusCode, 200)
    await health.body.dump()
  })
})
