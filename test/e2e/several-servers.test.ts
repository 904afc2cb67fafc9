// Several servers in one root (a dev server beside a production one): each has its own file in
// .tqserver/servers/, status and reload pick one by --url or --port and refuse to guess, a stopped
// or killed server's file does not hide the others; and reload --url reaches a server elsewhere
// over HTTP, which takes it only from its own machine or with its health token.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readdir, readFile, rename } from 'node:fs/promises'
import { join } from 'node:path'
import { runCliToEnd, startCliServer } from '../helpers/cli.js'
import { clientFor } from '../helpers/host.js'
import { PORTS } from '../helpers/ports.js'
import { useProject } from '../helpers/project.js'
import { waitForExit } from '../helpers/wait.js'

interface Health {
  lastReload: { trigger: string } | null
  workers: Record<string, { instances: Array<{ pid: number }> }>
}

test('several servers in one root', async (t) => {
  const root = await useProject(t, 'plain')
  const cli = (...args: string[]) => runCliToEnd(t, args, { cwd: root })
  assert.equal((await cli('build')).code, 0)
  const serve = async (workerPorts: string) => {
    const server = await startCliServer(t, 'start', root, workerPorts)
    const fetch = clientFor(t, server.url)
    const health = async () => await (await fetch('/health')).body.json() as Health
    return { ...server, pid: server.child.pid!, port: new URL(server.url).port, health }
  }
  const first = await serve(PORTS.severalServers)
  const second = await serve(PORTS.severalServersSecond)
  const serversDir = join(root, '.tqserver', 'servers')
  const files = async () => (await readdir(serversDir)).sort()

  await t.test('each server has its own file, named by its port', async () => {
    assert.deepEqual(await files(), [`${first.port}.json`, `${second.port}.json`].sort())
    for (const server of [first, second]) {
      const info = JSON.parse(await readFile(join(serversDir, `${server.port}.json`), 'utf8')) as { pid: number, url: string, mode: string }
      assert.deepEqual([info.pid, info.url, info.mode], [server.pid, server.url, 'prod'])
    }
  })

  await t.test('without --url, status and reload refuse and list both', async () => {
    for (const command of ['status', 'reload']) {
      const result = await cli(command)
      assert.equal(result.code, 2)
      assert.match(result.stderr, /^tqserver: 2 tqservers run in \S+: .*; choose one with --url URL or --port N \[TQ_ERR_CLI_SEVERAL_SERVERS\]\n$/)
      for (const server of [first, second]) assert.ok(result.stderr.includes(`${server.url} (pid ${server.pid}, prod)`), `${command} lists ${server.url}`)
    }
    assert.deepEqual([(await first.health()).lastReload, (await second.health()).lastReload], [null, null], 'neither was reloaded')
  })

  await t.test('with --url or --port, each is reached, and only it', async () => {
    const byUrl = await cli('reload', '--url', first.url)
    assert.equal(byUrl.code, 0, byUrl.stderr)
    assert.match(byUrl.stdout, /^reloaded in \d+ ms: unchanged hello\n$/)
    assert.equal((await first.health()).lastReload?.trigger, 'SIGHUP', 'a server of this root is signalled')
    assert.equal((await second.health()).lastReload, null)
    assert.equal((await cli('reload', '--port', second.port)).code, 0)
    assert.equal((await second.health()).lastReload?.trigger, 'SIGHUP')
    for (const [server, args] of [[second, ['--url', second.url]], [first, ['--port', first.port]]] as const) {
      const status = await cli('status', ...args)
      assert.equal(status.code, 0)
      assert.match(status.stdout, new RegExp(`^tqserver at ${server.url}: healthy`))
    }
    const nobody = await cli('reload', '--port', '1')
    assert.equal(nobody.code, 1)
    assert.match(nobody.stderr, /\(none on port 1; running: http:.*\) \[TQ_ERR_CLI_NOT_RUNNING\]\n$/)
  })

  await t.test('a server that stops removes its own file only; the one left needs no --url', async () => {
    second.child.kill('SIGTERM')
    assert.equal((await second.exited).code, 0)
    assert.deepEqual(await files(), [`${first.port}.json`])
    const result = await cli('reload')
    assert.match(result.stdout, /^reloaded in \d+ ms: unchanged hello\n$/)
  })

  await t.test('a killed server leaves a stale file, which is ignored and removed', async () => {
    const killed = await serve(PORTS.severalServersSecond)
    const workerPid = (await killed.health()).workers.hello!.instances[0]!.pid
    killed.child.kill('SIGKILL')
    await killed.exited
    await waitForExit(workerPid, 10_000)
    assert.ok((await files()).includes(`${killed.port}.json`), 'SIGKILL leaves the file')
    const result = await cli('reload')
    assert.match(result.stdout, /^reloaded in \d+ ms: unchanged hello\n$/)
    assert.deepEqual(await files(), [`${first.port}.json`], 'the stale file is gone')
  })

  await t.test('the single .tqserver/server.json of an older server is still read', async () => {
    await rename(join(serversDir, `${first.port}.json`), join(root, '.tqserver', 'server.json'))
    const status = await cli('status')
    assert.match(status.stdout, new RegExp(`^tqserver at ${first.url}: healthy`))
    await rename(join(root, '.tqserver', 'server.json'), join(serversDir, `${first.port}.json`))
  })
})

test('reload --url asks a server in another root over HTTP, from this machine or with the token only', async (t) => {
  const elsewhere = await useProject(t, 'plain', { 'config/server.yaml': 'health:\n  token: s3cret\n' })
  assert.equal((await runCliToEnd(t, ['build'], { cwd: elsewhere })).code, 0)
  const server = await startCliServer(t, 'start', elsewhere, PORTS.severalServers)
  const fetch = clientFor(t, server.url)
  const lastReload = async () => (await (await fetch('/health')).body.json() as Health).lastReload
  const here = await useProject(t, undefined, { 'workers/.keep': '' })

  const result = await runCliToEnd(t, ['reload', '--url', server.url], { cwd: here })
  assert.equal(result.code, 0, result.stderr)
  assert.match(result.stdout, /^reloaded in \d+ ms: unchanged hello\n$/)
  assert.equal((await lastReload())?.trigger, 'POST /__tqserver/reload')

  const post = async (headers: Record<string, string>) => {
    const res = await fetch('/__tqserver/reload', { method: 'POST', headers })
    await res.body.dump()
    return res.statusCode
  }
  const remote = { 'x-forwarded-for': '203.0.113.7' }
  assert.equal(await post(remote), 403, 'a client elsewhere without the token')
  assert.equal(await post({ origin: 'http://localhost:3000' }), 403, 'a page in a browser on this machine')
  assert.equal(await post({ ...remote, authorization: 'Bearer wrong' }), 403)
  assert.equal(await post({ ...remote, authorization: 'Bearer s3cret' }), 202, 'a client elsewhere with the token')
})
