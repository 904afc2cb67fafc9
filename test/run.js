#!/usr/bin/env node
// Runs the compiled test files (dist/test/**/*.test.js) with node:test, listed here rather than
// globbed by node so that arguments narrow the run by path: `npm test -- unit proxy`.
import { spawnSync } from 'node:child_process'
import { readdirSync } from 'node:fs'
import { join, relative, sep } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))
const dist = join(root, 'dist', 'test')
const filters = process.argv.slice(2)

function* testFiles (dir) {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name)
    if (entry.isDirectory()) yield * testFiles(path)
    else if (entry.name.endsWith('.test.js')) yield path
  }
}

// test/docker/ needs a Docker engine and minutes to build an image: `npm run test:docker` runs it.
const files = [...testFiles(dist)]
  .filter((file) => relative(dist, file).split(sep)[0] !== 'docker')
  .filter((file) => filters.length === 0 || filters.some((filter) => relative(dist, file).includes(filter)))
  .sort()
if (files.length === 0) {
  console.error(`no test file matches ${filters.join(' ')}`)
  process.exit(1)
}
// Two files at a time on this 2-core machine; each file owns its worker port range (test/helpers/ports.ts).
const result = spawnSync(process.execPath, ['--test', '--test-concurrency=2', '--test-timeout=120000', ...files], { stdio: 'inherit', cwd: root })
process.exit(result.status ?? 1)
