// Who may see /health details (pids, ports, errors, output lines, events): requests from this
// machine, or carrying the configured token. Everyone else gets the overall status only.
import { timingSafeEqual } from 'node:crypto'

/** The parts of a request (a Fastify request has them) that decide. */
export interface AccessRequest {
  socket: { remoteAddress?: string | undefined }
  headers: Record<string, string | string[] | undefined>
  query: unknown
}

const LOOPBACK = /^(127\.\d+\.\d+\.\d+|::1|::ffff:127\.\d+\.\d+\.\d+)$/

export function mayReadDetails (request: AccessRequest, token: string): boolean {
  const presented = presentedToken(request)
  if (token !== '' && presented !== undefined && sameSecret(presented, token)) return true
  // A request relayed by a proxy on this machine comes from loopback too, but is not local.
  if (request.headers['x-forwarded-for'] !== undefined || request.headers.forwarded !== undefined) return false
  return LOOPBACK.test(request.socket.remoteAddress ?? '')
}

function presentedToken (request: AccessRequest): string | undefined {
  const header = request.headers.authorization
  if (typeof header === 'string' && header.startsWith('Bearer ')) return header.slice('Bearer '.length)
  const { token } = (request.query ?? {}) as { token?: unknown }
  return typeof token === 'string' ? token : undefined
}

function sameSecret (given: string, expected: string): boolean {
  const a = Buffer.from(given)
  const b = Buffer.from(expected)
  return a.length === b.length && timingSafeEqual(a, b)
}
