// What happens to an upstream (one instance's origin), told to those who hold something of it:
// the proxy's connection pools and WebSockets, the hand-off front, the health checker.
//   failed     a proxied request could not reach it
//   hung       it answers nothing (health-checker.ts): give up what waits on it
//   exhausted  it served its maxRequests
//   draining   out of rotation: end long-lived connections
//   retired    idle and about to stop: close the proxy's sockets to it

export type UpstreamEvent = 'failed' | 'hung' | 'exhausted' | 'draining' | 'retired'

type Listener = (origin: string) => void | Promise<void>

export class UpstreamEvents {
  readonly #listeners = new Map<UpstreamEvent, Set<Listener>>()

  on (event: UpstreamEvent, listener: Listener): void {
    const listeners = this.#listeners.get(event) ?? new Set()
    listeners.add(listener)
    this.#listeners.set(event, listeners)
  }

  /** Tells the listeners of `event`, and waits for them. */
  async emit (event: UpstreamEvent, origin: string): Promise<void> {
    await Promise.all([...this.#listeners.get(event) ?? []].map((listener) => listener(origin)))
  }
}
