// Resolves the server configuration once: flags or plugin options, then the environment, then
// config/server.yaml, then the schema's defaults. Each layer is checked on its own so that a
// message names where the bad value came from; the result is frozen.
import { isAbsolute, relative, resolve } from 'node:path'
import { partialSchema, serverConfigSchema, type ServerConfig } from './schema.js'
import { validate } from './validate.js'
import { readYamlFile } from './yaml-file.js'
import { CONFIG_ENV, HOST_ENV } from '../env-names.js'
import { compileTrust } from '../forwarded-headers.js'
import { TQ_ERR_CONFIG_FILE_MISSING, TQ_ERR_CONFIG_INVALID_VALUE, TQ_ERR_CONFIG_PORT_RANGE } from '../errors.js'

export const DEFAULT_CONFIG_FILE = 'config/server.yaml'


/** Any keys, also only some of a section's (health, logFile): the rest come from the lower layers. */
export type ServerOverrides = { [Key in keyof ServerConfig]?: ServerConfig[Key] extends object ? Partial<ServerConfig[Key]> : ServerConfig[Key] } & { config?: string }

export interface ServerConfigInput {
  /** Project root holding workers/ and config/. */
  root: string
  /** Highest precedence: command-line flags or plugin options. */
  overrides?: ServerOverrides
  /** How an override is named in messages, e.g. key => `--${key}`. */
  overrideLabel?: (key: string) => string
  env?: Record<string, string | undefined>
}

export interface ResolvedServerConfig {
  config: ServerConfig
  root: string
  /** The file that was read, if any. */
  file: string | undefined
}

const layerSchema = partialSchema(serverConfigSchema)
/** Environment variables read as numbers when they are digits (the schema refuses other text by name). */
const NUMERIC_ENV = new Set(['port', 'proxies', 'tls.httpPort'])

export async function loadServerConfig (input: ServerConfigInput): Promise<ResolvedServerConfig> {
  const root = resolve(input.root)
  const env = input.env ?? process.env
  const label = input.overrideLabel ?? ((key: string) => `option "${key}"`)
  const { config: configPath, ...overrides } = input.overrides ?? {}
  /** Where each key was last set, and that layer's rank (higher wins). */
  const sources = new Map<string, { label: string, rank: number }>()

  const explicitPath = configPath ?? env[CONFIG_ENV]
  const file = resolve(root, explicitPath ?? DEFAULT_CONFIG_FILE)
  const fileLabel = isAbsolute(explicitPath ?? '') ? file : relative(root, file)
  const fromFile = await readYamlFile(file, fileLabel)
  if (fromFile === undefined && explicitPath !== undefined) {
    throw new TQ_ERR_CONFIG_FILE_MISSING(configPath !== undefined ? label('config') : CONFIG_ENV, file)
  }
  validate(layerSchema, fromFile ?? {}, fileLabel)
  for (const key of Object.keys(fromFile ?? {})) sources.set(key, { label: fileLabel, rank: 1 })

  const fromEnv: Record<string, unknown> = {}
  for (const [name, key] of Object.entries(HOST_ENV)) {
    const raw = env[name]
    if (raw === undefined || raw === '') continue
    const value = /^-?[0-9]+$/.test(raw) && NUMERIC_ENV.has(key) ? Number(raw) : raw
    const [section, inner] = key.split('.') as [string, string | undefined]
    const layer = inner === undefined ? { [section]: value } : { [section]: { [inner]: value } }
    validate(layerSchema, layer, `environment variable ${name}`)
    Object.assign(fromEnv, mergeLayers(fromEnv, layer))
    sources.set(key, { label: `environment variable ${name}`, rank: 2 })
  }

  const fromOverrides: Record<string, unknown> = {}
  for (const [key, value] of Object.entries(overrides)) {
    if (value === undefined) continue
    // A section's keys come from flags of their own (tls.cert from --tls-cert): each is named so.
    const entries = key === 'tls' && isMapping(value) ? Object.entries(value).map(([inner, v]) => [`${key}.${inner}`, { [key]: { [inner]: v } }] as const) : [[key, { [key]: value }] as const]
    for (const [name, layer] of entries) {
      validate(layerSchema, layer, label(name))
      sources.set(name, { label: label(name), rank: 3 })
    }
    fromOverrides[key] = value
  }

  const merged = mergeLayers(fromFile ?? {}, fromEnv, fromOverrides)
  const config = validate<ServerConfig>(serverConfigSchema, merged, 'configuration', true)
  checkPorts(config, sources)
  checkTrustProxy(config, sources)
  checkTls(config, sources)
  return { config: Object.freeze(config), root, file: fromFile === undefined ? undefined : file }
}

/** Later layers win, key by key, also inside nested sections such as health. */
function mergeLayers (...layers: Array<Record<string, unknown>>): Record<string, unknown> {
  const merged: Record<string, unknown> = {}
  for (const layer of layers) {
    for (const [key, value] of Object.entries(layer)) {
      const previous = merged[key]
      merged[key] = isMapping(value) && isMapping(previous) ? mergeLayers(previous, value) : value
    }
  }
  return merged
}

function isMapping (value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

export interface PortRange { from: number, to: number }

export function parsePortRange (text: string): PortRange {
  const [from, to] = text.split('-').map(Number) as [number, number]
  return { from, to }
}

function checkPorts (config: ServerConfig, sources: Map<string, { label: string, rank: number }>): void {
  const { from, to } = parsePortRange(config.workerPorts)
  const sourceOf = (key: string) => sources.get(key)?.label ?? 'defaults'
  const fail = (rule: string) => new TQ_ERR_CONFIG_PORT_RANGE(sourceOf('workerPorts'), 'workerPorts', `${rule} (got "${config.workerPorts}")`)
  if (from < 1 || to > 65535) throw fail('must lie within 1-65535')
  if (from > to) throw fail('is reversed or empty: the first port must not be above the last')
  if (config.port >= from && config.port <= to) {
    // Blame the key set by the stronger layer: that is the one the user just changed.
    const key = (sources.get('port')?.rank ?? 0) > (sources.get('workerPorts')?.rank ?? 0) ? 'port' : 'workerPorts'
    throw new TQ_ERR_CONFIG_PORT_RANGE(sourceOf(key), key,
      `puts the server's port ${config.port} inside the worker port range ${config.workerPorts}`)
  }
}

/** trustProxy's addresses must be addresses or CIDR ranges (proxy-addr reads them). */
function checkTrustProxy (config: ServerConfig, sources: Map<string, { label: string, rank: number }>): void {
  try {
    compileTrust(config.trustProxy)
  } catch (err) {
    throw new TQ_ERR_CONFIG_INVALID_VALUE(sources.get('trustProxy')?.label ?? 'defaults', 'trustProxy',
      `must be true, false, a hop count, or addresses and CIDR ranges: ${(err as Error).message} (got ${JSON.stringify(config.trustProxy)})`)
  }
}

/** tls's keys that only make sense together, or not at all together. */
function checkTls ({ tls, port, workerPorts }: ServerConfig, sources: Map<string, { label: string, rank: number }>): void {
  const fail = (key: string, rule: string, blame = key) => new TQ_ERR_CONFIG_INVALID_VALUE(sources.get(blame)?.label ?? sources.get('tls')?.label ?? 'defaults', key, rule)
  if ((tls.cert === '') !== (tls.key === '')) {
    const [missing, given] = tls.cert === '' ? ['tls.cert', 'tls.key'] : ['tls.key', 'tls.cert']
    throw fail(missing, `must be set with ${given}: the certificate chain file and its private key go together`, given)
  }
  const acme = tls.acme.domains.length > 0
  if (acme && tls.cert !== '') throw fail('tls.acme', 'obtains the certificate itself: set tls.acme.domains or tls.cert and tls.key, not both')
  if (acme && tls.httpPort === 0) throw fail('tls.httpPort', 'must be set for tls.acme: the CA checks each domain over plain HTTP (port 80 for a public CA)')
  if (tls.httpPort === 0) return
  if (tls.cert === '' && !acme) throw fail('tls.httpPort', 'redirects to HTTPS, so it needs tls.cert and tls.key or tls.acme.domains')
  if (tls.httpPort === port) throw fail('tls.httpPort', `must differ from port (both ${port})`)
  const { from, to } = parsePortRange(workerPorts)
  if (tls.httpPort >= from && tls.httpPort <= to) throw fail('tls.httpPort', `lies inside the worker port range ${workerPorts}`)
}
