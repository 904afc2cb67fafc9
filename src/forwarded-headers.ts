// The X-Forwarded-* headers a worker gets, set the same way by the host's proxy and by a worker
// serving a handed-off connection.
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http'

/**
 * X-Forwarded-For (the client's address appended), -Proto, -Host, and -Prefix (the route; none
 * for '/', and never the client's own).
 */
export function forwardingHeaders (req: IncomingMessage, route: string, protocol: string): IncomingHttpHeaders {
  const client = req.socket.remoteAddress ?? ''
  const prior = req.headers['x-forwarded-for']
  const headers: IncomingHttpHeaders = {
    'x-forwarded-for': prior ? `${String(prior)}, ${client}` : client,
    'x-forwarded-proto': protocol,
    'x-forwarded-host': req.headers.host ?? ''
  }
  if (route !== '/') headers['x-forwarded-prefix'] = route
  return headers
}
