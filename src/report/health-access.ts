// Who may see /health details (pids, ports, errors, output lines, events) and /metrics: requests
// from this machine, or carrying the configured token. Everyone else gets the overall status only.
import { timingSafeEqual } from 'node:crypto'
import type { IncomingHttpHeaders } from 'node:http'
import { isLoopback, namedAddresses } from '../forwarded-headers.js'

/** The parts of a request (a Fastify request has them) that decide. */
export interface AccessRequest {
  socket: { remoteAddress?: string | undefined }
  headers: IncomingHttpHeaders
  query: unknown
}

export interface AccessOptions {
  /**
   * Also take the token as `?token=` (the dashboard's page and its event stream, which a browser
   * opens without headers). /metrics takes it in the header only: query strings end up in logs.
   * @default true
   */
  tokenInQuery?: boolean
}

export function mayReadDetails (request: AccessRequest, token: string, { tokenInQuery = true }: AccessOptions = {}): boolean {
  const presented = presentedToken(request, tokenInQuery)
  if (token !== '' && presented !== undefined && sameSecret(presented, token)) return true
  return isLocal(request)
}

/**
 * From this machine: every address the request names is loopback, the peer and whatever its
 * forwarding headers say. A proxy on this machine relaying a client from elsewhere names that
 * client, so its requests are not local, trusted (trustProxy) or not; nor is one whose headers
 * name something that is not an address at all.
 */
export function isLocal (request: AccessRequest): boolean {
  return namedAddresses(request).every(isLoopback)
}

/** The Authorization scheme is case-insensitive (RFC 9110 11.1): Bearer, bearer, BEARER. */
function presentedToken (request: AccessRequest, tokenInQuery: boolean): string | undefined {
  const header = request.headers.authorization
  const bearer = header === undefined ? null : /^bearer +(.+)$/i.exec(header)
  if (bearer) return bearer[1]!.trim()
  if (!tokenInQuery) return undefined
  const { token } = (request.query ?? {}) as { token?: unknown }
  return typeof token === 'string' ? token : undefined
}

function sameSecret (given: string, expected: string): boolean {
  const a = Buffer.from(given)
  const b = Buffer.from(expected)
  return a.length === b.length && timingSafeEqual(a, b)
}
