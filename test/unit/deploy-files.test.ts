// The systemd unit keeps the properties docs/deploy.md promises.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { serverConfigSchema } from '../../src/config/schema.js'
import { REPO_ROOT } from '../helpers/project.js'

test('the systemd unit reloads on SIGHUP and leaves the server time to drain', async () => {
  const unit = await readFile(join(REPO_ROOT, 'scripts', 'systemd', 'tqserver.service'), 'utf8')
  const value = (key: string) => new RegExp(`^${key}=(.*)$`, 'm').exec(unit)?.[1]
  assert.equal(value('Type'), 'simple')
  assert.equal(value('ExecReload'), '/bin/kill -HUP $MAINPID')
  assert.equal(value('KillMode'), 'mixed')
  assert.equal(value('Restart'), 'on-failure')
  assert.match(value('ExecStart') ?? '', /cli\.js start$/)
  const drainAndKillSeconds = (serverConfigSchema.properties.drainTimeout.default + serverConfigSchema.properties.killTimeout.default) / 1000
  assert.ok(Number(value('TimeoutStopSec')) > drainAndKillSeconds, 'TimeoutStopSec exceeds drainTimeout + killTimeout')
})
