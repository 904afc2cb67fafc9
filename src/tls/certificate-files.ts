// A certificate served from files (tls.cert, tls.key): read and checked at start, and read again
// whenever either file changes, so that a renewed certificate (certbot, cert-manager, a copy by
// hand) is served to new connections without a restart. A pair that cannot be served is refused
// and the one already loaded stays.
import { unwatchFile, watchFile } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { relative } from 'node:path'
import type { Logger } from '../logger.js'
import { TQ_ERR_TLS_CERTIFICATE } from '../errors.js'
import { checkCertificate, type Certificate, type CertificateInfo } from './certificate.js'

/**
 * How often the files are looked at. Polled with stat rather than watched: stat follows symlinks,
 * and renewals swap them (certbot's live/ links, a Kubernetes secret's ..data), which a watch on
 * the files, or on their folder, does not see.
 */
const POLL_MS = 1_000
/** The two files of a renewal are written one after the other: read them once both have settled. */
const SETTLE_MS = 200

export interface LoadedCertificate {
  certificate: Certificate
  info: CertificateInfo
}

/** Reads and checks the pair; throws TQ_ERR_TLS_CERTIFICATE naming the files and the reason. */
export async function loadCertificateFiles (certPath: string, keyPath: string, root: string): Promise<LoadedCertificate> {
  const where = `${relative(root, certPath)} and ${relative(root, keyPath)}`
  let certificate: Certificate
  try {
    const [cert, key] = await Promise.all([readFile(certPath, 'utf8'), readFile(keyPath, 'utf8')])
    certificate = { cert, key }
  } catch (err) {
    throw new TQ_ERR_TLS_CERTIFICATE(where, (err as NodeJS.ErrnoException).code === 'ENOENT' ? `${relative(root, (err as NodeJS.ErrnoException).path ?? '')} does not exist` : (err as Error).message)
  }
  let info: CertificateInfo
  try {
    info = checkCertificate(certificate)
  } catch (err) {
    throw new TQ_ERR_TLS_CERTIFICATE(where, (err as Error).message)
  }
  // Every client would refuse it: a renewal gone wrong, never one to replace a working certificate.
  if (info.notAfter <= Date.now()) throw new TQ_ERR_TLS_CERTIFICATE(where, `the certificate expired on ${new Date(info.notAfter).toISOString()}`)
  return { certificate, info }
}

/**
 * Calls `changed` with each new pair the files hold once it has been checked, `refused` with the
 * error when the files changed to something that cannot be served, and `unchanged` when they hold
 * the pair served already (restored after a refusal, say). Returns the stop function.
 */
export function watchCertificateFiles (
  paths: { cert: string, key: string, root: string },
  current: Certificate,
  handlers: { changed: (loaded: LoadedCertificate) => void, refused: (err: Error) => void, unchanged: () => void },
  log: Logger
): () => void {
  let served = current
  let timer: NodeJS.Timeout | undefined
  const reread = async () => {
    try {
      const loaded = await loadCertificateFiles(paths.cert, paths.key, paths.root)
      if (loaded.certificate.cert === served.cert && loaded.certificate.key === served.key) return handlers.unchanged()
      served = loaded.certificate
      handlers.changed(loaded)
    } catch (err) {
      log.error({ code: (err as { code?: string }).code }, `${(err as Error).message}; the certificate loaded before is still served`)
      handlers.refused(err as Error)
    }
  }
  const onChange = () => {
    clearTimeout(timer)
    timer = setTimeout(() => void reread(), SETTLE_MS)
  }
  for (const path of [paths.cert, paths.key]) watchFile(path, { interval: POLL_MS, persistent: false }, onChange)
  return () => {
    clearTimeout(timer)
    for (const path of [paths.cert, paths.key]) unwatchFile(path, onChange)
  }
}
