// What the host serves from a worker's public/ folder, against a tester's tricks: a symlink to a
// file inside public/ is served, one to a file outside is not (the request goes to the worker, as
// for any other path); a public/ that is itself a link (a deploy's shared folder) is served.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { rm, symlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { startHost } from '../helpers/host.js'
import { PORTS } from '../helpers/ports.js'
import { useProject } from '../helpers/project.js'

test('symlinks in public/: inside is served by the host, outside is never served', async (t) => {
  const root = await useProject(t, 'plain', {
    'workers/hello/public/inside.txt': 'inside\n',
    'secret.txt': 'outside public/\n'
  })
  const pub = join(root, 'workers', 'hello', 'public')
  await symlink(join(pub, 'inside.txt'), join(pub, 'link-in.txt'))
  await symlink(join(root, 'secret.txt'), join(pub, 'link-out.txt'))
  await symlink('../../../secret.txt', join(pub, 'relative-out.txt'))
  await symlink('/etc/passwd', join(pub, 'passwd'))
  const host = await startHost(t, { root, workerPorts: PORTS.publicFiles })

  for (const path of ['/hello/inside.txt', '/hello/link-in.txt']) {
    const res = await host.fetch(path)
    assert.deepEqual([res.statusCode, await res.body.text()], [200, 'inside\n'], path)
  }
  for (const path of ['/hello/link-out.txt', '/hello/relative-out.txt', '/hello/passwd']) {
    const res = await host.fetch(path)
    const body = await res.body.json() as { plain?: boolean, url?: string }
    assert.deepEqual([res.statusCode, body.plain, body.url], [200, true, path.slice('/hello'.length)], `${path} goes to the worker, not to the file`)
  }
})

test('a public/ folder that is a link to a folder elsewhere is served', async (t) => {
  const root = await useProject(t, 'plain', { 'shared/public/app.css': 'body{}\n' })
  await rm(join(root, 'workers', 'hello', 'public'), { recursive: true, force: true })
  await symlink(join(root, 'shared', 'public'), join(root, 'workers', 'hello', 'public'))
  await writeFile(join(root, 'shared', 'public', 'other.css'), 'p{}\n')
  await symlink(join(root, 'shared', 'public', 'other.css'), join(root, 'shared', 'public', 'alias.css'))
  const host = await startHost(t, { root, workerPorts: PORTS.publicFiles })
  for (const [path, text] of [['/hello/app.css', 'body{}\n'], ['/hello/alias.css', 'p{}\n']]) {
    const res = await host.fetch(path!)
    assert.deepEqual([res.statusCode, await res.body.text()], [200, text], path)
  }
})

test('production: a listed file swapped for a link to outside is not served; a file added is served after a reload', async (t) => {
  const root = await useProject(t, 'plain', {
    'workers/hello/public/inside.txt': 'inside\n',
    'secret.txt': 'outside public/\n'
  })
  const pub = join(root, 'workers', 'hello', 'public')
  const host = await startHost(t, { root, workerPorts: PORTS.publicFiles })
  const text = async (path: string) => {
    const res = await host.fetch(path)
    return [res.statusCode, await res.body.text()] as const
  }
  assert.deepEqual(await text('/hello/inside.txt'), [200, 'inside\n'])

  // Swapped after the scan: the host looks where it leads before it serves it.
  await rm(join(pub, 'inside.txt'))
  await symlink(join(root, 'secret.txt'), join(pub, 'inside.txt'))
  const [status, body] = await text('/hello/inside.txt')
  assert.equal(status, 200)
  assert.equal((JSON.parse(body) as { plain?: boolean }).plain, true, 'the worker answers, not the file outside')

  await writeFile(join(pub, 'added.txt'), 'added\n')
  await host.app.tqserver.reload()
  assert.deepEqual(await text('/hello/added.txt'), [200, 'added\n'])
})
