// Checks a configuration object against a schema and turns the first problem into one
// coded error that names where the value came from and the key.
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv'
import type { TSchema } from '@sinclair/typebox'
import { TQ_ERR_CONFIG_INVALID_VALUE, TQ_ERR_CONFIG_UNKNOWN_KEY } from '../errors.js'

// verbose: errors carry the offending value and their schema (for its 'x-rule' message).
const ajv = new Ajv({ strict: false, allErrors: false, verbose: true })
const ajvWithDefaults = new Ajv({ strict: false, allErrors: false, verbose: true, useDefaults: true })
const compiled = new WeakMap<TSchema, { plain?: ValidateFunction, withDefaults?: ValidateFunction }>()

function validator (schema: TSchema, withDefaults: boolean): ValidateFunction {
  const entry = compiled.get(schema) ?? {}
  compiled.set(schema, entry)
  if (withDefaults) return (entry.withDefaults ??= ajvWithDefaults.compile(schema))
  return (entry.plain ??= ajv.compile(schema))
}

/**
 * Validates `value` (mutated in place when `withDefaults` fills in defaults) and returns it typed.
 * `source` names the origin in messages: a file path, "environment" or "--flags".
 */
export function validate<T> (schema: TSchema, value: unknown, source: string, withDefaults = false): T {
  const check = validator(schema, withDefaults)
  if (check(value)) return value as T
  throw toConfigError(check.errors?.[0], source, schema)
}

function toConfigError (error: ErrorObject | undefined, source: string, schema: TSchema): Error {
  if (!error) return new TQ_ERR_CONFIG_INVALID_VALUE(source, '(root)', 'is invalid')
  const key = error.instancePath.split('/').slice(1).join('.')
  if (error.keyword === 'additionalProperties') {
    const unknown = String(error.params.additionalProperty)
    const known = Object.keys(propertiesAt(schema, key))
    return new TQ_ERR_CONFIG_UNKNOWN_KEY(source, key ? `${key}.${unknown}` : unknown, suggestion(unknown, known))
  }
  if (error.keyword === 'required') {
    const missing = String(error.params.missingProperty)
    return new TQ_ERR_CONFIG_INVALID_VALUE(source, key ? `${key}.${missing}` : missing, 'is required')
  }
  const rule = (error.parentSchema as Record<string, unknown> | undefined)?.['x-rule'] ?? ruleText(error)
  return new TQ_ERR_CONFIG_INVALID_VALUE(source, key || '(root)', `${rule} (got ${JSON.stringify(error.data)})`)
}

function ruleText (error: ErrorObject): string {
  if (error.keyword === 'enum') return `must be one of ${(error.params.allowedValues as unknown[]).join(', ')}`
  if (error.keyword === 'type') return `must be ${error.params.type === 'object' ? 'a mapping of keys to values' : `of type ${error.params.type}`}`
  return error.message ?? 'is invalid'
}

function propertiesAt (schema: TSchema, dottedKey: string): Record<string, unknown> {
  let node: TSchema | undefined = schema
  for (const part of dottedKey ? dottedKey.split('.') : []) node = node?.properties?.[part]
  return node?.properties ?? {}
}

function suggestion (unknown: string, known: string[]): string {
  const close = known.find((name) => editDistance(name.toLowerCase(), unknown.toLowerCase()) <= 2)
  return close ? ` (did you mean "${close}"?)` : ` (known keys: ${known.join(', ')})`
}

function editDistance (a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, i) => i)
  for (let i = 1; i <= a.length; i++) {
    const current = [i]
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min(previous[j]! + 1, current[j - 1]! + 1, previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1))
    }
    previous = current
  }
  return previous[b.length]!
}
