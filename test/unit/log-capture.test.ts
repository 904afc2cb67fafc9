// Worker output: pino JSON lines keep their level and fields, other lines are logged by stream,
// lines split across chunks are joined, and the last lines are kept per process.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { PassThrough } from 'node:stream'
import { once } from 'node:events'
import { pino } from 'pino'
import { captureOutput, OutputBuffer } from '../../src/process/log-capture.js'
import { LogRecorder } from '../helpers/logs.js'

test('forwards worker output line by line into the server log', async () => {
  const logs = new LogRecorder()
  const log = pino({ level: 'trace', base: null }, logs).child({ worker: 'api', pid: 42 })
  const stdout = new PassThrough()
  const stderr = new PassThrough()
  const buffer = new OutputBuffer(3)
  captureOutput({ stdout, stderr }, 42, { log, buffer })

  stdout.write('{"level":40,"time":1,"pid":42,"hostname":"h","msg":"disk nearly full","free":"2%"}\n')
  stdout.write('plain text that arrives ')
  stdout.write('in two chunks\n')
  stderr.write('TypeError: boom\n    at main.ts:1:1\n')
  stdout.end('{"level":"not pino"} without newline at the end')
  stderr.end()
  await Promise.all([once(stdout, 'end'), once(stderr, 'end')])

  const lines = logs.lines.map(({ time: _time, ...line }) => line)
  assert.deepEqual(lines, [
    { level: 40, worker: 'api', pid: 42, stream: 'stdout', free: '2%', msg: 'disk nearly full' },
    { level: 30, worker: 'api', pid: 42, stream: 'stdout', msg: 'plain text that arrives in two chunks' },
    { level: 50, worker: 'api', pid: 42, stream: 'stderr', msg: 'TypeError: boom' },
    { level: 50, worker: 'api', pid: 42, stream: 'stderr', msg: '    at main.ts:1:1' },
    { level: 30, worker: 'api', pid: 42, stream: 'stdout', msg: '{"level":"not pino"} without newline at the end' }
  ])
  assert.equal(buffer.tail(42, 10), 'TypeError: boom\n    at main.ts:1:1\n{"level":"not pino"} without newline at the end', 'the buffer keeps the last 3 lines')
  assert.equal(buffer.tail(7, 10), '', 'another process wrote nothing')
})

test('splits a line that never ends into pieces instead of holding it all', async () => {
  const logs = new LogRecorder()
  const stdout = new PassThrough()
  captureOutput({ stdout, stderr: null }, 1, { log: pino({ base: null }, logs), buffer: new OutputBuffer(10) })
  stdout.write('x'.repeat(100_000))
  stdout.end()
  await once(stdout, 'end')
  assert.ok(logs.lines.every((line) => String(line.msg).length <= 16 * 1024))
  assert.equal(logs.lines.map((line) => String(line.msg)).join(''), 'x'.repeat(100_000))
})
