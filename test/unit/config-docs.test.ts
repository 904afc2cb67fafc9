// config/server.yaml and docs/configuration.md are generated from the schema and stay in step
// with it; the committed server.yaml is itself a valid configuration of the defaults.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { renderConfigReference, renderServerYaml } from '../../src/config/describe.js'
import { loadServerConfig } from '../../src/config/server-config.js'
import { serverConfigSchema } from '../../src/config/schema.js'
import { validate } from '../../src/config/validate.js'
import { REPO_ROOT } from '../helpers/project.js'

test('config/server.yaml and docs/configuration.md match the schema (npm run docs:config)', async () => {
  assert.equal(await readFile(join(REPO_ROOT, 'config', 'server.yaml'), 'utf8'), renderServerYaml())
  assert.equal(await readFile(join(REPO_ROOT, 'docs', 'configuration.md'), 'utf8'), renderConfigReference())
})

test('the shipped server.yaml sets every key, to its default', async () => {
  const { config, file } = await loadServerConfig({ root: REPO_ROOT, env: {} })
  assert.equal(file, join(REPO_ROOT, 'config', 'server.yaml'))
  assert.deepEqual({ ...config }, validate(serverConfigSchema, {}, 'defaults', true))
})
