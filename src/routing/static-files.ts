// The files in one worker's public/ folder, known in memory so that the host answers a request for
// one without asking the disk (and without waking the worker). Only files found by the scan are
// served: a path that escapes public/ or names a dotfile is never in the set.
import { readdir, stat } from 'node:fs/promises'
import { join } from 'node:path'

export class StaticFiles {
  readonly dir: string
  #files = new Set<string>()

  constructor (dir: string) {
    this.dir = dir
  }

  /** Rescans the folder (a missing folder holds no files). */
  async refresh (): Promise<void> {
    const files = new Set<string>()
    await walk(this.dir, '', files)
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

async function walk (dir: string, prefix: string, files: Set<string>): Promise<void> {
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
    if (entry.isDirectory()) return walk(join(dir, entry.name), urlPath, files)
    // A symlink counts when it points at a file; linked folders are not followed (no loops).
    if (entry.isFile() || (entry.isSymbolicLink() && (await stat(join(dir, entry.name)).catch(() => undefined))?.isFile())) {
      files.add(urlPath)
    }
  }))
}
