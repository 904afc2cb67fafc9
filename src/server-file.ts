// .tqserver/servers/<port>.json in the project root: one file per server running there (pid, URL),
// so that `tqserver reload` and `status` can find it, signal it and follow the reload. Written on
// listen, removed on close by the server that wrote it. Keyed by port: it is what a user names
// (`--port 8081`), two live servers cannot share it, and a server restarted on its port replaces
// the file its killed predecessor left.
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'

export interface ServerFile {
  pid: number
  url: string
  mode: string
  startedAt: number
}

/** A server file read back, with where it came from. */
export interface RunningServer extends ServerFile {
  /** The file, relative to the root (for messages). */
  file: string
  port: number
}

export const SERVERS_DIR = join('.tqserver', 'servers')
/** The single file of servers before one file per server: an older server still running writes it. */
const LEGACY_FILE = join('.tqserver', 'server.json')

export function serverFilePath (root: string, port: number): string {
  return join(root, SERVERS_DIR, `${port}.json`)
}

export async function writeServerFile (root: string, port: number, info: ServerFile): Promise<void> {
  const path = serverFilePath(root, port)
  await mkdir(join(root, SERVERS_DIR), { recursive: true })
  await writeFile(`${path}.tmp`, JSON.stringify(info, null, 2))
  await rename(`${path}.tmp`, path)
}

/** Removes the file if it still names this process (another server may have taken the port since). */
export async function removeServerFile (root: string, port: number, pid: number): Promise<void> {
  await removeIfNames(join(root, SERVERS_DIR, `${port}.json`), pid)
}

/**
 * The servers running in `root`, by port. A file whose process has exited (a server killed with
 * SIGKILL leaves its file) is stale: it is left out, and removed.
 */
export async function runningServers (root: string): Promise<RunningServer[]> {
  let names: string[] = []
  try {
    names = (await readdir(join(root, SERVERS_DIR))).filter((name) => /^[0-9]+\.json$/.test(name))
  } catch {}
  const files = [...names.map((name) => join(SERVERS_DIR, name)), LEGACY_FILE]
  const found = await Promise.all(files.map(async (file) => {
    const info = await readJson(join(root, file))
    if (info === undefined) return undefined
    if (!isAlive(info.pid)) {
      await removeIfNames(join(root, file), info.pid).catch(() => {})
      return undefined
    }
    return { ...info, file, port: portOf(info.url) }
  }))
  return found.filter((server) => server !== undefined).sort((a, b) => a.port - b.port)
}

/** The port of a server's URL (http: only, as the server listens). */
export function portOf (url: string): number {
  return Number(new URL(url).port || 80)
}

async function readJson (path: string): Promise<ServerFile | undefined> {
  try {
    const info = JSON.parse(await readFile(path, 'utf8')) as ServerFile
    return Number.isInteger(info.pid) && typeof info.url === 'string' && URL.canParse(info.url) ? info : undefined
  } catch {
    return undefined
  }
}

async function removeIfNames (path: string, pid: number): Promise<void> {
  if ((await readJson(path))?.pid === pid) await rm(path, { force: true })
}

/** Signal 0 checks that the process exists; EPERM means it does, under another user. */
function isAlive (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}
