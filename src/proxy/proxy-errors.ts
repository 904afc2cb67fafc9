// What a client gets when its request cannot reach a worker: 404, 502, 503 or 504 with a JSON body
// (an HTML page for a browser), never a bare 500.
import { STATUS_CODES } from 'node:http'
import { TQ_ERR_PROXY_BAD_GATEWAY, TQ_ERR_PROXY_TIMEOUT } from '../errors.js'
import { escapeHtml } from '../html.js'

export interface ProxyError extends Error {
  code: string
  statusCode: number
}

/** Maps a transport failure of the forwarder (undici's error, or its cause) to 502, or 504 for a timeout. */
export function transportError (worker: string, error: Error): ProxyError {
  const cause = (error.cause ?? error) as Error & { code?: string }
  const detail = cause.code ?? cause.message
  return /TIMEOUT/.test(cause.code ?? '')
    ? new TQ_ERR_PROXY_TIMEOUT(worker, detail) as ProxyError
    : new TQ_ERR_PROXY_BAD_GATEWAY(worker, detail) as ProxyError
}

/**
 * A 503 is over soon (a restart, a replacement, usually within a second or two): Retry-After says
 * when to try again (RFC 9110 10.2.3), so that well-behaved clients neither give up nor hammer.
 */
const RETRY_AFTER_SECONDS = 1

/** The Retry-After header an error answer carries, if any. */
export function retryAfter (error: ProxyError): { 'retry-after'?: string } {
  return error.statusCode === 503 ? { 'retry-after': String(RETRY_AFTER_SECONDS) } : {}
}

export interface ErrorBody {
  statusCode: number
  code: string
  error: string
  message: string
}

/** The JSON body, in the shape of Fastify's own error replies. */
export function errorBody (error: ProxyError): ErrorBody {
  return { statusCode: error.statusCode, code: error.code, error: STATUS_CODES[error.statusCode] ?? 'Error', message: error.message }
}

export function errorPage (error: ProxyError): string {
  const title = `${error.statusCode} ${STATUS_CODES[error.statusCode] ?? 'Error'}`
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title}</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:40rem;margin:4rem auto;padding:0 1rem;color:#222}code{color:#666}</style>
</head><body><h1>${title}</h1><p>${escapeHtml(error.message)}</p><p><code>${error.code}</code></p></body></html>
`
}
