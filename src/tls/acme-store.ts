// The ACME files under <root>/.tqserver/certs/ (folder 0700, files 0600): the account key, and per
// CA one file holding a certificate's private key and chain, so that one rename replaces both and
// no crash can leave a key beside a certificate it does not belong to.
import { chmod, mkdir, open, readFile, rename, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { checkCertificate, type Certificate } from './certificate.js'

/** A certificate and the facts read from its first (leaf) certificate. */
export interface StoredCertificate extends Certificate {
  /** The DNS names it is valid for (subjectAltName). */
  domains: string[]
  notBefore: number
  notAfter: number
  serial: string
}

const PEM_BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----[\s\S]+?-----END \1-----\n?/g

export class AcmeStore {
  readonly dir: string
  readonly accountKeyFile: string
  readonly certificateFile: string

  /** `directory`'s host names the certificate file: a staging CA's certificate is never served for production. */
  constructor (root: string, directory: string) {
    this.dir = join(root, '.tqserver', 'certs')
    this.accountKeyFile = join(this.dir, 'account.key')
    this.certificateFile = join(this.dir, `${new URL(directory).host.replace(/[^A-Za-z0-9.-]/g, '_')}.pem`)
  }

  async readAccountKey (): Promise<string | undefined> {
    return readFile(this.accountKeyFile, 'utf8').catch(ifMissing(undefined))
  }

  async writeAccountKey (key: string): Promise<void> {
    await this.#writeAtomic(this.accountKeyFile, key)
  }

  /** The stored certificate; undefined if there is none. Throws if the file is not a key and its chain. */
  async readCertificate (): Promise<StoredCertificate | undefined> {
    const text = await readFile(this.certificateFile, 'utf8').catch(ifMissing(undefined))
    if (text === undefined) return undefined
    const blocks = text.match(PEM_BLOCK) ?? []
    const key = blocks.filter((block) => block.includes('PRIVATE KEY-----')).join('')
    const cert = blocks.filter((block) => block.startsWith('-----BEGIN CERTIFICATE-----')).join('')
    return describeCertificate({ cert, key })
  }

  async writeCertificate (certificate: Certificate): Promise<void> {
    await this.#writeAtomic(this.certificateFile, withNewline(certificate.key) + withNewline(certificate.cert))
  }

  /** Written to a temp file (mode 0600 from creation, flushed) and renamed over `path`. */
  async #writeAtomic (path: string, content: string): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 })
    await chmod(this.dir, 0o700) // mkdir leaves the mode of a folder that exists alone
    const temp = `${path}.${process.pid}.tmp`
    await rm(temp, { force: true }) // left by a crash: writeFile's mode applies only to a new file
    const file = await open(temp, 'wx', 0o600)
    try {
      await file.writeFile(content)
      await file.sync()
    } finally {
      await file.close()
    }
    await rename(temp, path)
  }
}

/** The facts of `certificate`'s leaf; throws if it cannot be served (not PEM, `key` not its key). */
export function describeCertificate (certificate: Certificate): StoredCertificate {
  const info = checkCertificate(certificate)
  return { ...certificate, domains: info.names, notBefore: info.notBefore, notAfter: info.notAfter, serial: info.serialNumber }
}

function withNewline (pem: string): string {
  return pem.endsWith('\n') ? pem : `${pem}\n`
}

function ifMissing<T> (value: T): (err: NodeJS.ErrnoException) => T {
  return (err) => {
    if (err.code === 'ENOENT') return value
    throw err
  }
}
