// Finds the workers: every folder of workers/ with src/main.ts, or with the entry its worker.yaml
// names, or with a production build (bin/current.json, as deployed without sources). Reads and
// checks each worker.yaml and turns folder names into routes.
import { access, readdir } from 'node:fs/promises'
import { join, relative, resolve } from 'node:path'
import { timeoutNames, workerConfigSchema, type ServerConfig, type Timeouts, type WorkerConfig } from './schema.js'
import { validate } from './validate.js'
import { readYamlFile } from './yaml-file.js'
import {
  TQ_ERR_CONFIG_DUPLICATE_ROUTE, TQ_ERR_CONFIG_ENTRY_MISSING, TQ_ERR_CONFIG_INVALID_VALUE,
  TQ_ERR_CONFIG_RESERVED_ROUTE, TQ_ERR_CONFIG_WORKERS_DIR_MISSING
} from '../errors.js'
import { HOST_PREFIX, HOST_ROUTES } from '../url-paths.js'

/** What the server needs to know to build, start and route one worker. */
export interface WorkerSpec {
  name: string
  /** Absolute path of workers/<name>/. */
  dir: string
  /** URL prefix, '/' or '/segment[/segment...]'. */
  route: string
  enabled: boolean
  instances: number
  /** Absolute path of the source entry esbuild bundles (unused with `command`). */
  entry: string
  /** A worker that is not TypeScript: what to run instead of a bundle. */
  command: string | string[] | undefined
  /** Shell command that builds a `command` worker. */
  build: string | undefined
  /** What `tqserver deploy` copies besides the build, public/ and private/ (undefined: the default). */
  files?: string[]
  /** Replace an instance after this many requests (0: never). */
  maxRequests: number
  /** Replace an instance above this RSS, in MB (0: never). */
  maxMemoryMb: number
  /** Largest request body passed on, in bytes (0: no limit). */
  bodyLimit: number
  /** Packages esbuild leaves out of the bundle. */
  external: string[]
  env: Record<string, string>
  timeouts: Timeouts
  /** Absolute path of public/, served by the host. */
  publicDir: string
  /** worker.yaml, or the folder when it has none, as shown in messages. */
  source: string
}

const ROUTE_SEGMENT = /^[A-Za-z0-9._~!$&'()*+,;=:@-]+$/

export async function discoverWorkers (root: string, config: ServerConfig): Promise<WorkerSpec[]> {
  const workersDir = resolve(root, config.workersDir)
  let entries
  try {
    entries = await readdir(workersDir, { withFileTypes: true })
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new TQ_ERR_CONFIG_WORKERS_DIR_MISSING(workersDir)
    throw err
  }
  const folders = entries.filter((e) => e.isDirectory() && !e.name.startsWith('.') && e.name !== 'node_modules')
  const specs = (await Promise.all(folders.map((f) => readWorker(root, join(workersDir, f.name), f.name, config))))
    .filter((spec): spec is WorkerSpec => spec !== undefined)
    .sort((a, b) => a.name.localeCompare(b.name))
  checkRoutes(specs)
  return specs
}

/** Reads one worker folder; undefined when the folder holds no worker. */
export async function readWorker (root: string, dir: string, name: string, config: ServerConfig): Promise<WorkerSpec | undefined> {
  const yamlPath = join(dir, 'worker.yaml')
  const source = relative(root, yamlPath)
  const raw = await readYamlFile(yamlPath, source)
  const settings = validate<WorkerConfig>(workerConfigSchema, raw ?? {}, source, true)
  const entry = resolve(dir, settings.entry)
  // A deployed worker may come without its source: its build is enough to run it.
  if (settings.command === undefined && !await exists(entry) && !await exists(join(dir, 'bin', 'current.json'))) {
    if (raw === undefined) return undefined
    throw new TQ_ERR_CONFIG_ENTRY_MISSING(source, relative(root, entry))
  }
  const route = settings.path ?? defaultRoute(name, source)
  const where = raw === undefined ? `${relative(root, dir)}/` : source
  if (HOST_ROUTES.has(route) || route === HOST_PREFIX || route.startsWith(`${HOST_PREFIX}/`)) {
    throw new TQ_ERR_CONFIG_RESERVED_ROUTE(source, route)
  }
  const timeouts = Object.fromEntries(timeoutNames.map((key) => [key, settings[key] ?? config[key]])) as Timeouts
  return {
    name,
    dir,
    route,
    enabled: settings.enabled,
    instances: settings.instances,
    entry,
    command: settings.command,
    build: settings.build,
    files: settings.files,
    maxRequests: settings.maxRequests,
    maxMemoryMb: settings.maxMemoryMb,
    bodyLimit: settings.bodyLimit ?? config.bodyLimit,
    external: settings.external,
    env: Object.fromEntries(Object.entries(settings.env).map(([key, value]) => [key, String(value)])),
    timeouts,
    publicDir: join(dir, 'public'),
    source: where
  }
}

function defaultRoute (name: string, source: string): string {
  if (name === 'index') return '/'
  if (!ROUTE_SEGMENT.test(name)) {
    throw new TQ_ERR_CONFIG_INVALID_VALUE(source, 'path', `must be set: the folder name "${name}" is not usable as a URL path`)
  }
  return `/${name}`
}

/** Two enabled workers on one route are an error naming both files. */
export function checkRoutes (specs: WorkerSpec[]): void {
  const byRoute = new Map<string, WorkerSpec>()
  for (const spec of specs) {
    if (!spec.enabled) continue
    const other = byRoute.get(spec.route)
    if (other) throw new TQ_ERR_CONFIG_DUPLICATE_ROUTE(spec.route, other.source, spec.source)
    byRoute.set(spec.route, spec)
  }
}

async function exists (path: string): Promise<boolean> {
  return access(path).then(() => true, () => false)
}
