// Deploy targets: config/deployment.yaml read into one target, and the two ways to act on it, a
// shell command run in its folder (sh locally, ssh for user@host:/path) and rsync to it.
import { spawn } from 'node:child_process'
import { join, resolve } from 'node:path'
import { deployTargetSchema, type DeployTargetConfig } from '../config/schema.js'
import { validate } from '../config/validate.js'
import { readYamlFile } from '../config/yaml-file.js'
import { TQ_ERR_CONFIG_INVALID_VALUE, TQ_ERR_DEPLOY_UNKNOWN_TARGET } from '../errors.js'

export const DEPLOYMENT_FILE = join('config', 'deployment.yaml')

export interface DeployTarget {
  name: string
  /** user@host for ssh; undefined for a folder on this machine. */
  host: string | undefined
  /** The project folder there (absolute when local; as ssh sees it otherwise). */
  path: string
  restart: string | undefined
  /** As rsync and messages name it: /path or user@host:/path. */
  dest: string
}

/** The target `name` of the project in `root`; an unknown name lists the known ones. */
export async function readTarget (root: string, name: string): Promise<DeployTarget> {
  const file = await readYamlFile(join(root, DEPLOYMENT_FILE), DEPLOYMENT_FILE)
  const targets = file?.targets ?? {}
  if (typeof targets !== 'object' || targets === null || Array.isArray(targets)) {
    throw new TQ_ERR_CONFIG_INVALID_VALUE(DEPLOYMENT_FILE, 'targets', 'must be a mapping of target names to paths')
  }
  const entry = (targets as Record<string, unknown>)[name]
  if (entry === undefined || !Object.hasOwn(targets, name)) {
    const known = Object.keys(targets)
    throw new TQ_ERR_DEPLOY_UNKNOWN_TARGET(name, file === undefined ? `${DEPLOYMENT_FILE}, which does not exist` : DEPLOYMENT_FILE, known.join(', ') || 'none')
  }
  const config = validate<DeployTargetConfig>(deployTargetSchema, typeof entry === 'string' ? { path: entry } : entry, `${DEPLOYMENT_FILE}: targets.${name}`)
  // rsync's own rule: a colon before the first slash makes it host:path.
  const remote = /^([^/:]+):(.*)$/.exec(config.path)
  const path = remote ? remote[2]! || '.' : resolve(root, config.path)
  return { name, host: remote?.[1], path, restart: config.restart, dest: remote ? `${remote[1]}:${path}` : path }
}

/** `text` as one shell word. */
export function quote (text: string): string {
  return `'${text.replaceAll("'", "'\\''")}'`
}

/**
 * Runs a shell command line on the target, in its folder unless `inFolder` is false. Output goes
 * to ours (stderr always; stdout unless `capture`). Resolves with the exit code and what was captured.
 */
export function runOnTarget (target: DeployTarget, command: string, { capture = false, inFolder = true } = {}): Promise<{ code: number | null, stdout: string }> {
  const line = inFolder ? `cd ${quote(target.path)} && ${command}` : command
  const [program, args] = target.host === undefined ? ['sh', ['-c', line]] : ['ssh', [target.host, line]]
  return runProgram(program, args, capture ? 'pipe' : 'inherit')
}

/** rsync from `source` (a folder) to the target's folder with the rules in `filterFile`; the itemized changes. */
export async function rsyncTo (target: DeployTarget, source: string, filterFile: string, extra: string[] = []): Promise<{ code: number | null, stdout: string, stderr: string }> {
  const args = [
    // Not -a: owners and groups stay the target's (a deploy user's files, a service user's folder).
    '--recursive', '--links', '--perms', '--times',
    // A folder that is a link there (a shared public/) stays a link.
    '--keep-dirlinks',
    // What changed lands at once at the end, deletions included.
    '--delete', '--delete-delay', '--delay-updates',
    '--itemize-changes', `--filter=merge ${filterFile}`, ...extra,
    `${source}/`, `${target.dest}/`
  ]
  return runProgram('rsync', args, 'pipe', true)
}

function runProgram (program: string, args: string[], stdout: 'pipe' | 'inherit', captureStderr = false): Promise<{ code: number | null, stdout: string, stderr: string }> {
  return new Promise((resolvePromise) => {
    const child = spawn(program, args, { stdio: ['ignore', stdout, captureStderr ? 'pipe' : 'inherit'] })
    let out = ''
    let err = ''
    child.stdout?.on('data', (chunk: Buffer) => { out += chunk.toString() })
    child.stderr?.on('data', (chunk: Buffer) => { err += chunk.toString() })
    child.once('error', (error) => resolvePromise({ code: null, stdout: out, stderr: `${program}: ${error.message}` }))
    child.once('close', (code) => resolvePromise({ code, stdout: out, stderr: err }))
  })
}
