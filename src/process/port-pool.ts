// Owns the worker port range: which ports are leased to instances and where the next search
// starts. Ports are handed out in turn around the range, so a port given back is not handed out
// again at once (the host may still hold sockets to it, and a client may still be connecting).
import { createServer } from 'node:net'
import { TQ_ERR_PORT_POOL_EXHAUSTED } from '../errors.js'
import type { PortRange } from '../config/server-config.js'

export class PortPool {
  readonly #from: number
  readonly #to: number
  readonly #host: string
  readonly #leased = new Set<number>()
  #next: number

  constructor (range: PortRange, host: string) {
    this.#from = range.from
    this.#to = range.to
    this.#host = host
    this.#next = range.from
  }

  /** Leases the next port, after the last one leased, that no other program holds. */
  async acquire (): Promise<number> {
    const size = this.#to - this.#from + 1
    let heldElsewhere = 0
    for (let tried = 0; tried < size; tried++) {
      const port = this.#next
      this.#next = port === this.#to ? this.#from : port + 1
      if (this.#leased.has(port)) continue
      // Lease before the probe so that concurrent acquire() calls never pick the same port.
      this.#leased.add(port)
      if (await isPortFree(port, this.#host)) return port
      this.#leased.delete(port)
      heldElsewhere++
    }
    throw new TQ_ERR_PORT_POOL_EXHAUSTED(`${this.#from}-${this.#to}`, this.#leased.size, heldElsewhere)
  }

  /**
   * True when a listen on `port` fails. Asked once the process it was leased to is gone, so what
   * holds it then is another program's socket. No need to keep it out of the pool: acquire()
   * moves on from it, and checks it again when its turn comes back.
   */
  async isHeldElsewhere (port: number): Promise<boolean> {
    return !await isPortFree(port, this.#host)
  }

  /** Gives a port back once the process that used it has exited. */
  release (port: number): void {
    this.#leased.delete(port)
  }

  get leased (): number {
    return this.#leased.size
  }

  get size (): number {
    return this.#to - this.#from + 1
  }
}

/** True when nothing listens on host:port (checked by binding it for a moment). */
export function isPortFree (port: number, host: string): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = createServer()
    probe.unref()
    probe.once('error', () => resolve(false))
    probe.listen({ port, host, exclusive: true }, () => probe.close(() => resolve(true)))
  })
}
