// Runs jobs one at a time; a job pushed while one runs waits, and every later push merges into
// that waiting job (and shares its result) until it starts. So a burst of requests during a run
// costs exactly one more run. Used for switches (per worker), dev changes (per worker) and reloads.

export class CoalescingQueue<Job, Result> {
  readonly #run: (job: Job) => Promise<Result>
  readonly #merge: (waiting: Job, next: Job) => Job
  /** Settles when the last job pushed has finished. */
  #tail: Promise<unknown> = Promise.resolve()
  #waiting: { job: Job, result: Promise<Result> } | undefined

  constructor (run: (job: Job) => Promise<Result>, merge: (waiting: Job, next: Job) => Job) {
    this.#run = run
    this.#merge = merge
  }

  push (job: Job): Promise<Result> {
    if (this.#waiting) {
      this.#waiting.job = this.#merge(this.#waiting.job, job)
      return this.#waiting.result
    }
    const waiting: { job: Job, result: Promise<Result> } = { job, result: Promise.resolve() as Promise<Result> }
    waiting.result = this.#tail.then(() => {
      this.#waiting = undefined
      return this.#run(waiting.job)
    })
    this.#waiting = waiting
    this.#tail = waiting.result.catch(() => {})
    return waiting.result
  }

  /** Resolves when no job is running or waiting, also those pushed meanwhile. */
  async idle (): Promise<void> {
    let tail
    do {
      tail = this.#tail
      await tail
    } while (tail !== this.#tail)
  }
}
