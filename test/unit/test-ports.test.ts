// The tests' worker port ranges (test/helpers/ports.ts): no two test files share a port, all lie in
// the block that TQ_TEST_PORTS moves, and moving it moves every range by the same amount.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { movePorts, PORTS, RANGES, TEST_PORTS } from '../helpers/ports.js'

const bounds = (range: string) => range.split('-').map(Number) as [number, number]

test('each test file has its own worker ports, all within the block TQ_TEST_PORTS moves', () => {
  const ranges = Object.entries(RANGES).map(([name, range]) => ({ name, range, bounds: bounds(range) }))
  for (const { name, range, bounds: [first, last] } of ranges) {
    assert.match(range, /^\d+-\d+$/, name)
    assert.ok(first <= last, `${name} ${range} is reversed`)
    assert.ok(first >= TEST_PORTS.from && last <= TEST_PORTS.to, `${name} ${range} lies outside ${TEST_PORTS.from}-${TEST_PORTS.to}`)
  }
  const sorted = ranges.sort((a, b) => a.bounds[0] - b.bounds[0])
  for (let i = 1; i < sorted.length; i++) {
    const [before, after] = [sorted[i - 1]!, sorted[i]!]
    assert.ok(before.bounds[1] < after.bounds[0], `${before.name} ${before.range} overlaps ${after.name} ${after.range}`)
  }
})

test('TQ_TEST_PORTS moves every range by the same amount; unset, nothing moves', () => {
  assert.deepEqual(movePorts(RANGES, undefined), RANGES)
  assert.deepEqual(movePorts(RANGES, ''), RANGES)
  for (const base of [1024, 10000, 15000, 65535 - (TEST_PORTS.to - TEST_PORTS.from)]) {
    const moved = movePorts(RANGES, String(base))
    assert.deepEqual(Object.keys(moved), Object.keys(RANGES))
    for (const [name, range] of Object.entries(RANGES)) {
      const [first, last] = bounds(range)
      assert.equal(moved[name as keyof typeof RANGES], `${first - TEST_PORTS.from + base}-${last - TEST_PORTS.from + base}`, `${name} at ${base}`)
    }
  }
  // What the test files import follows this run's TQ_TEST_PORTS.
  assert.deepEqual(PORTS, movePorts(RANGES, process.env.TQ_TEST_PORTS))
})

test('a TQ_TEST_PORTS that is no port, leaves 1024-65535 or meets the ephemeral ports is refused', () => {
  for (const base of ['ten', '10000-14999', '-1', '1023', '61000', '1e4']) {
    assert.throws(() => movePorts(RANGES, base), { message: `TQ_TEST_PORTS must be the first of 5000 ports within 1024-65535, such as 10000 (got "${base}")` })
  }
  assert.throws(() => movePorts(RANGES, '40000', [32768, 60999]), {
    message: 'TQ_TEST_PORTS=40000 puts the tests\' ports 40000-44999 among the kernel\'s ephemeral ports 32768-60999, ' +
      'which client sockets take; choose one from 1024 to 27768, such as 10000'
  })
  // Touching the ephemeral range at either end counts; next to it does not.
  assert.throws(() => movePorts(RANGES, '27769', [32768, 60999]))
  assert.doesNotThrow(() => movePorts(RANGES, '27768', [32768, 60999]))
  assert.throws(() => movePorts(RANGES, '40000', [32768, 40000]))
  assert.doesNotThrow(() => movePorts(RANGES, '40001', [32768, 40000]))
})
