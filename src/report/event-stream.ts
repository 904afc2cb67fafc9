// Server-sent event streams to browsers (live reload, the dashboard): open streams stay in a set,
// get every event sent, and are ended on close() so they never hold the server's shutdown.
import type { ServerResponse } from 'node:http'

export class EventStreamHub {
  readonly #clients = new Set<ServerResponse>()

  /** Turns a response into an event stream that stays open until the client or the server goes. */
  attach (res: ServerResponse): void {
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store' })
    res.write(': tqserver\n\n')
    this.#clients.add(res)
    res.once('close', () => this.#clients.delete(res))
  }

  /** Sends to every client, or to the one given. */
  send (event: string, data: unknown, to?: ServerResponse): void {
    const message = `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`
    if (to) to.write(message)
    else for (const client of this.#clients) client.write(message)
  }

  get size (): number {
    return this.#clients.size
  }

  close (): void {
    for (const client of this.#clients) client.end()
    this.#clients.clear()
  }
}
