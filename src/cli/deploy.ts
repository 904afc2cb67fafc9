// tqserver deploy TARGET: build every worker, copy what runs to the target (deploy-rules.ts), run
// npm ci there when the packages changed, then make the server there switch: `tqserver reload`,
// or the target's `restart:` command when the tqserver package itself changed.
//
//   build ─ probe the target ─ rsync ─ [npm ci] ─ reload | restart ─ remove unused builds there
import { createHash } from 'node:crypto'
import { existsSync } from 'node:fs'
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, isAbsolute, join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { ServerOverrides } from '../config/server-config.js'
import {
  TQ_ERR_CLI_USAGE, TQ_ERR_DEPLOY_BUILD_FAILED, TQ_ERR_DEPLOY_COPY_FAILED, TQ_ERR_DEPLOY_INSTALL_FAILED,
  TQ_ERR_DEPLOY_RELOAD_FAILED, TQ_ERR_DEPLOY_RESTART_FAILED, TQ_ERR_DEPLOY_UNREACHABLE
} from '../errors.js'
import { buildWorkers } from './build-command.js'
import { copyRules, pruneRules, type WorkerFolder } from './deploy-rules.js'
import { quote, readTarget, rsyncTo, runOnTarget, type DeployTarget } from './deploy-target.js'

/**
 * Written into the target's node_modules after a successful `npm ci`: which package.json and lockfile
 * it installed. npm ci empties node_modules first, so a failed install leaves no record behind.
 */
const INSTALLED_FILE = 'node_modules/.tqserver-deploy.json'
const THIS_CLI = fileURLToPath(new URL('main.js', import.meta.url))

interface Installed {
  /** Hash of package.json and package-lock.json. */
  packages: string
  /** The tqserver package: version and integrity (or where it came from). */
  tqserver: string | undefined
}

const say = (line: string) => process.stdout.write(`deploy: ${line}\n`)

/** `reload`: passed to the target's tqserver reload (its timeout, and which server when several run there). */
export async function deploy (root: string, flags: ServerOverrides, targetName: string, reload: { timeoutMs: number, port?: string | undefined }): Promise<void> {
  const target = await readTarget(root, targetName)
  say(`building the workers in ${root}`)
  const { config, specs, builder, failed } = await buildWorkers(root, flags, [])
  if (failed.length > 0) throw new TQ_ERR_DEPLOY_BUILD_FAILED(failed.join(', '), target.dest)
  const workersDir = relative(root, resolve(root, config.workersDir))
  if (workersDir.startsWith('..') || isAbsolute(workersDir)) throw new TQ_ERR_CLI_USAGE(`deploy copies the project folder, and workersDir (${config.workersDir}) is outside it`)
  const folders: WorkerFolder[] = await Promise.all((await readdir(join(root, workersDir), { withFileTypes: true }))
    .filter((entry) => entry.isDirectory() && !entry.name.startsWith('.') && entry.name !== 'node_modules')
    .map(async ({ name }) => {
      const spec = specs.find((candidate) => candidate.name === name)
      // A disabled worker is not built: it ships the build it has, if any.
      const hasBuild = spec && spec.command === undefined && (spec.enabled || existsSync(join(spec.dir, 'bin', 'current.json')))
      const build = hasBuild ? await builder.current(spec) : undefined
      return { name, spec, buildDir: build && relative(join(spec!.dir, 'bin'), dirname(build.file)) }
    }))
  const source = await readPackages(root)

  const before = await probe(target)
  if (target.host === undefined) await mkdir(target.path, { recursive: true })
  say(`copying to ${target.dest}`)
  const top = [...source.files, ...(existsSync(join(root, 'config')) ? ['config/'] : [])]
  const copied = await rsyncWithRules(target, root, copyRules(top, workersDir, folders))
  say(`${copied.sent} files copied, ${copied.deleted} deleted`)

  let tqserverChanged: string | undefined
  if (source.files.length > 0 && before.installed?.packages !== source.installed.packages) {
    say(`installing packages there: npm ci --omit=dev${before.installed ? '' : ' (none recorded there yet)'}`)
    const record = `mkdir -p node_modules && printf '%s' ${quote(JSON.stringify(source.installed))} > ${INSTALLED_FILE}`
    const install = await runOnTarget(target, `npm ci --omit=dev --no-audit --no-fund && ${record}`)
    if (install.code !== 0) throw new TQ_ERR_DEPLOY_INSTALL_FAILED(target.dest, `exit code ${install.code}`)
    // With a record, exactly what was installed; else the version is all there is to compare.
    const [was, now] = before.installed
      ? [before.installed.tqserver, source.installed.tqserver]
      : [before.tqserverVersion, source.tqserverVersion]
    if (was !== undefined && now !== undefined && was !== now) tqserverChanged = `${versionOf(was)} -> ${versionOf(now)}`
  } else {
    say(source.files.length > 0 ? 'packages unchanged: no npm ci' : 'no package.json: nothing to install')
  }

  if (tqserverChanged !== undefined && target.restart !== undefined) {
    say(`the tqserver package changed (${tqserverChanged}): a reload would keep the old server code; restarting: ${target.restart}`)
    const restart = await runOnTarget(target, target.restart)
    if (restart.code !== 0) throw new TQ_ERR_DEPLOY_RESTART_FAILED(target.restart, target.dest, `exit code ${restart.code}`)
  } else {
    say(`reloading the server in ${target.dest}`)
    const reloaded = await runOnTarget(target, reloadCommand(target, reload))
    if (reloaded.code !== 0) throw new TQ_ERR_DEPLOY_RELOAD_FAILED(target.dest)
  }
  // Only now: until the switch, instances of the previous builds may still need their files. With
  // --port, other servers run there, on builds this deploy knows nothing of: nothing is removed.
  if (reload.port === undefined) await rsyncWithRules(target, root, pruneRules(workersDir, folders))
  else say(`old builds are kept: other servers in ${target.dest} may run them`)
  if (tqserverChanged !== undefined && target.restart === undefined) {
    const command = 'sudo systemctl restart tqserver'
    process.stderr.write(`deploy: warning: the tqserver package changed (${tqserverChanged}): the reload is done, but the server in ${target.dest} still runs the old tqserver. Restart it:\n` +
      `  ${target.host ? `ssh ${target.host} ${quote(command)}` : command}   (under systemd; else stop it and run tqserver start in ${target.path})\n` +
      `deploy: or give target "${target.name}" a restart: command in config/deployment.yaml, and deploy runs it.\n`)
  }
  say(`${target.name} is serving the new versions`)
}

/** package.json and package-lock.json of the project, as the target's install record would name them. */
async function readPackages (root: string) {
  const files = ['package.json', 'package-lock.json']
  const texts = await Promise.all(files.map((file) => readFile(join(root, file), 'utf8').catch(() => undefined)))
  const lock = texts[1] === undefined ? undefined : JSON.parse(texts[1]) as { packages?: Record<string, { version?: string, integrity?: string, resolved?: string }> }
  const entry = lock?.packages?.['node_modules/tqserver']
  const installed: Installed = {
    packages: createHash('sha256').update(texts.map((text) => text ?? '').join('\0')).digest('hex'),
    tqserver: entry && [entry.version, entry.integrity ?? entry.resolved].filter(Boolean).join(' ')
  }
  return { files: files.filter((_, i) => texts[i] !== undefined), installed, tqserverVersion: entry?.version }
}

/** What the target has installed: the record of deploy's last npm ci there, and the tqserver version. */
async function probe (target: DeployTarget): Promise<{ installed: Installed | undefined, tqserverVersion: string | undefined }> {
  const script = `cd ${quote(target.path)} 2>/dev/null || exit 0; cat ${INSTALLED_FILE} 2>/dev/null; echo; echo '---'; cat node_modules/tqserver/package.json 2>/dev/null; exit 0`
  const { code, stdout } = await runOnTarget(target, script, { capture: true, inFolder: false })
  if (code !== 0) throw new TQ_ERR_DEPLOY_UNREACHABLE(target.dest, code === null ? 'cannot run ssh' : `exit code ${code}`)
  const [record = '', pkg = ''] = stdout.split('\n---\n')
  const parse = <T>(text: string): T | undefined => { try { return JSON.parse(text) as T } catch { return undefined } }
  return { installed: parse<Installed>(record.trim()), tqserverVersion: parse<{ version?: string }>(pkg.trim())?.version }
}

/** The target's own tqserver reload; locally this tqserver when the target has none installed. */
function reloadCommand (target: DeployTarget, { timeoutMs, port }: { timeoutMs: number, port?: string | undefined }): string {
  const args = `reload --timeout ${timeoutMs}${port === undefined ? '' : ` --port ${quote(port)}`}`
  const fallback = target.host === undefined
    ? `exec ${quote(process.execPath)} ${quote(THIS_CLI)} ${args}`
    : `echo "tqserver is not installed in ${target.path} (node_modules/.bin/tqserver)" >&2; exit 1`
  return `if [ -x node_modules/.bin/tqserver ]; then exec node_modules/.bin/tqserver ${args}; else ${fallback}; fi`
}

/** Runs rsync with `rules`; counts what it sent and deleted. */
async function rsyncWithRules (target: DeployTarget, root: string, rules: string[]): Promise<{ sent: number, deleted: number }> {
  const dir = await mkdtemp(join(tmpdir(), 'tq-deploy-'))
  try {
    await writeFile(join(dir, 'rules'), `${rules.join('\n')}\n`)
    const result = await rsyncTo(target, root, join(dir, 'rules'))
    if (result.code !== 0) throw new TQ_ERR_DEPLOY_COPY_FAILED(target.dest, result.stderr.trim() || `rsync exit code ${result.code}`)
    const lines = result.stdout.split('\n')
    // --itemize-changes: "<f..." or ">f..." a file sent, "*deleting" one removed.
    return { sent: lines.filter((line) => /^[<>]f/.test(line)).length, deleted: lines.filter((line) => line.startsWith('*deleting')).length }
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

function versionOf (identity: string): string {
  return identity.split(' ')[0]!
}
