// This package's own files, wherever it is installed (a clone, or a project's node_modules): its
// package.json, and the config/ and templates/ that init and new copy from.
import { readFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'

/** From dist/src/cli/ up to the package root. */
export const PACKAGE_ROOT = fileURLToPath(new URL('../../../', import.meta.url))

export async function ownVersion (): Promise<string> {
  const pkg = JSON.parse(await readFile(`${PACKAGE_ROOT}package.json`, 'utf8')) as { version: string }
  return pkg.version
}
