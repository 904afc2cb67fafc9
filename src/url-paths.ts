// Request paths as the host sees them: the path without its query string, whether a path is safe
// to forward, the paths the host answers itself (which no worker may take), and the path of an
// absolute-form target.

/** Paths the host answers itself; a worker there would never be reached. */
export const HOST_ROUTES = new Set(['/health', '/livez', '/readyz', '/metrics'])
/** The host's own tools (live reload, the dashboard's stream) live under this prefix. */
export const HOST_PREFIX = '/__tqserver'
/** POST here reloads the server (`tqserver reload --url`), as SIGHUP does. */
export const RELOAD_PATH = `${HOST_PREFIX}/reload`

/** The path of a request target: everything before the query string. */
export function pathOf (url: string): string {
  const queryAt = url.indexOf('?')
  return queryAt === -1 ? url : url.slice(0, queryAt)
}

/** Whether the host answers `url` itself (its path, whatever the query string). */
export function isHostPath (url: string): boolean {
  const path = pathOf(url)
  return HOST_ROUTES.has(path) || path.startsWith(HOST_PREFIX)
}

/**
 * True when a request path is safe to forward: valid percent-encoding and no `..` segment, also
 * encoded or with backslashes. Most paths need no decoding at all.
 */
export function isSafePath (path: string): boolean {
  if (!/[.%\\]/.test(path)) return true
  let decoded: string
  try {
    decoded = decodeURIComponent(path)
  } catch {
    return false
  }
  return !decoded.replaceAll('\\', '/').split('/').includes('..')
}

/**
 * The parts of an absolute-form request target (`http://host:8080/path?q`, scheme and host in any
 * case): its authority, and its path and query in origin-form (`/` when it has no path). Undefined
 * for any other target.
 */
export function splitAbsoluteForm (target: string): { authority: string, path: string } | undefined {
  const match = /^https?:\/\/(?:[^/?#@]*@)?([^/?#@]+)([^#]*)/i.exec(target)
  if (!match) return undefined
  // userinfo@ is no part of the Host (RFC 9110 4.2.4 deprecates it in http URIs).
  const rest = match[2]!
  return { authority: match[1]!, path: rest.startsWith('/') ? rest : `/${rest}` }
}
