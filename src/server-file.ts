// .tqserver/server.json in the project root: which server runs there (pid, URL), so that
// `tqserver reload` can signal it and follow the reload. Written on listen, removed on close.
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'

export interface ServerFile {
  pid: number
  url: string
  mode: string
  startedAt: number
}

export function serverFilePath (root: string): string {
  return join(root, '.tqserver', 'server.json')
}

export async function writeServerFile (root: string, info: ServerFile): Promise<void> {
  const path = serverFilePath(root)
  await mkdir(join(root, '.tqserver'), { recursive: true })
  await writeFile(`${path}.tmp`, JSON.stringify(info, null, 2))
  await rename(`${path}.tmp`, path)
}

export async function readServerFile (root: string): Promise<ServerFile | undefined> {
  try {
    return JSON.parse(await readFile(serverFilePath(root), 'utf8')) as ServerFile
  } catch {
    return undefined
  }
}

/** Removes the file if it still names this process (another server may have taken the root since). */
export async function removeServerFile (root: string, pid: number): Promise<void> {
  if ((await readServerFile(root))?.pid === pid) await rm(serverFilePath(root), { force: true })
}
