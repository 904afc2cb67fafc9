// What tqserver deploy copies, as rsync filter rules (first match wins). Each worker folder sends
// worker.yaml, bin/current.json and the build it names, public/ and private/; a `command:` worker
// also sends its `files:`, or by default everything but src/. Excluded names are not sent and not
// deleted there: the target's own .tqserver/, node_modules/, logs and dot-files stay.
import type { WorkerSpec } from '../config/worker-discovery.js'

export interface WorkerFolder {
  /** The folder's name in the workers folder. */
  name: string
  /** Undefined: the folder holds no worker, and is left alone. */
  spec: WorkerSpec | undefined
  /** The folder in bin/ of the build bin/current.json names (TypeScript workers). */
  buildDir: string | undefined
}

/** Never sent, and kept on the target: the server's state, installed packages, logs, dot-files. */
const KEPT = ['- .*', '- node_modules/', '- logs/', '- *.log']

/**
 * The rules of the copy: `top` are the root files and folders to send (package.json, config/...),
 * `workersDir` is relative to the root. A worker folder that only the target has is deleted
 * there (what KEPT names stays).
 */
export function copyRules (top: string[], workersDir: string, folders: WorkerFolder[]): string[] {
  const workers = `/${workersDir}`
  return [
    ...KEPT,
    // The list of every target stays with the project: a server has no use for it.
    '- /config/deployment.yaml',
    ...top.map((name) => `+ /${literal(name)}${name.endsWith('/') ? '***' : ''}`),
    ...parents(workersDir),
    `+ ${workers}/`,
    ...folders.flatMap((folder) => folder.spec ? workerRules(`${workers}/${literal(folder.name)}`, folder) : [`- ${workers}/${literal(folder.name)}/`]),
    `+ ${workers}/*/***`,
    '- *'
  ]
}

/**
 * The rules of the pass after a reload that deletes the builds no running instance uses any more:
 * only the bin/ folders of TypeScript workers are compared; other builds are hidden on this side
 * (H) and not protected there (R, else the final rule would protect them), so --delete removes them.
 */
export function pruneRules (workersDir: string, folders: WorkerFolder[]): string[] {
  const workers = `/${workersDir}`
  return [
    ...KEPT,
    ...parents(workersDir),
    `+ ${workers}/`,
    ...folders.flatMap((folder) => {
      if (!folder.spec || folder.buildDir === undefined) return []
      const dir = `${workers}/${literal(folder.name)}`
      return [`+ ${dir}/`, `+ ${dir}/bin/`, `+ ${dir}/bin/current.json`, `+ ${dir}/bin/${literal(folder.buildDir)}/***`, `H ${dir}/bin/**`, `R ${dir}/bin/**`]
    }),
    '- *'
  ]
}

function workerRules (dir: string, { spec, buildDir }: WorkerFolder): string[] {
  const rules = [
    `+ ${dir}/`, `+ ${dir}/worker.yaml`, `+ ${dir}/public/***`, `+ ${dir}/private/***`,
    `+ ${dir}/bin/`, `+ ${dir}/bin/current.json`,
    ...(buildDir === undefined ? [] : [`+ ${dir}/bin/${literal(buildDir)}/***`]),
    // Other builds (older ones, dev builds) are not sent; those there go after the reload.
    `- ${dir}/bin/*`
  ]
  if (spec!.files === undefined && spec!.command !== undefined) return [...rules, `- ${dir}/src/`, `+ ${dir}/***`]
  return [...rules, ...(spec!.files ?? []).flatMap((entry) => fileRules(dir, entry)), `- ${dir}/**`]
}

/** One `files:` entry: a path or an rsync pattern (* within a name, ** across folders), with the folders above it. */
function fileRules (dir: string, entry: string): string[] {
  const path = entry.replace(/^(\.\/)+/, '').replace(/\/+$/, '')
  return [...parents(path).map((rule) => rule.replace('+ /', `+ ${dir}/`)), `+ ${dir}/${path}`, `+ ${dir}/${path}/***`]
}

/** Include rules for each folder above `path` (a/b/c: /a/ and /a/b/), so rsync descends into them. */
function parents (path: string): string[] {
  const parts = path.split('/').slice(0, -1)
  return parts.map((_, i) => `+ /${parts.slice(0, i + 1).join('/')}/`)
}

/** A name as an rsync pattern matching only itself: with a wildcard character, backslashes escape. */
function literal (name: string): string {
  return /[*?[]/.test(name) ? name.replace(/[*?[\\]/g, '\\$&') : name
}
