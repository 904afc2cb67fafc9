// The switch: replaces a worker's instances with a new version without failing a request. Every
// path that changes a worker goes through here (first start, dev hot reload, production reload),
// one switch per worker at a time; a request made during a switch is merged into exactly one more.
//
//   for each instance, one at a time:
//     start new instance on a fresh port -> ready (IPC 'ready' and GET /health 200, startTimeout)
//       -> in one synchronous step: new HEALTHY in rotation, old DRAINING out of it
//       -> wait until old has no request in flight (drainTimeout)
//       -> the host closes its idle keep-alive sockets to old
//       -> SIGTERM old -> SIGKILL after killTimeout -> port released (not reused at once)
//   a failure before the switch step kills the new instance; the old one keeps serving.
import type { BuildResult } from '../build/builder.js'
import { CoalescingQueue } from '../coalescing-queue.js'
import type { WorkerSpec } from '../config/worker-discovery.js'
import type { Logger } from '../logger.js'
import type { WorkerInstance } from '../process/worker-instance.js'
import type { RouteTable } from '../routing/route-table.js'

export interface SwitchPlan {
  spec: WorkerSpec
  /** Build the worker's source first (a source file or worker.yaml changed). */
  rebuild: boolean
  /** Replace the instances even when the build is unchanged (private/ or worker.yaml changed). */
  restart: boolean
  reason: string
  /** A build made elsewhere (`tqserver build`, then SIGHUP) to switch to, instead of the current one. */
  build?: BuildResult
  /** Replace only this instance (unhealthy too long, recycled), with the current version. */
  replace?: WorkerInstance
}

export type SwitchOutcome = 'switched' | 'unchanged' | 'build-failed' | 'start-failed'

/** What the switch needs from the supervisor, which owns builds and instances. */
export interface SwitchHost {
  readonly routes: RouteTable
  readonly log: Logger
  /** The server is shutting down: start nothing more. */
  readonly stopping: boolean
  /** The version serving now. */
  current: (name: string) => { spec: WorkerSpec, build: BuildResult | undefined } | undefined
  /** Builds a new version; undefined after a build error (recorded and logged by the host). */
  build: (spec: WorkerSpec) => Promise<BuildResult | undefined>
  /** A new instance of that version, registered but not started. */
  createInstance: (spec: WorkerSpec, build: BuildResult) => WorkerInstance
  /** Drains and stops an instance that is out of rotation (or never served). */
  retire: (instance: WorkerInstance, reason: string) => Promise<void>
  /** A switch ended (also when it changed nothing or failed), `durationMs` after it began. */
  finished: (name: string, outcome: SwitchOutcome, durationMs: number) => void
  /** The new version is current (`healthy`: every new instance started). */
  committed: (spec: WorkerSpec, build: BuildResult, healthy: boolean, reason: string) => void
  /**
   * A new instance failed to start. With `retry` (no version serves, as at first start) it is
   * restarted with backoff like a crash; otherwise it is stopped and forgotten.
   */
  startFailed: (instance: WorkerInstance, error: Error, retry: boolean) => Promise<void>
}

/**
 * A plan merged into a waiting one: the latest spec, reason and build, with the work both asked
 * for. A replacement of one instance carries that instance's spec, never a newer one, so it keeps
 * the waiting plan's; two different replacements, or one and a switch of every instance, become
 * a restart of every instance, which replaces each of them too (none is left behind, a hung one
 * out of rotation least of all).
 */
export function mergePlans (waiting: SwitchPlan, next: SwitchPlan): SwitchPlan {
  const latest = next.replace && !waiting.replace ? waiting : next
  const merged: SwitchPlan = { ...latest, rebuild: waiting.rebuild || next.rebuild, restart: waiting.restart || next.restart }
  const build = next.build ?? waiting.build
  if (build) merged.build = build
  if (waiting.replace !== next.replace) delete merged.replace
  return merged
}

export class WorkerSwitch {
  readonly #host: SwitchHost
  readonly #queues = new Map<string, CoalescingQueue<SwitchPlan, SwitchOutcome>>()

  constructor (host: SwitchHost) {
    this.#host = host
  }

  /** Switches the worker to the version `plan` describes, after any switch already running. */
  run (plan: SwitchPlan): Promise<SwitchOutcome> {
    let queue = this.#queues.get(plan.spec.name)
    if (!queue) {
      queue = new CoalescingQueue((next) => this.#timed(next), mergePlans)
      this.#queues.set(plan.spec.name, queue)
    }
    return queue.push(plan)
  }

  /** Resolves when no switch is running or queued. */
  async idle (): Promise<void> {
    await Promise.all([...this.#queues.values()].map((queue) => queue.idle()))
  }

  async #timed (plan: SwitchPlan): Promise<SwitchOutcome> {
    const started = performance.now()
    const outcome = await this.#switch(plan)
    this.#host.finished(plan.spec.name, outcome, performance.now() - started)
    return outcome
  }

  async #switch (plan: SwitchPlan): Promise<SwitchOutcome> {
    const host = this.#host
    const { spec } = plan
    const current = host.current(spec.name)
    let build = plan.build ?? current?.build
    if (plan.rebuild || !build) {
      build = await host.build(spec)
      if (!build) return 'build-failed'
    }
    const entry = host.routes.worker(spec.name)
    const olds = plan.replace ? [plan.replace] : [...entry?.instances ?? []]
    const serving = olds.some((instance) => instance.state.is('HEALTHY', 'UNHEALTHY'))
    if (!plan.restart && serving && build.id === current?.build?.id) return 'unchanged'

    const wanted = !spec.enabled ? 0 : plan.replace ? 1 : spec.instances
    let failed = false
    for (let i = 0; i < Math.max(wanted, olds.length); i++) {
      const old = olds[i]
      if (host.stopping) return 'unchanged'
      if (i < wanted) {
        const fresh = host.createInstance(spec, build)
        try {
          await fresh.start(plan.reason)
          // Stopped while starting: the server is shutting down, or the worker was removed.
          if (fresh.state.is('STOPPED')) return 'unchanged'
        } catch (err) {
          await host.startFailed(fresh, err as Error, !serving)
          if (serving) return 'start-failed'
          failed = true
        }
        // The switch, in one synchronous step: a request sees the old set or the new one.
        if (old?.state.is('HEALTHY', 'UNHEALTHY')) old.beginDrain('replaced by a new version')
        if (i === 0) host.routes.setWorker(spec, entry!.staticFiles)
        host.routes.publish(spec.name)
      } else if (i === 0) {
        host.routes.setWorker(spec, entry!.staticFiles)
      }
      if (old) await host.retire(old, spec.enabled ? 'replaced by a new version' : 'worker disabled')
    }
    host.committed(spec, build, !failed, plan.reason)
    if (failed) return 'start-failed'
    host.log.info({ worker: spec.name, build: build.id, instances: wanted, reason: plan.reason }, 'worker switched')
    return 'switched'
  }
}
