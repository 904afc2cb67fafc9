// A request body on its way to a worker. Up to `buffer` bytes are read into memory before a
// connection to the worker is taken (nginx's proxy_request_buffering, for bodies this small): a
// body that ends within them is sent whole, so a client that sends slowly holds no connection to
// the worker while it does. A longer body is streamed from there on, with backpressure. Either way
// it is counted against the worker's bodyLimit (a chunked body, or a length that lies: 413), and a
// client that pauses within it for longer than `idleTimeout` gets 408.
import type { IncomingMessage } from 'node:http'
import { Transform, type Readable } from 'node:stream'
import type { ProxyError } from './proxy-errors.js'
import { TQ_ERR_PROXY_BODY_TIMEOUT, TQ_ERR_PROXY_BODY_TOO_LARGE } from '../errors.js'

export interface BodyRules {
  worker: string
  /** Largest body, in bytes (0: no limit). */
  limit: number
  /** Bytes read before the worker is reached. */
  buffer: number
  /** Longest pause within the body (ms). */
  idleTimeout: number
}

/** The whole body, or a stream of it once `buffer` bytes have come; an error to answer; undefined: the client went away. */
export type BodyResult = Buffer | Readable | ProxyError | undefined

export function readBody (req: IncomingMessage, rules: BodyRules): Promise<BodyResult> {
  if (rules.buffer === 0) return Promise.resolve(streamRest(req, [], 0, rules))
  return new Promise((resolve) => {
    const chunks: Buffer[] = []
    let seen = 0
    const declared = Number(req.headers['content-length'] ?? -1)
    const settle = (result: BodyResult) => {
      clearTimeout(idle)
      req.off('data', onData).off('end', onEnd).off('close', onClose)
      resolve(result)
    }
    const idle = setTimeout(() => settle(bodyTimeout(rules)), rules.idleTimeout)
    const onData = (chunk: Buffer) => {
      seen += chunk.length
      if (rules.limit > 0 && seen > rules.limit) return settle(new TQ_ERR_PROXY_BODY_TOO_LARGE(rules.worker, rules.limit) as ProxyError)
      chunks.push(chunk)
      if (seen < rules.buffer || seen === declared) return void idle.refresh()
      // Still in this 'data' event: nothing can be emitted before the stream takes over.
      settle(streamRest(req, chunks, seen, rules))
    }
    const onEnd = () => settle(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, seen))
    const onClose = () => settle(undefined)
    req.on('data', onData).once('end', onEnd).once('close', onClose)
  })
}

/** The chunks read so far, then the rest of the body as it comes. */
function streamRest (req: IncomingMessage, head: Buffer[], seen: number, rules: BodyRules): Readable {
  // A pause while the worker is not reading (backpressure, req paused by pipe) is not the client's.
  const idle = setTimeout(function check () {
    if (req.readableFlowing === false) idle.refresh()
    else body.destroy(bodyTimeout(rules))
  }, rules.idleTimeout)
  const body = new Transform({
    transform (chunk: Buffer, _encoding, done) {
      seen += chunk.length
      if (rules.limit > 0 && seen > rules.limit) return done(new TQ_ERR_PROXY_BODY_TOO_LARGE(rules.worker, rules.limit))
      idle.refresh()
      done(null, chunk)
    }
  })
  body.once('close', () => clearTimeout(idle))
  req.once('end', () => clearTimeout(idle))
  for (const chunk of head) body.push(chunk)
  req.pipe(body)
  return body
}

function bodyTimeout (rules: BodyRules): ProxyError {
  return new TQ_ERR_PROXY_BODY_TIMEOUT(rules.worker, rules.idleTimeout) as ProxyError
}
