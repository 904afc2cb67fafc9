// Reads one YAML configuration file into a plain mapping, or explains in one line why it cannot.
import { readFile } from 'node:fs/promises'
import { parse, YAMLParseError } from 'yaml'
import { TQ_ERR_CONFIG_INVALID_VALUE, TQ_ERR_CONFIG_INVALID_YAML } from '../errors.js'

/** The file's mapping ({} when empty), or undefined when the file does not exist. `label` names it in errors. */
export async function readYamlFile (path: string, label: string): Promise<Record<string, unknown> | undefined> {
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw err
  }
  let value: unknown
  try {
    value = parse(text)
  } catch (err) {
    if (!(err instanceof YAMLParseError)) throw err
    throw new TQ_ERR_CONFIG_INVALID_YAML(label, err.message.split('\n')[0] ?? err.message)
  }
  if (value === null || value === undefined) return {}
  if (typeof value !== 'object' || Array.isArray(value)) {
    throw new TQ_ERR_CONFIG_INVALID_VALUE(label, '(root)', `must be a mapping of keys to values (got ${JSON.stringify(value)})`)
  }
  return value as Record<string, unknown>
}
