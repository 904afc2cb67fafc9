// Counts a request body on its way to a worker and stops it past the worker's bodyLimit. A body
// that declares its length is refused before it is read (in the router); this catches the rest
// (chunked bodies, and a length that lies).
import { Transform, pipeline, type Readable } from 'node:stream'
import { TQ_ERR_PROXY_BODY_TOO_LARGE } from '../errors.js'

export function limitBody (body: Readable, limit: number, worker: string): Readable {
  let seen = 0
  const counted = new Transform({
    transform (chunk: Buffer, _encoding, done) {
      seen += chunk.length
      if (seen > limit) return done(new TQ_ERR_PROXY_BODY_TOO_LARGE(worker, limit))
      done(null, chunk)
    }
  })
  pipeline(body, counted, () => {})
  return counted
}
