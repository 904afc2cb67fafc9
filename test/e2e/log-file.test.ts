// logFile: the server's log also goes to a file that is rotated by size and kept to `keep` files,
// files of an earlier run included, so that it never grows without bound; stdout keeps the log.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readdir, readFile, readlink } from 'node:fs/promises'
import { join } from 'node:path'
import { startCliServer } from '../helpers/cli.js'
import { clientFor } from '../helpers/host.js'
import { PORTS } from '../helpers/ports.js'
import { useProject } from '../helpers/project.js'
import { until } from '../helpers/wait.js'

const REQUESTS = 600

test('the log file rotates by size and keeps `keep` files', async (t) => {
  const root = await useProject(t, 'health', {
    'config/server.yaml': 'logFile:\n  path: logs/server\n  maxSize: 20k\n  keep: 3\n',
    'logs/server.7.log': 'a file of an earlier run\n'
  })
  const server = await startCliServer(t, 'start', root, PORTS.logFile)
  const fetch = clientFor(t, server.url)
  // steady prints a line per request, which the server logs with worker, pid and stream.
  for (let i = 0; i < REQUESTS; i++) await (await fetch(`/steady/page-${i}`)).body.dump()
  const last = `steady served GET /page-${REQUESTS - 1}`
  await server.logs.waitFor((line) => line.msg === last, 5000, 'the last line on stdout')

  const logs = join(root, 'logs')
  const current = async () => readFile(join(logs, await readlink(join(logs, 'current.log'))), 'utf8').catch(() => '')
  await until(5000, 'the last line in the current log file', async () => (await current()).includes(last))
  const files = (await readdir(logs)).filter((name) => /^server\.\d+\.log$/.test(name))
  assert.ok(!files.includes('server.7.log'), 'the earlier run\'s file was removed')
  assert.ok(files.length >= 2 && files.length <= 3, `rotated, and kept to 3 files (${files.join(', ')})`)
  assert.ok(files.every((name) => Number(name.split('.')[1]) > 7), 'numbering went on after the earlier run')
  const line = JSON.parse((await current()).trim().split('\n').find((text) => text.includes(last))!) as Record<string, unknown>
  assert.deepEqual([line.worker, line.stream, typeof line.pid], ['steady', 'stdout', 'number'])
})
