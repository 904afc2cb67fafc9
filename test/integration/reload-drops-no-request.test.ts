// The switch under load: 50 saves of a worker's source while keep-alive clients send GETs and
// POSTs. Not one request fails, and every save ends up serving.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { startHost } from '../helpers/host.js'
import { startLoad } from '../helpers/load.js'
import { PORTS } from '../helpers/ports.js'
import { useProject } from '../helpers/project.js'
import { defer } from '../helpers/cleanup.js'

const SAVES = 50

test(`${SAVES} saves under concurrent keep-alive GET and POST load: 0 failed requests, every save served`, async (t) => {
  const root = await useProject(t, 'versioned')
  const host = await startHost(t, { root, mode: 'dev', workerPorts: PORTS.reloadStorm, liveReload: false })
  const versionFile = join(root, 'workers', 'app', 'src', 'version.ts')
  const load = startLoad(host.url, '/app', 8)
  defer(t, () => load.stop())
  await load.reached(0, 5000)

  for (let version = 1; version <= SAVES; version++) {
    await writeFile(versionFile, `export const VERSION = ${version}\n`)
    await load.reached(version, 15_000).catch((err: Error) => {
      // Say what the server was doing when the save was not served.
      err.message += `\nlast log lines:\n${host.logs.lines.slice(-25).map((line) => JSON.stringify(line)).join('\n')}`
      throw err
    })
  }
  // The last old instance may still be draining when the new version answers.
  await host.app.tqserver.idle()
  const { ok, failures } = await load.stop()
  t.diagnostic(`${ok} requests answered during ${SAVES} switches`)
  assert.deepEqual(failures, [])
  assert.ok(ok > SAVES * 10, `load kept running (${ok} answers)`)
  // A save can be seen twice (a file read half-written, then whole): at least one switch each.
  const transitions = host.logs.transitions('app')
  const drained = transitions.filter((move) => move === 'HEALTHY>DRAINING').length
  assert.ok(drained >= SAVES, `${drained} switches`)
  assert.equal(transitions.filter((move) => move === 'DRAINING>STOPPED').length, drained, 'every old instance exited')
  assert.equal(host.logs.count((line) => line.msg === 'drain timed out; stopping with requests in flight'), 0)
})
