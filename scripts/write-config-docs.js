#!/usr/bin/env node
// Rewrites config/server.yaml and docs/configuration.md from the schema (run after `npm run build`).
import { writeFileSync } from 'node:fs'
import { renderConfigReference, renderServerYaml } from '../dist/src/config/describe.js'

writeFileSync(new URL('../config/server.yaml', import.meta.url), renderServerYaml())
writeFileSync(new URL('../docs/configuration.md', import.meta.url), renderConfigReference())
console.log('wrote config/server.yaml and docs/configuration.md')
