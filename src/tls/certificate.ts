// A certificate and its private key as served on the port, checked before anything serves them:
// a pair that TLS could not use is refused with the reason, never half-installed.
import { createPrivateKey, X509Certificate } from 'node:crypto'
import { createSecureContext } from 'node:tls'

/** PEM text: the chain (the server's certificate first) and its private key. */
export interface Certificate {
  cert: string
  key: string
}

/** What /health and the log say of a certificate. */
export interface CertificateInfo {
  /** The names it is valid for (subjectAltName DNS names and addresses, else its CN). */
  names: string[]
  issuer: string
  /** Epoch ms. */
  notBefore: number
  notAfter: number
  serialNumber: string
}

export const DAY_MS = 86_400_000

/** Describes a certificate pair, or throws an Error whose message says, in a few words, what is wrong. */
export function checkCertificate ({ cert, key }: Certificate): CertificateInfo {
  let leaf: X509Certificate
  try {
    leaf = new X509Certificate(cert)
  } catch {
    throw new Error('the certificate file holds no PEM certificate')
  }
  let privateKey
  try {
    privateKey = createPrivateKey(key)
  } catch {
    throw new Error('the key file holds no PEM private key (or one protected by a passphrase)')
  }
  if (!leaf.checkPrivateKey(privateKey)) throw new Error('the private key does not belong to the certificate')
  try {
    createSecureContext({ cert, key, minVersion: 'TLSv1.2' })
  } catch (err) {
    throw new Error(`TLS cannot use it: ${(err as Error).message}`)
  }
  return {
    names: namesOf(leaf),
    issuer: leaf.issuer.replace(/\n/g, ', '),
    notBefore: Date.parse(leaf.validFrom),
    notAfter: Date.parse(leaf.validTo),
    serialNumber: leaf.serialNumber
  }
}

/** Whole days from now until `notAfter` (negative once expired). */
export function daysLeft (notAfter: number, now = Date.now()): number {
  return Math.floor((notAfter - now) / DAY_MS)
}

function namesOf (leaf: X509Certificate): string[] {
  const alt = leaf.subjectAltName
  if (alt) return alt.split(', ').map((entry) => entry.replace(/^(DNS|IP Address):/, ''))
  const cn = /^CN=(.*)$/m.exec(leaf.subject)
  return cn ? [cn[1]!] : []
}
