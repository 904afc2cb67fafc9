// tqserver new: a worker folder made from a template.
import { existsSync } from 'node:fs'
import { cp } from 'node:fs/promises'
import { join, relative } from 'node:path'
import { loadServerConfig, type ServerOverrides } from '../config/server-config.js'
import { TQ_ERR_CLI_INVALID_NAME, TQ_ERR_CLI_RESERVED_NAME, TQ_ERR_CLI_USAGE, TQ_ERR_CLI_WORKER_EXISTS } from '../errors.js'
import { isHostPath } from '../url-paths.js'
import { PACKAGE_ROOT } from './own-package.js'

const TEMPLATES = ['api', 'html']
const WORKER_NAME = /^[a-z][a-z0-9_-]*$/

/** Copies a worker template (templates/<template>) into workers/NAME. */
export async function scaffold (root: string, flags: ServerOverrides, name: string, template: string): Promise<void> {
  if (!TEMPLATES.includes(template)) throw new TQ_ERR_CLI_USAGE(`--template must be one of ${TEMPLATES.join(', ')} (got "${template}")`)
  if (!WORKER_NAME.test(name)) throw new TQ_ERR_CLI_INVALID_NAME(name)
  const route = name === 'index' ? '/' : `/${name}`
  // Refused before anything is written: the server would refuse the route, or never look there.
  if (isHostPath(route)) throw new TQ_ERR_CLI_RESERVED_NAME(name, `the server answers ${route} itself`)
  if (name === 'node_modules') throw new TQ_ERR_CLI_RESERVED_NAME(name, 'folders called node_modules are not workers')
  const { config } = await loadServerConfig({ root, overrides: { config: flags.config } })
  const target = join(root, config.workersDir, name)
  if (existsSync(target)) throw new TQ_ERR_CLI_WORKER_EXISTS(relative(root, target))
  await cp(join(PACKAGE_ROOT, 'templates', template), target, { recursive: true })
  process.stdout.write(`created ${relative(root, target)}: edit src/main.ts; it is served at ${route}\n`)
}
