// A throw-away project for one test: a fixture's files copied to a temp folder, with
// node_modules/tqserver pointing at this repository (as after `npm install tqserver`).
import { cp, mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { TestContext } from 'node:test'
import { defer } from './cleanup.js'

export const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url))
export const FIXTURES = join(REPO_ROOT, 'test', 'fixtures')

/**
 * Copies test/fixtures/<fixture> (and `files`, path -> content) into a new temp project root.
 * `packages` are linked from this repository's node_modules, for workers that import them.
 */
export async function useProject (t: TestContext, fixture: string | undefined, files: Record<string, string> = {}, packages: string[] = []): Promise<string> {
  const root = await mkdtemp(join(tmpdir(), `tq-${fixture ?? 'empty'}-`))
  defer(t, () => rm(root, { recursive: true, force: true }))
  if (fixture) await cp(join(FIXTURES, fixture), root, { recursive: true, filter: (source) => !source.includes('/bin') })
  await mkdir(join(root, 'node_modules'), { recursive: true })
  await symlink(REPO_ROOT, join(root, 'node_modules', 'tqserver'), 'dir')
  for (const name of packages) await symlink(join(REPO_ROOT, 'node_modules', name), join(root, 'node_modules', name), 'dir')
  await writeFiles(root, files)
  return root
}

export async function writeFiles (root: string, files: Record<string, string>): Promise<void> {
  for (const [path, content] of Object.entries(files)) {
    await mkdir(dirname(join(root, path)), { recursive: true })
    await writeFile(join(root, path), content)
  }
}
