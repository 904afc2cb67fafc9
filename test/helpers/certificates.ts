// Self-signed certificates for the TLS tests and benchmarks, made with openssl (an EC P-256 key,
// as most servers use now), valid for localhost and 127.0.0.1.
import { execFile } from 'node:child_process'
import { X509Certificate } from 'node:crypto'
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
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

/** A pair whose certificate expired in 2020 (openssl req cannot date one back: openssl ca can). */
export async function makeExpiredCertificate (certPath: string, keyPath: string): Promise<MadeCertificate> {
  const dir = await mkdtemp(join(tmpdir(), 'tq-expired-'))
  try {
    await writeFile(join(dir, 'index.txt'), '')
    await writeFile(join(dir, 'serial'), '01\n')
    await writeFile(join(dir, 'ca.cnf'), `[ca]\ndefault_ca = d\n[d]\ndatabase = ${dir}/index.txt\nnew_certs_dir = ${dir}\nserial = ${dir}/serial\ndefault_md = sha256\npolicy = p\ncopy_extensions = copy\n[p]\ncommonName = supplied\n`)
    await mkdir(dirname(certPath), { recursive: true })
    await run('openssl', ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj', '/CN=localhost',
      '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1', '-keyout', keyPath, '-out', join(dir, 'request.csr')])
    await run('openssl', ['ca', '-batch', '-notext', '-config', join(dir, 'ca.cnf'), '-selfsign', '-keyfile', keyPath, '-in', join(dir, 'request.csr'),
      '-out', certPath, '-startdate', '20200101000000Z', '-enddate', '20200201000000Z'])
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
  const [cert, key] = await Promise.all([readFile(certPath, 'utf8'), readFile(keyPath, 'utf8')])
  return { cert, key, serial: new X509Certificate(cert).serialNumber }
}
