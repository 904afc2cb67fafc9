// Writes the configuration reference from the schemas: config/server.yaml (every key, its default
// and meaning) and docs/configuration.md. A test keeps the committed files equal to this output;
// `npm run docs:config` rewrites them.
import type { TSchema } from '@sinclair/typebox'
import { stringify } from 'yaml'
import { CONFIG_ENV, HOST_ENV } from '../env-names.js'
import { serverConfigSchema, workerConfigSchema } from './schema.js'

/** The command-line flag that sets a key: workerPorts is --worker-ports, tls.cert --tls-cert. */
export function flagName (key: string): string {
  return key.replace('.', '-').replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)
}

/** The flag and environment variable that also set a server key (--worker-ports, TQ_WORKER_PORTS). */
const OTHER_SOURCES: Record<string, string> = Object.fromEntries(Object.entries(HOST_ENV).map(([name, key]) => [key, `--${flagName(key)}, ${name}`]))

interface KeyDoc { key: string, type: string, fallback: unknown, description: string }

/** Every key, nested sections flattened to dotted keys (health.interval). */
function keysOf (schema: TSchema, prefix = ''): KeyDoc[] {
  return Object.entries(schema.properties as Record<string, TSchema>).flatMap(([key, property]) => property.type === 'object' && property.properties
    ? keysOf(property, `${prefix}${key}.`)
    : [{ key: `${prefix}${key}`, type: typeName(property), fallback: property.default, description: String(property.description ?? '') }])
}

function typeName (schema: TSchema): string {
  if (schema.enum) return (schema.enum as string[]).join(' \\| ')
  if (schema.anyOf) return (schema.anyOf as TSchema[]).map(typeName).join(' \\| ')
  if (schema.type === 'array') return `list of ${typeName(schema.items as TSchema)}`
  if (schema.type === 'object') return 'mapping'
  return String(schema.type)
}

/** Each key with its meaning above it; sections (health, tls.acme) as nested mappings. */
function yamlLines (schema: TSchema, indent: string, prefix = ''): string[] {
  return Object.entries(schema.properties as Record<string, TSchema>).flatMap(([key, property]) => {
    const also = OTHER_SOURCES[prefix + key] ? `  (also ${OTHER_SOURCES[prefix + key]})` : ''
    const comment = `${indent}# ${String(property.description)}${also}`
    const body = property.type === 'object' && property.properties
      ? [`${indent}${key}:`, ...yamlLines(property, `${indent}  `, `${prefix}${key}.`)]
      : stringify({ [key]: property.default }).trimEnd().split('\n').map((line) => indent + line)
    return indent === '' ? [comment, ...body, ''] : [comment, ...body]
  })
}

export function renderServerYaml (): string {
  const lines = [
    '# tqserver server configuration. Every key is optional; the values below are the defaults.',
    '# Precedence: command-line flags, then the environment',
    `# (${Object.keys(HOST_ENV).join(', ')}; ${CONFIG_ENV} names another file),`,
    '# then this file, then the defaults.',
    '# Reference: docs/configuration.md. Per-worker settings go in workers/<name>/worker.yaml.',
    ''
  ]
  lines.push(...yamlLines(serverConfigSchema, ''))
  return lines.join('\n')
}

export function renderConfigReference (): string {
  const table = (docs: KeyDoc[], withSources: boolean) => [
    `| key | type | default | meaning${withSources ? ' | also set by' : ''} |`,
    `| --- | --- | --- | ---${withSources ? ' | ---' : ''} |`,
    ...docs.map((doc) => `| \`${doc.key}\` | ${doc.type} | ${doc.fallback === undefined ? '(see meaning)' : `\`${JSON.stringify(doc.fallback)}\``} | ${doc.description}${withSources ? ` | ${OTHER_SOURCES[doc.key] ?? ''}` : ''} |`)
  ].join('\n')
  return `# Configuration reference

Generated from \`src/config/schema.ts\` by \`npm run docs:config\`; do not edit by hand.

## Server: \`config/server.yaml\`

Every key is optional. Precedence: command-line flags (\`tqserver dev|start\`) or plugin options
(\`fastify.register(tqserver, {...})\`), then the environment, then the file, then the default.
\`TQ_CONFIG\` or \`--config\` names another file. Durations are in milliseconds.

${table(keysOf(serverConfigSchema), true)}

## Worker: \`workers/<name>/worker.yaml\`

Optional. A folder of \`workers/\` is a worker when it holds \`src/main.ts\` or a \`worker.yaml\`
whose \`entry\` exists. Timeouts left out here take the server's value.

${table(keysOf(workerConfigSchema), false)}

Unknown keys, wrong types and values out of range stop start-up with one message that names the
file and the key (codes in [errors.md](errors.md)).
`
}
