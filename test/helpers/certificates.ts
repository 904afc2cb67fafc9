// Self-signed certificates for the TLS tests and benchmarks, made with openssl (an EC P-256 key,
// as most servers use now), valid for localhost and 127.0.0.1.
import { execFile } from 'node:child_process'
import { X509Certificate } from 'node:crypto'
import { mkdir, readFile } from 'node:fs/promises'
import { dirname } from 'node:path'
import { promisify } from 'node:util'

const run = promisify(execFile)

export interface MadeCertificate {
  cert: string
  key: string
  /** The certificate's serial number, as Node's X509Certificate gives it: how a test tells two apart. */
  serial: string
}

/** Writes a new certificate and key to `certPath` and `keyPath` (overwriting them). */
export async function makeCertificate (certPath: string, keyPath: string, { days = 30, name = 'localhost' } = {}): Promise<MadeCertificate> {
  await mkdir(dirname(certPath), { recursive: true })
  await mkdir(dirname(keyPath), { recursive: true })
  await run('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', String(days),
    '-subj', `/CN=${name}`, '-addext', `subjectAltName=DNS:${name},IP:127.0.0.1`, '-keyout', keyPath, '-out', certPath])
  const [cert, key] = await Promise.all([readFile(certPath, 'utf8'), readFile(keyPath, 'utf8')])
  return { cert, key, serial: new X509Certificate(cert).serialNumber }
}
