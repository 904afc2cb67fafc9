// What tqserver deploy copies, deletes and leaves alone on the target: per TypeScript worker its
// build and static folders, per command: worker all but src/ or its files:, never dot-files,
// node_modules or logs; a worker the project no longer has is deleted there. No server runs on
// the target, so the deploy ends with the reload failing, after the copy.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { access, readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { deploy } from '../helpers/deploy.js'
import { useProject, writeFiles } from '../helpers/project.js'

const exists = (path: string) => access(path).then(() => true, () => false)

test('deploy copies what each worker runs, deletes what the project dropped, and keeps what the target owns', async (t) => {
  const target = await useProject(t, undefined, {
    'node_modules/some-package/index.js': '',
    'logs/server.log': 'the target log\n',
    'workers/web/bin/previous/main.mjs': '// the build a running instance may still use\n',
    'workers/gone/worker.yaml': 'command: ./gone\n',
    'workers/gone/gone': '',
    'workers/py/old.py': '# removed from the project\n',
    'workers/py/.venv/bin/python': '',
    'workers/py/src/kept.py': '# src/ is not sent, so not deleted either\n',
    'workers/notes/keep.txt': 'not a worker in the project\n'
  })
  const source = await useProject(t, undefined, {
    'config/deployment.yaml': `targets:\n  here: ${target}\n`,
    'workers/web/src/main.ts': "import { createServer } from 'node:http'\ncreateServer((req, res) => res.end('web')).listen(Number(process.env.PORT))\n",
    'workers/web/public/site.css': 'body {}\n',
    'workers/web/private/data.txt': 'data\n',
    'workers/web/bin/dev-build/main.mjs': '// a dev build: not current, not sent\n',
    'workers/web/notes.md': 'a TypeScript worker ships its build, not its folder\n',
    'workers/go/worker.yaml': "command: ./server\nfiles: [server, 'templates/*.html']\n",
    'workers/go/server': '#!/bin/sh\n',
    'workers/go/main.go': 'package main\n',
    'workers/go/templates/page.html': '<p>page</p>\n',
    'workers/go/templates/draft.txt': 'not named in files:\n',
    'workers/py/worker.yaml': 'command: python3 app.py\n',
    'workers/py/app.py': 'print("app")\n',
    'workers/py/lib/util.py': '# a module beside the program\n',
    'workers/py/src/build.py': '# sources are not sent\n',
    'workers/py/.env': 'SECRET=from the developer machine\n',
    'workers/py/node_modules/dep/index.js': '',
    'workers/py/debug.log': '',
    'workers/notes/readme.txt': 'a folder with no worker\n',
    'workers/off/worker.yaml': 'enabled: false\n',
    'workers/off/src/main.ts': 'export {}\n'
  })

  const result = await deploy(t, source, 'here')
  assert.equal(result.code, 1, result.output)
  assert.match(result.output, /TQ_ERR_DEPLOY_RELOAD_FAILED/, 'copied, then the reload found no server')
  assert.doesNotMatch(result.output, /installing packages/, 'a project without package.json installs nothing')

  const files = async (dir: string): Promise<string[]> => (await readdir(join(target, dir), { recursive: true, withFileTypes: true }))
    .filter((entry) => entry.isFile())
    .map((entry) => join(entry.parentPath, entry.name).slice(target.length + 1))
    .sort()
  const web = await files('workers/web')
  const build = web.find((path) => /^workers\/web\/bin\/[0-9a-f]{12}\/main\.mjs$/.test(path))
  assert.ok(build, `the current build (${web.join(', ')})`)
  const buildDir = build.slice(0, -'main.mjs'.length)
  assert.deepEqual(web.filter((path) => !path.startsWith(buildDir)), [
    'workers/web/bin/current.json', 'workers/web/bin/previous/main.mjs', 'workers/web/private/data.txt', 'workers/web/public/site.css'
  ])
  assert.deepEqual(await files('workers/go'), ['workers/go/bin/current.json', 'workers/go/server', 'workers/go/templates/page.html', 'workers/go/worker.yaml'])
  assert.deepEqual(await files('workers/py'), [
    'workers/py/.venv/bin/python', 'workers/py/app.py', 'workers/py/bin/current.json', 'workers/py/lib/util.py', 'workers/py/src/kept.py', 'workers/py/worker.yaml'
  ])
  assert.deepEqual(await files('workers/notes'), ['workers/notes/keep.txt'])
  assert.deepEqual(await files('workers/off'), ['workers/off/worker.yaml'], 'a disabled worker is not built, and ships its settings')
  assert.doesNotMatch(result.output, /no production build/)
  assert.equal(await exists(join(target, 'workers', 'gone')), false, 'a worker the project dropped')
  assert.ok(await exists(join(target, 'logs', 'server.log')))
  assert.ok(await exists(join(target, 'node_modules', 'some-package', 'index.js')))
  assert.equal(await exists(join(target, 'config', 'deployment.yaml')), false, 'the list of targets stays with the project')

  // files: stays inside the worker folder.
  await writeFiles(source, { 'workers/go/worker.yaml': 'command: ./server\nfiles: [../../config]\n' })
  const outside = await deploy(t, source, 'here')
  assert.equal(outside.code, 1)
  assert.match(outside.output, /workers\/go\/worker\.yaml: key "files\.0" must list paths or globs inside the worker folder \(no leading \/, no \.\.\) \(got "\.\.\/\.\.\/config"\) \[TQ_ERR_CONFIG_INVALID_VALUE\]/)
})
