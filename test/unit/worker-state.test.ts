// The state machine: every legal move works and is logged once; every other move throws.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { InstanceState, STATES, TRANSITIONS, type WorkerState } from '../../src/process/worker-state.js'
import type { Logger } from '../../src/logger.js'

function recorder () {
  const lines: Array<Record<string, unknown>> = []
  const log = {
    level: 'info',
    child: () => log,
    trace: () => {},
    debug: () => {},
    info: (obj: object, msg?: string) => lines.push({ ...obj, msg }),
    warn: (obj: object, msg?: string) => lines.push({ ...obj, msg, warn: true }),
    error: () => {},
    fatal: () => {}
  } as Logger
  return { log, lines }
}

/** A state machine brought to `state` by legal moves (breadth-first from STOPPED). */
function reach (state: WorkerState, log: Logger): InstanceState {
  const paths = new Map<WorkerState, WorkerState[]>([['STOPPED', []]])
  const queue: WorkerState[] = ['STOPPED']
  while (queue.length > 0) {
    const from = queue.shift()!
    for (const to of TRANSITIONS[from]) {
      if (!paths.has(to)) {
        paths.set(to, [...paths.get(from)!, to])
        queue.push(to)
      }
    }
  }
  const machine = new InstanceState(log, () => ({ worker: 'w', pid: 1, port: 9000 }))
  for (const step of paths.get(state)!) machine.transition(step, 'setup')
  return machine
}

test('every state can be reached from STOPPED', () => {
  for (const state of STATES) assert.equal(reach(state, recorder().log).current, state)
})

test('every legal move changes the state and logs it once with worker, pid, port and reason', () => {
  for (const from of STATES) {
    for (const to of TRANSITIONS[from]) {
      const { log, lines } = recorder()
      const machine = reach(from, log)
      lines.length = 0
      machine.transition(to, 'because')
      assert.equal(machine.current, to)
      assert.deepEqual(lines.map(({ warn: _warn, ...line }) => line), [{ worker: 'w', pid: 1, port: 9000, from, to, reason: 'because', msg: 'worker state changed' }])
    }
  }
})

test('every illegal move throws TQ_ERR_WORKER_ILLEGAL_TRANSITION and changes nothing', () => {
  for (const from of STATES) {
    for (const to of STATES.filter((state) => !TRANSITIONS[from].includes(state))) {
      const machine = reach(from, recorder().log)
      assert.throws(() => machine.transition(to, 'nope'), { code: 'TQ_ERR_WORKER_ILLEGAL_TRANSITION', message: `worker w cannot move from ${from} to ${to}` })
      assert.equal(machine.current, from)
    }
  }
})
