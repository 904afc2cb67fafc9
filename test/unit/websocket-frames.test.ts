// FrameBoundaries finds where each WebSocket frame ends in a byte stream however it is split:
// short, 16-bit and 64-bit lengths, masked and not, empty payloads.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { FrameBoundaries } from '../../src/proxy/websocket-tunnel.js'

function frame (payload: number, masked = false): Buffer {
  const length = payload < 126 ? [payload] : payload < 65536 ? [126, payload >> 8, payload & 0xff] : [127, 0, 0, 0, 0, 0, (payload >> 16) & 0xff, (payload >> 8) & 0xff, payload & 0xff]
  length[0]! |= masked ? 0x80 : 0
  return Buffer.concat([Buffer.from([0x82, ...length]), masked ? Buffer.from([1, 2, 3, 4]) : Buffer.alloc(0), Buffer.alloc(payload, 7)])
}

const frames = [frame(0), frame(5), frame(125, true), frame(126), frame(300, true), frame(70_000), frame(1)]
const stream = Buffer.concat(frames)
const expected = frames.reduce<number[]>((ends, f) => [...ends, (ends.at(-1) ?? 0) + f.length], [])

test('frame ends are found in one chunk', () => {
  assert.deepEqual(new FrameBoundaries().ends(stream), expected)
})

test('frame ends are found whatever the chunk sizes', () => {
  for (const size of [1, 2, 3, 7, 64, 1000]) {
    const boundaries = new FrameBoundaries()
    const found: number[] = []
    for (let at = 0; at < stream.length; at += size) {
      for (const end of boundaries.ends(stream.subarray(at, at + size))) found.push(at + end)
      if (found.at(-1) === at + Math.min(size, stream.length - at)) assert.ok(boundaries.atBoundary)
    }
    assert.deepEqual(found, expected, `chunks of ${size}`)
  }
})
