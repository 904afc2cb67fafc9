// tqserver build: production bundles of the named workers, one line per worker.
import { relative } from 'node:path'
import { Builder } from '../build/builder.js'
import { loadServerConfig, type ServerOverrides } from '../config/server-config.js'
import { discoverWorkers } from '../config/worker-discovery.js'
import { TQ_ERR_WORKER_NOT_FOUND } from '../errors.js'
import { createLogger } from '../logger.js'

/** Production builds of the named workers (all enabled ones when none is named); exits 1 when one fails. */
export async function build (root: string, flags: ServerOverrides, names: string[]): Promise<void> {
  const { failed } = await buildWorkers(root, flags, names)
  if (failed.length > 0) process.exitCode = 1
}

/** Builds, printing one line per worker; resolves with the workers found and those whose build failed. */
export async function buildWorkers (root: string, flags: ServerOverrides, names: string[]) {
  const { config } = await loadServerConfig({ root, overrides: { config: flags.config } })
  const specs = await discoverWorkers(root, config)
  for (const name of names) {
    if (!specs.some((spec) => spec.name === name)) throw new TQ_ERR_WORKER_NOT_FOUND(name)
  }
  const chosen = names.length > 0 ? specs.filter((spec) => names.includes(spec.name)) : specs.filter((spec) => spec.enabled)
  const builder = new Builder('prod', createLogger(config.logLevel))
  // A signal stops the `build:` commands too: they run in groups of their own, which no
  // terminal or supervisor signal reaches.
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => { builder.abort(); process.exit(128 + (signal === 'SIGINT' ? 2 : 15)) })
  const failed: string[] = []
  for (const spec of chosen) {
    try {
      const result = await builder.build(spec)
      // A command: worker runs its own program: its "build" is a version id of its files.
      const output = result.file === '' ? `version ${result.id} (command: ${JSON.stringify(spec.command)})` : relative(root, result.file)
      process.stdout.write(`built ${spec.name} -> ${output} in ${result.durationMs} ms\n`)
    } catch (err) {
      failed.push(spec.name)
      process.stderr.write(`${(err as Error).message}\n`)
    }
  }
  await builder.dispose()
  return { config, specs, builder, failed }
}
