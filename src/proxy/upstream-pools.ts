// The one undici Agent that reaches every worker, with a connection pool per upstream kept by
// origin, so that the host, not the worker, ends the connections to an instance that leaves:
//   retired  its idle keep-alive sockets are closed by us: a worker closing a socket the proxy is
//            about to reuse fails that request (UND_ERR_SOCKET); requests still in flight then
//            have outlived drainTimeout and are cut off
//   hung     every request to it is given up at once: those still waiting for an answer get 503
//            (TQ_ERR_PROXY_HUNG) instead of waiting for upstreamTimeout
// undici >= 7.15 then drops the pool, so a new port per reload does not grow the agent.
// A pool has no connection limit by default (upstreamConnections: 0): with a fixed one, as many
// clients that read or send slowly would hold every connection and lock the route out
// (docs/security.md); a worker keeps idle connections cheaply.
import { Agent, Pool } from 'undici'
import type { RouteTable } from '../routing/route-table.js'
import type { UpstreamEvents } from '../routing/upstream-events.js'
import { TQ_ERR_PROXY_HUNG } from '../errors.js'

/** `connections`: upstreamConnections, connections per instance at most (0: no limit). */
export function createUpstreamAgent (upstreams: UpstreamEvents, routes: RouteTable, connections: number): Agent {
  const pools = new Map<string, Pool>()
  const agent = new Agent({
    connections: connections === 0 ? null : connections,
    pipelining: 1,
    factory: (origin, options) => {
      const pool = new Pool(origin, options)
      pools.set(new URL(String(origin)).origin, pool)
      return pool
    }
  })
  const take = (origin: string): Pool | undefined => {
    const pool = pools.get(origin)
    pools.delete(origin)
    // Already closed with the agent when the whole server shuts down.
    return !pool || pool.closed || pool.destroyed ? undefined : pool
  }
  upstreams.on('retired', async (origin) => {
    const pool = take(origin)
    // close() would wait for requests still in flight (for ever, for an event stream) and hold
    // the instance's stop.
    if (pool && routes.traffic.inflight(origin) > 0) await pool.destroy()
    else await pool?.close()
  })
  upstreams.on('hung', async (origin) => {
    // undici hands this error to each request's handler; the request router answers it.
    await take(origin)?.destroy(new TQ_ERR_PROXY_HUNG(routes.instanceAt(origin)?.spec.name ?? origin))
  })
  return agent
}
