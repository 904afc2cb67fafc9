// Cleanup that runs in reverse order, like nested try/finally: the last thing started stops
// first. node:test runs t.after() hooks in the order they were added, which would delete a
// project's folder while the server started on it is still running.
import type { TestContext } from 'node:test'

const stacks = new WeakMap<TestContext, Array<() => unknown>>()

export function defer (t: TestContext, cleanup: () => unknown): void {
  let stack = stacks.get(t)
  if (!stack) {
    const created: Array<() => unknown> = []
    stack = created
    stacks.set(t, created)
    t.after(async () => {
      let first: unknown
      for (const step of created.reverse()) {
        try {
          await step()
        } catch (err) {
          first ??= err
        }
      }
      if (first) throw first
    })
  }
  stack.push(cleanup)
}
