// The plain-HTTP port beside HTTPS (tls.httpPort): it answers ACME HTTP-01 challenges (RFC 8555
// 8.3), so that a CA can check the server holds its domain, and redirects every other request to
// the same URL over HTTPS with 308, which keeps the method and body (RFC 9110 15.4.9).
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { PublicServerLimits } from './public-server.js'

const CHALLENGE_PREFIX = '/.well-known/acme-challenge/'
/** A Host header: a name or IPv4 address, or an IPv6 address in brackets, and maybe a port. */
const HOST = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:[0-9]{1,5})?$/

export interface RedirectServerOptions extends PublicServerLimits {
  /** The HTTPS port: left out of the redirect's URL when it is 443. */
  httpsPort: () => number
  /** The key authorization for an HTTP-01 token, if an order waits on it. */
  challengeAnswer: (token: string) => string | undefined
}

export function createRedirectServer ({ httpsPort, challengeAnswer, headersTimeout, requestTimeout }: RedirectServerOptions): Server {
  return createServer({ headersTimeout, requestTimeout }, (req: IncomingMessage, res: ServerResponse) => {
    const url = req.url ?? '/'
    if (url.startsWith(CHALLENGE_PREFIX) && (req.method === 'GET' || req.method === 'HEAD')) {
      const answer = challengeAnswer(url.slice(CHALLENGE_PREFIX.length))
      return answer === undefined ? reply(res, 404, 'no ACME challenge waits on this token\n') : reply(res, 200, answer)
    }
    const host = HOST.exec(req.headers.host ?? '')
    if (!host || !url.startsWith('/')) return reply(res, 400, 'a redirect to HTTPS needs a Host header and a path\n')
    const port = httpsPort()
    res.writeHead(308, { location: `https://${host[1]!}${port === 443 ? '' : `:${port}`}${url}`, 'content-length': 0, 'cache-control': 'no-store' })
    res.end()
  })
}

function reply (res: ServerResponse, status: number, text: string): void {
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' })
  res.end(text)
}
