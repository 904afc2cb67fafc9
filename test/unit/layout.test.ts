// The layout README.md describes: src/ in folders that depend only on the folders below them, no
// import cycle (type imports included), only the worker SDK imports fastify in src/, files of a
// readable size, and no dependency that nothing uses.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readdirSync, readFileSync } from 'node:fs'
import { dirname, join, posix } from 'node:path'
import { REPO_ROOT } from '../helpers/project.js'

/** Lowest first: a file may import from its own folder and from folders before its own. */
const LAYERS = ['src', 'config', 'tls', 'build', 'process', 'routing', 'report', 'supervision', 'reload', 'proxy', 'plugins', 'cli']
/** Code that runs inside worker processes: it imports only the shared files at the top of src/. */
const WORKER_FOLDER = 'worker'
const MAX_LINES = 400
const MAX_TOP_FILES = 8

function sourceFiles (dir: string): string[] {
  return readdirSync(join(REPO_ROOT, dir), { withFileTypes: true }).flatMap((entry) => {
    const path = posix.join(dir, entry.name)
    if (entry.isDirectory()) return sourceFiles(path)
    return entry.name.endsWith('.ts') ? [path] : []
  })
}

const files = [...sourceFiles('src'), ...sourceFiles('plugins')]
const text = new Map(files.map((file) => [file, readFileSync(join(REPO_ROOT, file), 'utf8')]))

/** Every module a file names in an import or export, static or dynamic. */
function specifiers (source: string): string[] {
  return [...source.matchAll(/(?:\bfrom\s+|\bimport\s*\(\s*|^import\s+)'([^']+)'/gm)].map((match) => match[1]!)
}

/** The repository files a file imports (relative specifiers, .js resolved to the .ts source). */
function localImports (file: string): string[] {
  return specifiers(text.get(file)!)
    .filter((specifier) => specifier.startsWith('.'))
    .map((specifier) => posix.join(posix.dirname(file), specifier).replace(/\.js$/, '.ts'))
}

/** 'plugins', 'src' for the shared files at the top of src/, or the folder under src/. */
function folderOf (file: string): string {
  const parts = file.split('/')
  return parts[0] === 'src' && parts.length > 2 ? parts[1]! : parts[0]!
}

test('every folder imports only from itself and the folders below it', () => {
  const wrong: string[] = []
  for (const file of files) {
    const from = folderOf(file)
    for (const target of localImports(file)) {
      const to = folderOf(target)
      const allowed = from === WORKER_FOLDER
        ? to === WORKER_FOLDER || to === 'src'
        : to !== WORKER_FOLDER && LAYERS.indexOf(to) <= LAYERS.indexOf(from)
      assert.ok(LAYERS.includes(from) || from === WORKER_FOLDER, `${file}: its folder is not in the layer list`)
      if (!allowed) wrong.push(`${file} -> ${target}`)
    }
  }
  assert.deepEqual(wrong, [])
})

test('no import cycle, type imports included', () => {
  const done = new Set<string>()
  const path: string[] = []
  const visit = (file: string): void => {
    const at = path.indexOf(file)
    if (at !== -1) assert.fail(`import cycle: ${[...path.slice(at), file].join(' -> ')}`)
    if (done.has(file)) return
    path.push(file)
    for (const target of localImports(file)) if (text.has(target)) visit(target)
    path.pop()
    done.add(file)
  }
  for (const file of files) visit(file)
})

test('in src/ only the worker SDK imports fastify', () => {
  const importers = files.filter((file) => file.startsWith('src/') && specifiers(text.get(file)!).includes('fastify'))
  assert.deepEqual(importers.filter((file) => folderOf(file) !== WORKER_FOLDER), [])
})

test(`files stay under ${MAX_LINES} lines, and at most ${MAX_TOP_FILES} shared files sit at the top of src/`, () => {
  const long = files.filter((file) => text.get(file)!.split('\n').length > MAX_LINES)
  assert.deepEqual(long, [])
  const top = files.filter((file) => dirname(file) === 'src')
  assert.ok(top.length <= MAX_TOP_FILES, `src/ holds ${top.join(', ')}`)
})

test('every dependency in package.json is used by src/ or plugins/', () => {
  const pkg = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { dependencies: Record<string, string> }
  const all = [...text.values()].join('\n')
  // Imported, or named as a module to load (pino's transport targets).
  const unused = Object.keys(pkg.dependencies).filter((name) => !all.includes(`'${name}'`) && !all.includes(`'${name}/`))
  assert.deepEqual(unused, [])
})
