// src/errors.ts and docs/errors.md list the same codes, and every code follows the naming rule.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import * as errors from '../../src/errors.js'
import { REPO_ROOT } from '../helpers/project.js'

test('every error code is documented in docs/errors.md, and every documented code exists', async () => {
  const docs = await readFile(join(REPO_ROOT, 'docs', 'errors.md'), 'utf8')
  const documented = [...docs.matchAll(/^### (TQ_ERR_[A-Z_]+)$/gm)].map((match) => match[1]).sort()
  const defined = Object.keys(errors).sort()
  assert.deepEqual(documented, defined)
  for (const [name, ErrorClass] of Object.entries(errors)) {
    assert.match(name, /^TQ_ERR_[A-Z]+_[A-Z_]+$/)
    assert.equal(new (ErrorClass as new (...args: unknown[]) => Error & { code: string })().code, name, `${name} carries its own name as code`)
  }
})
