// Browser live reload in dev: pages get a small script that listens to a server-sent event stream
// and reloads the page when a worker has switched to a new version (or its public/ files changed).
import type { OutgoingHttpHeaders } from 'node:http'
import { pipeline, Transform, type Readable } from 'node:stream'
import { HOST_PREFIX } from '../url-paths.js'

export const LIVE_RELOAD_EVENTS = `${HOST_PREFIX}/live-reload`
export const LIVE_RELOAD_SCRIPT_PATH = `${HOST_PREFIX}/live-reload.js`

export const LIVE_RELOAD_SCRIPT = `// tqserver dev: reload this page when a worker switches to a new version.
(() => {
  const events = new EventSource(${JSON.stringify(LIVE_RELOAD_EVENTS)})
  events.addEventListener('reload', () => location.reload())
})()
`

/** Appended to HTML pages (after </html> is fine for browsers). */
export const LIVE_RELOAD_TAG = `\n<script src="${LIVE_RELOAD_SCRIPT_PATH}"></script>\n`

export interface ReloadEvent { worker: string, reason: string }

/** A 200 HTML page the script can be appended to: not compressed, so plain text at its end. */
export function canTakeReloadScript (statusCode: number, headers: OutgoingHttpHeaders): boolean {
  const type = headers['content-type']
  return statusCode === 200 && typeof type === 'string' && type.startsWith('text/html') && headers['content-encoding'] === undefined
}

/** The payload with the live-reload script tag appended (after </html> is fine for browsers). */
export function withReloadScript (payload: unknown): unknown {
  if (typeof payload === 'string') return payload + LIVE_RELOAD_TAG
  if (Buffer.isBuffer(payload)) return Buffer.concat([payload, Buffer.from(LIVE_RELOAD_TAG)])
  if (payload && typeof (payload as Readable).pipe === 'function') {
    const appended = new Transform({
      transform (chunk, _encoding, done) { done(null, chunk) },
      flush (done) { done(null, LIVE_RELOAD_TAG) }
    })
    // pipeline, not pipe: an error or an aborted client tears down both streams.
    pipeline(payload as Readable, appended, () => {})
    return appended
  }
  return payload
}
