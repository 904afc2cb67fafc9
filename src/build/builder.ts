// Builds workers with esbuild into workers/<name>/bin/<build id>/ and records the current build in
// bin/current.json. Every build gets its own folder, named by the hash of its output, and
// current.json is replaced by rename: a running worker (or its restart after a crash) never loses
// its code to a later build, failed or not, and a reader never sees half a build.
//
//   bin/current.json      {"id": "3f2a…", "file": "main.mjs", ...}
//   bin/3f2a…/main.mjs    the bundle (+ main.mjs.map)
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
const MANIFEST = 'current.json'
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
   * Older builds are removed, except the last few and those named in `inUse` (running instances).
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
        await Promise.all(outputs.map((file) => writeFile(join(tmp, basename(file.path)), file.contents)))
        await rename(tmp, dir)
      } catch (err) {
        // A full disk: what was written would only fill it further.
        await rm(tmp, { recursive: true, force: true })
        throw new TQ_ERR_BUILD_FAILED(spec.name, `cannot write ${binDir}: ${(err as Error).message}`)
      }
    }
    const build: BuildResult = {
      id,
      file: join(dir, OUT_FILE),
      builtAt: Date.now(),
      durationMs: Math.round((performance.now() - started) * 10) / 10,
      inputs: Object.keys(result.metafile.inputs).map((input) => resolve(spec.dir, input))
    }
    await writeAtomically(join(binDir, MANIFEST), JSON.stringify({ ...build, file: relative(binDir, build.file), mode: this.#mode }, null, 2))
    this.#log.debug({ worker: spec.name, id, durationMs: build.durationMs }, 'worker built')
    await prune(binDir, new Set([id, ...inUse]))
    return build
  }

  /** The build bin/current.json names, if it and its file exist. */
  async current (spec: WorkerSpec): Promise<BuildResult | undefined> {
    const binDir = join(spec.dir, 'bin')
    try {
      const manifest = JSON.parse(await readFile(join(binDir, MANIFEST), 'utf8')) as BuildResult
      if (spec.command !== undefined) return manifest.file === '' ? manifest : undefined
      const file = join(binDir, manifest.file)
      await stat(file)
      return { ...manifest, file }
    } catch {
      return undefined
    }
  }

  /** Frees the esbuild context kept for a worker (it was removed or its settings changed). */
  async forget (name: string): Promise<void> {
    const kept = this.#contexts.get(name)
    this.#contexts.delete(name)
    await kept?.context.dispose()
  }

  /** Frees every esbuild context; the esbuild service would otherwise keep the process alive. */
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
      if (result.code !== 0) throw new TQ_ERR_BUILD_FAILED(spec.name, `${spec.build} exited with code ${result.code}\n${result.output}`.trimEnd())
    }
    const files = await listFiles(spec.dir)
    const hash = createHash('sha256')
    for (const file of files) hash.update(file).update(await readFile(join(spec.dir, file)))
    const build: BuildResult = {
      id: hash.digest('hex').slice(0, 12),
      file: '',
      builtAt: Date.now(),
      durationMs: Math.round((performance.now() - started) * 10) / 10,
      inputs: files.map((file) => join(spec.dir, file))
    }
    const binDir = join(spec.dir, 'bin')
    await mkdir(binDir, { recursive: true })
    await writeAtomically(join(binDir, MANIFEST), JSON.stringify({ ...build, mode: this.#mode }, null, 2))
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
    target: 'node20',
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

/** Removes all but the newest builds and those kept. */
async function prune (binDir: string, keep: Set<string>): Promise<void> {
  const entries = await readdir(binDir, { withFileTypes: true })
  const builds = await Promise.all(entries
    .filter((entry) => entry.isDirectory() && !entry.name.startsWith('.') && !keep.has(entry.name))
    .map(async (entry) => ({ name: entry.name, mtime: (await stat(join(binDir, entry.name))).mtimeMs })))
  builds.sort((a, b) => b.mtime - a.mtime)
  await Promise.all(builds.slice(Math.max(0, KEEP_BUILDS - keep.size)).map((build) => rm(join(binDir, build.name), { recursive: true, force: true })))
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
