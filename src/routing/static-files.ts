// The files in one worker's public/ folder, known in memory so that the host answers a request for
// one without asking the disk (and without waking the worker). Only files found by the scan are
// served: a path that escapes public/ or names a dotfile is never in the set, nor is a symlink
// to a file outside public/.
import { readdir, realpath, stat } from 'node:fs/promises'
import { join, sep } from 'node:path'

/** What a data plane needs to serve the same files: the scan's result, not the scan. */
export interface StaticFilesSnapshot {
  dir: string
  inside: string
  files: string[]
}

export class StaticFiles {
  readonly dir: string
  #files = new Set<string>()
  /** public/'s real path, with a trailing separator. */
  #inside = ''
  /** Called after each rescan (the route table tells the data planes). */
  onRefresh: (() => void) | undefined

  constructor (dir: string) {
    this.dir = dir
  }

  /** The files a scan found elsewhere (in the control plane). */
  static restore (snapshot: StaticFilesSnapshot): StaticFiles {
    const files = new StaticFiles(snapshot.dir)
    files.#files = new Set(snapshot.files)
    files.#inside = snapshot.inside
    return files
  }

  snapshot (): StaticFilesSnapshot {
    return { dir: this.dir, inside: this.#inside, files: [...this.#files] }
  }

  /** Rescans the folder (a missing folder holds no files). */
  async refresh (): Promise<void> {
    const files = new Set<string>()
    // public/ may itself be a link (a deploy's shared folder): what counts is where it leads.
    const inside = await realpath(this.dir).catch(() => this.dir) + sep
    await walk(this.dir, '', files, inside)
    this.#files = files
    this.#inside = inside
    this.onRefresh?.()
  }

  /** public/'s real path: the root that `locate` paths are relative to. */
  get realRoot (): string {
    return this.#inside
  }

  /**
   * Where a listed file really is now, relative to `realRoot`; undefined when it leads outside
   * public/. The scan alone is not enough: in production its list is kept until a reload, and a
   * file may have been swapped for a link since.
   */
  async locate (path: string): Promise<string | undefined> {
    try {
      const real = await realpath(join(this.dir, decodeURIComponent(path)))
      return real.startsWith(this.#inside) ? real.slice(this.#inside.length - 1) : undefined
    } catch {
      return undefined
    }
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
