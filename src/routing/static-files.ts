// The files in one worker's public/ folder, known in memory so that the host answers a request for
// one without asking the disk (and without waking the worker). Only files found by the scan are
// served: a path that escapes public/ or names a dotfile is never in the set, nor is a symlink
// to a file outside public/.
import { readdir, realpath, stat } from 'node:fs/promises'
import { join, sep } from 'node:path'

export class StaticFiles {
  readonly dir: string
  #files = new Set<string>()

  constructor (dir: string) {
    this.dir = dir
  }

  /** Rescans the folder (a missing folder holds no files). */
  async refresh (): Promise<void> {
    const files = new Set<string>()
    // public/ may itself be a link (a deploy's shared folder): what counts is where it leads.
    const root = await realpath(this.dir).catch(() => this.dir)
    await walk(this.dir, '', files, root + sep)
    this.#files = files
  }

  /** Whether `path` (as in the URL, percent-encoded, after the route prefix) names a file here. */
  has (path: string): boolean {
    if (this.#files.size === 0) return false
    try {
      return this.#files.has(decodeURIComponent(path))
    } catch {
      return false
    }
  }
}

async function walk (dir: string, prefix: string, files: Set<string>, inside: string): Promise<void> {
  let entries
  try {
    entries = await readdir(dir, { withFileTypes: true })
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ENOTDIR') return
    throw err
  }
  await Promise.all(entries.map(async (entry) => {
    if (entry.name.startsWith('.')) return
    const urlPath = `${prefix}/${entry.name}`
    if (entry.isDirectory()) return walk(join(dir, entry.name), urlPath, files, inside)
    // A symlink counts when it points at a file inside public/; linked folders are not followed (no loops).
    if (entry.isFile() || (entry.isSymbolicLink() && await isFileInside(join(dir, entry.name), inside))) files.add(urlPath)
  }))
}

async function isFileInside (link: string, inside: string): Promise<boolean> {
  const target = await realpath(link).catch(() => undefined)
  return target !== undefined && target.startsWith(inside) && (await stat(target).catch(() => undefined))?.isFile() === true
}
