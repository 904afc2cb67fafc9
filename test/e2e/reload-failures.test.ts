// `tqserver reload` when things go wrong or overlap: a new version that fails to start is reported
// (exit 1) and the old one keeps serving; a FAILED worker is tried again; reloads asked for while
// one runs are served by one more reload, and the command that asked waits for that one.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { cp, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { runCli, runCliToEnd, startCliServer } from '../helpers/cli.js'
import { clientFor } from '../helpers/host.js'
import { startLoad } from '../helpers/load.js'
import type { LogLine } from '../helpers/logs.js'
import { PORTS } from '../helpers/ports.js'
import { FIXTURES, useProject } from '../helpers/project.js'
import { within } from '../helpers/wait.js'
import { defer } from '../helpers/cleanup.js'

type Context = Parameters<typeof useProject>[0]

/**
 * A worker that waits START_DELAY_MS before it listens (a reload that switches it takes that long)
 * and answers with LABEL from its environment.
 */
const SLOW_START = `import { createServer } from 'node:http'
const delay = Number(process.env.START_DELAY_MS ?? 0)
setTimeout(() => {
  createServer((req, res) => res.end(JSON.stringify({ pid: process.pid, label: process.env.LABEL ?? null })))
    .listen(Number(process.env.PORT), process.env.HOST, () => process.send?.({ type: 'ready' }))
}, delay)
`

/** The multi fixture (a, b, c), plus `files`, built and served by `tqserver start`. */
async function startProject (t: Context, files: Record<string, string> = {}) {
  const root = await useProject(t, 'multi', files)
  const cli = (...args: string[]) => runCliToEnd(t, args, { cwd: root })
  assert.equal((await cli('build')).code, 0)
  const server = await startCliServer(t, 'start', root, PORTS.reloadFailures)
  const fetch = clientFor(t, server.url)
  const answer = async (path: string) => {
    const res = await fetch(path)
    return { status: res.statusCode, body: await res.body.json() as { version?: number, pid: number, greeting?: string | null, label?: string | null } }
  }
  return { root, cli, server, answer }
}

const reloadsFinished = (line: LogLine) => line.msg === 'reload finished' || line.msg === 'reload refused: the configuration is invalid; the running one stays'

test('a new version that fails to start: `tqserver reload` exits 1 and says so, and the old version serves throughout', async (t) => {
  const { root, cli, server, answer } = await startProject(t)
  const before = await answer('/a/')
  await writeFile(join(root, 'workers', 'a', 'src', 'version.ts'), "export const VERSION = 2\nconsole.error('cannot reach the database')\nprocess.exit(3)\n")
  assert.equal((await cli('build', 'a')).code, 0)

  const load = startLoad(server.url, '/a', 4)
  defer(t, () => load.stop())
  await load.reached(1, 5000)
  const result = await cli('reload')
  const { failures, ok } = await load.stop()
  assert.equal(result.code, 1)
  assert.equal(result.stderr, 'tqserver: reload failed: a: the new version failed to start [TQ_ERR_CLI_RELOAD_FAILED]\n')
  assert.match(result.stdout, /^reloaded in \d+ ms: unchanged b, c\n$/)
  assert.deepEqual(failures, [], 'no request failed')
  assert.ok(ok > 0)
  assert.deepEqual(await answer('/a/'), before, 'the same process still serves version 1')
  const lastError = server.logs.lines.find((line) => line.worker === 'a' && line.msg === 'new instance failed to start; the running version keeps serving')
  assert.match(String((lastError?.err as { message?: string } | undefined)?.message), /exited during start-up with code 3; its last output:\ncannot reach the database/)
  assert.match((await cli('status')).stdout, /\na: worker a \(pid \d+\) exited during start-up with code 3; its last output:\n  cannot reach the database\n/, 'status shows the output')
})

test('a reload tries a FAILED worker again: exit 1 while it still crashes, switched once it starts', async (t) => {
  const { root, cli, server, answer } = await startProject(t, { 'config/server.yaml': 'restartDelay: 100\ncrashLimit: 2\n' })
  await cp(join(FIXTURES, 'crash-on-demand', 'workers', 'crashy'), join(root, 'workers', 'crashy'), { recursive: true })
  await writeFile(join(root, 'workers', 'crashy', 'worker.yaml'), 'env:\n  CRASH_MARKER: ../../crash-at-boot\n')
  await writeFile(join(root, 'crash-at-boot'), '')
  assert.equal((await cli('build', 'crashy')).code, 0)
  const isCrashy = (to: string) => (line: LogLine) => line.msg === 'worker state changed' && line.worker === 'crashy' && line.to === to
  assert.equal((await cli('reload')).code, 1)
  await server.logs.waitFor(isCrashy('FAILED'), 10_000, 'crashy to end in FAILED')

  // Nothing about the worker changed; the reload tries it anyway.
  const starts = server.logs.count(isCrashy('STARTING'))
  const failed = await cli('reload')
  assert.equal(failed.code, 1)
  assert.match(failed.stderr, /crashy: the new version failed to start; crashy has no healthy instance/)
  assert.ok(server.logs.count(isCrashy('STARTING')) > starts, 'crashy was started again')

  await rm(join(root, 'crash-at-boot'))
  const fixed = await cli('reload')
  assert.equal(fixed.code, 0, fixed.stderr)
  assert.match(fixed.stdout, /switched crashy; unchanged a, b, c/)
  assert.equal((await answer('/crashy/')).status, 200)
})

test('a `tqserver reload` asked for while another runs waits for the one more reload that serves it', async (t) => {
  const { root, cli, server, answer } = await startProject(t, { 'workers/slow/src/main.ts': SLOW_START })
  // The first reload switches slow, whose new instance takes 3 s to start.
  await writeFile(join(root, 'workers', 'slow', 'worker.yaml'), 'env:\n  START_DELAY_MS: "3000"\n')
  const first = runCli(t, ['reload'], { cwd: root })
  let firstOut = ''
  first.child.stdout!.on('data', (chunk: Buffer) => { firstOut += chunk.toString() })
  await server.logs.waitFor((line) => line.worker === 'slow' && line.to === 'STARTING' && String(line.reason).startsWith('reload'), 10_000, 'the first reload to start slow')

  // Made while the first reload runs, after it has read the configuration; the reload that
  // serves it takes a second too, so that the command cannot see it end by chance.
  await writeFile(join(root, 'workers', 'slow', 'worker.yaml'), 'env:\n  START_DELAY_MS: "1000"\n  LABEL: second\n')
  const second = await cli('reload')
  assert.equal(second.code, 0, second.stderr)
  assert.equal((await answer('/slow/')).body.label, 'second', `the change is served when the second command returns (it printed: ${second.stdout.trim()})`)

  assert.equal((await within(30_000, 'the first reload command to end', first.exited)).code, 0)
  assert.match(firstOut, /switched slow/)
  assert.equal(server.logs.count(reloadsFinished), 2)
})

test('SIGHUPs during a reload are served by exactly one more reload', async (t) => {
  const { root, cli, server, answer } = await startProject(t, { 'workers/slow/src/main.ts': SLOW_START })
  await writeFile(join(root, 'workers', 'slow', 'worker.yaml'), 'env:\n  START_DELAY_MS: "3000"\n')
  server.child.kill('SIGHUP')
  await server.logs.waitFor((line) => line.worker === 'slow' && line.to === 'STARTING' && String(line.reason).startsWith('reload'), 10_000, 'the first reload to start slow')
  await writeFile(join(root, 'workers', 'b', 'worker.yaml'), 'env:\n  GREETING: hello\n')
  for (let i = 0; i < 3; i++) server.child.kill('SIGHUP')

  await server.logs.waitForCount(reloadsFinished, 2, 30_000, 'the first reload and one more')
  const [firstReload, oneMore] = server.logs.lines.filter(reloadsFinished)
  assert.deepEqual([firstReload!.switched, oneMore!.switched], [['slow'], ['b']])
  assert.equal((await answer('/b/')).body.greeting, 'hello')
  // Reloads run one at a time: had the SIGHUPs queued more than one, they would run before this one.
  const last = await cli('reload')
  assert.match(last.stdout, /unchanged a, b, c, slow/)
  assert.equal(server.logs.count(reloadsFinished), 3)
})
