// Builds workers with esbuild into workers/<name>/bin/<build id>/ and records the current build of
// each mode in its own pointer file. Every build gets its own folder, named by the hash of its
// output, and a pointer is replaced by rename: a running worker (or its restart after a crash) never
// loses its code to a later build, failed or not, and a reader never sees half a build. Production
// and dev builds differ (minified, dependencies bundled), and a dev server may run beside a
// production one in the same root: neither may serve, or delete, the other's current build.
//
//   bin/current.json      production: {"id": "3f2a…", "file": "main.mjs", "mode": "prod", ...}
//   bin/dev.json          dev:        {"id": "9c1b…", "file": "main.mjs", "mode": "dev", ...}
//   bin/3f2a…/main.mjs    a bundle (+ main.mjs.map)
//   bin/3f2a…/build.json  {"id": "3f2a…", "mode": "prod"}: pruning keeps to builds of its own mode
import { spawn, type ChildProcess } from 'node:child_process'
import { createHash } from 'node:crypto'
import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises'
import { basename, join, relative, resolve } from 'node:path'
import * as esbuild from 'esbuild'
import type { Logger } from '../logger.js'
import type { WorkerSpec } from '../config/worker-discovery.js'
import { TQ_ERR_BUILD_FAILED } from '../errors.js'

export type BuildMode = 'dev' | 'prod'

export interface BuildResult {
  id: string
  mode: BuildMode
  /** Absolute path of the file to run. */
  file: string
  builtAt: number
  durationMs: number
  /** Source files that went into the build (for the watcher). */
  inputs: string[]
}

/** Where a build error points, for the log, /health and the browser. */
export interface BuildErrorLocation { file: string, line: number, column: number, text: string }

const OUT_FILE = 'main.mjs'
const FOLDER_MANIFEST = 'build.json'
/** The file in bin/ naming each mode's current build; deploy tooling knows current.json. */
export const BUILD_POINTERS: Readonly<Record<BuildMode, string>> = { prod: 'current.json', dev: 'dev.json' }
const KEEP_BUILDS = 3
/** Bundled CommonJS code calls require(); ESM output has none unless we make one. */
const REQUIRE_SHIM = "import { createRequire as __tqCreateRequire } from 'node:module'; const require = __tqCreateRequire(import.meta.url);"

let tmpCounter = 0

export class Builder {
  readonly #mode: BuildMode
  readonly #log: Logger
  /** Per worker: its incremental context (dev), and the settings it was made with. */
  readonly #contexts = new Map<string, { settings: string, context: esbuild.BuildContext<{ write: false, metafile: true }> }>()
  /** `build:` commands of command workers, running now. */
  readonly #running = new Set<ChildProcess>()

  constructor (mode: BuildMode, log: Logger) {
    this.#mode = mode
    this.#log = log
  }

  /**
   * Builds a worker and makes it current. Throws TQ_ERR_BUILD_FAILED (with `locations`) on error.
   * Older builds of this mode are removed, except the last few, those named in `inUse` (running
   * instances) and those a pointer names.
   */
  async build (spec: WorkerSpec, inUse: Iterable<string> = []): Promise<BuildResult> {
    if (spec.command !== undefined) return this.#buildCommand(spec)
    const started = performance.now()
    let result: esbuild.BuildResult<{ write: false, metafile: true }>
    try {
      result = await this.#run(spec)
    } catch (err) {
      throw await buildError(spec, err)
    }
    const outputs = result.outputFiles
    const id = createHash('sha256').update(outputs.map((file) => file.hash).join('|')).digest('hex').slice(0, 12)
    const binDir = join(spec.dir, 'bin')
    const dir = join(binDir, id)
    if (!await exists(dir)) {
      const tmp = join(binDir, `.tmp-${process.pid}-${++tmpCounter}`)
      try {
        await mkdir(tmp, { recursive: true })
        await Promise.all([
          ...outputs.map((file) => writeFile(join(tmp, basename(file.path)), file.contents)),
          writeFile(join(tmp, FOLDER_MANIFEST), JSON.stringify({ id, mode: this.#mode }))
        ])
        await rename(tmp, dir)
      } catch (err) {
        // A full disk: what was written would only fill it further.
        await rm(tmp, { recursive: true, force: true })
        // Another server in this root wrote the same build (same id, same files) meanwhile.
        const code = (err as NodeJS.ErrnoException).code
        if (!((code === 'ENOTEMPTY' || code === 'EEXIST') && await exists(join(dir, FOLDER_MANIFEST)))) {
          throw new TQ_ERR_BUILD_FAILED(spec.name, `cannot write ${binDir}: ${(err as Error).message}`)
        }
      }
    }
    const build: BuildResult = {
      id,
      mode: this.#mode,
      file: join(dir, OUT_FILE),
      builtAt: Date.now(),
      durationMs: Math.round((performance.now() - started) * 10) / 10,
      inputs: Object.keys(result.metafile.inputs).map((input) => resolve(spec.dir, input))
    }
    await writeAtomically(join(binDir, BUILD_POINTERS[this.#mode]), JSON.stringify({ ...build, file: relative(binDir, build.file) }, null, 2))
    this.#log.debug({ worker: spec.name, id, mode: this.#mode, durationMs: build.durationMs }, 'worker built')
    await prune(binDir, this.#mode, new Set([id, ...inUse, ...await pointedIds(binDir)]))
    return build
  }

  /**
   * The build this mode's pointer names, if it and its file exist. In production every caller
   * builds a worker that has none, so the reason is logged here, once per worker and look-up.
   */
  async current (spec: WorkerSpec): Promise<BuildResult | undefined> {
    const pointer = join('bin', BUILD_POINTERS[this.#mode])
    const found = await readPointer(spec, pointer)
    // Before separate pointers, current.json could name a dev build: never serve one in production.
    const build = found?.mode === this.#mode ? found : undefined
    if (!build && this.#mode === 'prod') {
      const reason = found ? `${pointer} names a ${String(found.mode)} build` : `no usable ${pointer}`
      this.#log.info({ worker: spec.name, reason }, 'no production build: building')
    }
    return build
  }

  /** Frees the esbuild context kept for a worker (it was removed or its settings changed). */
  async forget (name: string): Promise<void> {
    const kept = this.#contexts.get(name)
    this.#contexts.delete(name)
    await kept?.context.dispose()
  }

  /** Stops every `build:` command still running (the server or the CLI is stopping): its build fails. */
  abort (): void {
    for (const child of this.#running) {
      try {
        process.kill(-child.pid!, 'SIGKILL')
      } catch {
        // Gone already.
      }
    }
  }

  /** Frees every esbuild context; the esbuild service would otherwise keep the process alive. */
  async dispose (): Promise<void> {
    await Promise.all([...this.#contexts.keys()].map((name) => this.forget(name)))
  }

  /**
   * A `command:` worker: runs its `build:` (if any) in its folder, then records a build whose id
   * is the hash of the folder's files (not public/, private/, bin/): what `command` will run.
   */
  async #buildCommand (spec: WorkerSpec): Promise<BuildResult> {
    const started = performance.now()
    if (spec.build) {
      const result = await runShell(spec.build, spec.dir, this.#running)
      if (result.code !== 0) throw new TQ_ERR_BUILD_FAILED(spec.name, `build command ${JSON.stringify(spec.build)} exited with code ${result.code}\n${result.output}`.trimEnd())
    }
    const files = await listFiles(spec.dir)
    const hash = createHash('sha256')
    for (const file of files) hash.update(file).update(await readFile(join(spec.dir, file)))
    const build: BuildResult = {
      id: hash.digest('hex').slice(0, 12),
      mode: this.#mode,
      file: '',
      builtAt: Date.now(),
      durationMs: Math.round((performance.now() - started) * 10) / 10,
      inputs: files.map((file) => join(spec.dir, file))
    }
    const binDir = join(spec.dir, 'bin')
    await mkdir(binDir, { recursive: true })
    await writeAtomically(join(binDir, BUILD_POINTERS[this.#mode]), JSON.stringify(build, null, 2))
    return build
  }

  async #run (spec: WorkerSpec) {
    const options = buildOptions(spec, this.#mode)
    if (this.#mode === 'prod') return esbuild.build(options)
    // Dev keeps one incremental context per worker: a rebuild after a save takes a few ms.
    const settings = JSON.stringify([spec.entry, spec.external])
    let kept = this.#contexts.get(spec.name)
    if (kept && kept.settings !== settings) {
      await this.forget(spec.name)
      kept = undefined
    }
    if (!kept) {
      kept = { settings, context: await esbuild.context(options) }
      this.#contexts.set(spec.name, kept)
    }
    return kept.context.rebuild()
  }
}

function buildOptions (spec: WorkerSpec, mode: BuildMode) {
  return {
    entryPoints: { main: spec.entry },
    // Written by us, not esbuild: into bin/<id>/. `_` stands in for <id> so that source map paths,
    // relative to the output folder, stay right after the rename.
    outdir: join(spec.dir, 'bin', '_'),
    outExtension: { '.js': '.mjs' },
    write: false as const,
    metafile: true as const,
    // Production bundles dependencies too: a bundled Fastify worker reaches GET /health 200 60-90 ms
    // sooner than one that loads fastify from node_modules (bench/worker-startup.ts). Dev leaves
    // node_modules out: a rebuild takes a few ms instead of ~250, and a warm standby process can
    // have fastify loaded before the worker's code arrives (src/process/standby-pool.ts).
    bundle: true,
    packages: mode === 'dev' ? 'external' as const : undefined,
    external: spec.external,
    platform: 'node' as const,
    format: 'esm' as const,
    target: 'node22',
    sourcemap: 'linked' as const,
    minify: mode === 'prod',
    banner: { js: REQUIRE_SHIM },
    absWorkingDir: spec.dir,
    logLevel: 'silent' as const
  } satisfies esbuild.BuildOptions
}

async function buildError (spec: WorkerSpec, err: unknown): Promise<Error> {
  const messages = (err as Partial<esbuild.BuildFailure>).errors
  if (!Array.isArray(messages)) return new TQ_ERR_BUILD_FAILED(spec.name, (err as Error).message)
  const text = (await esbuild.formatMessages(messages, { kind: 'error', color: false })).join('').trimEnd()
  const error = new TQ_ERR_BUILD_FAILED(spec.name, text)
  const locations: BuildErrorLocation[] = messages.map((message) => ({
    file: message.location?.file ?? '',
    line: message.location?.line ?? 0,
    column: message.location?.column ?? 0,
    text: message.text
  }))
  return Object.assign(error, { locations })
}

/** A pointer's build (`pointer` relative to the worker folder), if it and its file exist. */
async function readPointer (spec: WorkerSpec, pointer: string): Promise<BuildResult | undefined> {
  const manifest = await readJson<BuildResult>(join(spec.dir, pointer))
  if (!manifest) return undefined
  if (spec.command !== undefined) return manifest.file === '' ? manifest : undefined
  const file = join(spec.dir, 'bin', manifest.file)
  return await exists(file) ? { ...manifest, file } : undefined
}

/** The builds every mode's pointer names: a server of the other mode may be running them. */
async function pointedIds (binDir: string): Promise<string[]> {
  const manifests = await Promise.all(Object.values(BUILD_POINTERS).map((pointer) => readJson<BuildResult>(join(binDir, pointer))))
  return manifests.flatMap((manifest) => manifest ? [manifest.id] : [])
}

/**
 * Removes builds of `mode` but those kept and the newest others, up to KEEP_BUILDS in all. The
 * other mode's builds belong to the other mode's server (one may run in the same root); a folder
 * without build.json, from an older tqserver, counts as either mode's.
 */
async function prune (binDir: string, mode: BuildMode, keep: Set<string>): Promise<void> {
  const entries = (await readdir(binDir, { withFileTypes: true })).filter((entry) => entry.isDirectory() && !entry.name.startsWith('.'))
  const builds = await Promise.all(entries.map(async (entry) => {
    const dir = join(binDir, entry.name)
    const [manifest, info] = await Promise.all([readJson<{ mode: string }>(join(dir, FOLDER_MANIFEST)), stat(dir).catch(() => undefined)])
    return { name: entry.name, mode: manifest?.mode, mtime: info?.mtimeMs ?? 0 }
  }))
  // A folder gone meanwhile (no mtime) was pruned by the other mode's server.
  const ours = builds.filter((build) => build.mtime > 0 && (build.mode === mode || build.mode === undefined))
  const kept = ours.filter((build) => keep.has(build.name)).length
  const others = ours.filter((build) => !keep.has(build.name)).sort((a, b) => b.mtime - a.mtime)
  await Promise.all(others.slice(Math.max(0, KEEP_BUILDS - kept)).map((build) => rm(join(binDir, build.name), { recursive: true, force: true })))
}

/** A JSON file's content; undefined when it is missing or not JSON. */
async function readJson<T> (path: string): Promise<T | undefined> {
  try {
    return JSON.parse(await readFile(path, 'utf8')) as T
  } catch {
    return undefined
  }
}

/** Files of a worker folder that make up a `command:` worker, sorted, relative to the folder. */
async function listFiles (dir: string, prefix = ''): Promise<string[]> {
  const entries = await readdir(join(dir, prefix), { withFileTypes: true })
  const nested = await Promise.all(entries
    .filter((entry) => !entry.name.startsWith('.') && !(prefix === '' && ['bin', 'public', 'private', 'node_modules'].includes(entry.name)))
    .map(async (entry) => {
      const path = prefix === '' ? entry.name : `${prefix}/${entry.name}`
      if (entry.isDirectory()) return listFiles(dir, path)
      return entry.isFile() ? [path] : []
    }))
  return nested.flat().sort()
}

function runShell (command: string, cwd: string, running: Set<ChildProcess>): Promise<{ code: number | null, output: string }> {
  return new Promise((resolve) => {
    // A group of its own, so that abort() stops the shell and all it started.
    const child = spawn(command, { cwd, shell: true, stdio: ['ignore', 'pipe', 'pipe'], detached: true })
    running.add(child)
    child.once('exit', () => running.delete(child))
    let output = ''
    child.stdout.on('data', (chunk: Buffer) => { output += chunk.toString() })
    child.stderr.on('data', (chunk: Buffer) => { output += chunk.toString() })
    child.once('error', (err) => resolve({ code: null, output: err.message }))
    child.once('close', (code) => resolve({ code, output }))
  })
}

async function writeAtomically (path: string, data: string): Promise<void> {
  const tmp = `${path}.${process.pid}.${++tmpCounter}.tmp`
  try {
    await writeFile(tmp, data)
    await rename(tmp, path)
  } catch (err) {
    await rm(tmp, { force: true })
    throw err
  }
}

async function exists (path: string): Promise<boolean> {
  return stat(path).then(() => true, () => false)
}
