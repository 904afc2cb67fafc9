// tqserver as users get it: the tarball `npm pack` makes of this repository, installed with npm into
// projects in a fresh temporary folder. The tarball sits beside the projects, so the relative
// `file:../tqserver-x.y.z.tgz` that npm writes into package.json and the lockfile resolves from any
// of them (a deploy target too).
import { execFile } from 'node:child_process'
import { mkdir, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import type { TestContext } from 'node:test'
import { defer } from './cleanup.js'
import { REPO_ROOT, writeFiles } from './project.js'

const run = promisify(execFile)
const NPM_QUIET = ['--no-audit', '--no-fund', '--prefer-offline', '--loglevel=error']

/** Runs npm in `cwd`; a failure throws with npm's own output. */
export async function npm (cwd: string, args: string[]): Promise<string> {
  try {
    const { stdout } = await run('npm', [...args], { cwd, env: { ...process.env, npm_config_update_notifier: 'false' }, maxBuffer: 16 << 20 })
    return stdout
  } catch (err) {
    const { stdout, stderr } = err as { stdout?: string, stderr?: string }
    throw new Error(`npm ${args.join(' ')} failed in ${cwd}:\n${stdout ?? ''}${stderr ?? ''}`)
  }
}

/**
 * A new folder holding the packed tarball; removed after the test. dist/ is already compiled by
 * `npm test`, so the pack skips prepack (which would compile it again).
 */
export async function usePackedFolder (t: TestContext): Promise<{ dir: string, tarball: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'tq-pack-'))
  defer(t, () => rm(dir, { recursive: true, force: true }))
  const [packed] = JSON.parse(await npm(REPO_ROOT, ['pack', '--ignore-scripts', '--json', '--pack-destination', dir])) as Array<{ filename: string }>
  return { dir, tarball: join(dir, packed!.filename) }
}

/** `dir/<name>`: `npm init -y`, then `npm install` of the tarball, then `files` (path -> content). */
export async function useInstalledProject (dir: string, tarball: string, name: string, files: Record<string, string> = {}): Promise<string> {
  const root = join(dir, name)
  await mkdir(root)
  await npm(root, ['init', '-y'])
  await npm(root, ['install', ...NPM_QUIET, tarball])
  await writeFiles(root, files)
  return root
}
