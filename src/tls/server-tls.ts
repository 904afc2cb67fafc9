// The TLS the port is served with: the certificate (from files, certificate-files.ts, or from an
// ACME CA, acme.ts), what /health and /metrics say of it, and the session ticket keys. Every
// process serving the port (the control plane and each data plane) gets the same material, so
// that a client resumes its session whichever process the kernel hands its next connection to.
import { randomBytes } from 'node:crypto'
import { access, constants } from 'node:fs/promises'
import { resolve } from 'node:path'
import type { ServerConfig } from '../config/schema.js'
import type { Logger } from '../logger.js'
import { TQ_ERR_CONFIG_INVALID_VALUE } from '../errors.js'
import { AcmeCertificates, type AcmeStatus } from './acme.js'
import { checkCertificate, daysLeft, type Certificate, type CertificateInfo } from './certificate.js'
import { loadCertificateFiles, watchCertificateFiles, type LoadedCertificate } from './certificate-files.js'

/** Session ticket keys are replaced this often: a stolen key opens at most this much past traffic. */
const TICKET_KEY_ROTATION_MS = 12 * 3_600_000

/** What a process needs to serve TLS: the certificate pair and the session ticket keys (48 bytes, base64). */
export interface TlsMaterial extends Certificate {
  ticketKeys: string
}

export interface TlsReport {
  source: 'files' | 'acme'
  /** The certificate served now, if any yet. */
  certificate: (CertificateInfo & { daysLeft: number, loadedAt: number }) | null
  /** The last change that was refused (a bad file) or the last failed issuance or renewal. */
  lastError: { message: string, at: number } | null
  /** Where ACME stands: renewal time, last renewal, next attempt. */
  acme?: AcmeStatus
}

export class ServerTls {
  readonly #config: ServerConfig['tls']
  readonly #root: string
  readonly #log: Logger
  #loaded: (LoadedCertificate & { at: number }) | undefined
  #ticketKeys = randomBytes(48).toString('base64')
  #lastError: TlsReport['lastError'] = null
  readonly #listeners = new Set<(material: TlsMaterial) => void>()
  readonly #stops: Array<() => void> = []
  readonly #acme: AcmeCertificates | undefined

  constructor (config: ServerConfig['tls'], root: string, log: Logger) {
    this.#config = config
    this.#root = root
    const acme = config.acme.domains.length > 0
    this.#log = log.child({ tls: acme ? 'acme' : 'files' })
    this.#acme = acme
      ? new AcmeCertificates(config.acme, { root, log, onCertificate: (certificate) => this.#use({ certificate, info: checkCertificate(certificate) }) })
      : undefined
  }

  /** True when server.yaml asks for TLS at all. */
  static wanted (config: ServerConfig['tls']): boolean {
    return config.cert !== '' || config.acme.domains.length > 0
  }

  /**
   * Before anything listens. Files: loads the certificate (throws TQ_ERR_TLS_CERTIFICATE if it
   * cannot be served) and follows changes. ACME: checks what can be checked without the CA.
   */
  async prepare (): Promise<void> {
    this.#rotateTicketKeys()
    if (this.#acme) return this.#checkAcmeCa()
    const cert = resolve(this.#root, this.#config.cert)
    const key = resolve(this.#root, this.#config.key)
    this.#use(await loadCertificateFiles(cert, key, this.#root))
    this.#stops.push(watchCertificateFiles({ cert, key, root: this.#root }, this.#loaded!.certificate, {
      changed: (loaded) => {
        this.#use(loaded)
        this.#log.info({ names: loaded.info.names, notAfter: new Date(loaded.info.notAfter).toISOString() }, 'certificate files changed: the new certificate is served to new connections')
      },
      refused: (err) => { this.#lastError = { message: err.message, at: Date.now() } },
      unchanged: () => {
        if (this.#lastError) this.#log.info({}, 'certificate files hold the served certificate again: the refusal is cleared')
        this.#lastError = null
      }
    }, this.#log))
  }

  /**
   * Once the plain port listens (the CA checks the domain there). ACME: the stored certificate, or
   * one issued now, or none yet if issuance failed (retried in the background). Files: nothing.
   */
  async obtain (): Promise<void> {
    if (!this.#acme) return
    this.#stops.push(() => this.#acme!.close())
    const first = await this.#acme.start()
    if (first) this.#use({ certificate: first, info: checkCertificate(first) })
  }

  /** What to serve now; undefined until a first certificate is there. */
  get material (): TlsMaterial | undefined {
    return this.#loaded && { ...this.#loaded.certificate, ticketKeys: this.#ticketKeys }
  }

  /** `listener` gets the material each time the certificate or the ticket keys change. */
  onChange (listener: (material: TlsMaterial) => void): void {
    this.#listeners.add(listener)
  }

  /** The key authorization for an ACME HTTP-01 token, if an order waits on it. */
  challengeAnswer (token: string): string | undefined {
    return this.#acme?.challengeAnswer(token)
  }

  report (): TlsReport {
    const loaded = this.#loaded
    const acme = this.#acme?.status()
    return {
      source: acme ? 'acme' : 'files',
      certificate: loaded ? { ...loaded.info, daysLeft: daysLeft(loaded.info.notAfter), loadedAt: loaded.at } : null,
      lastError: acme ? acme.lastError : this.#lastError,
      ...(acme && { acme })
    }
  }

  close (): void {
    for (const stop of this.#stops.splice(0)) stop()
  }

  #use (loaded: LoadedCertificate): void {
    this.#loaded = { ...loaded, at: Date.now() }
    this.#lastError = null
    this.#changed()
  }

  /** A `tls.acme.ca` that names no readable file is a setting to fix now, not an issuance to retry. */
  async #checkAcmeCa (): Promise<void> {
    const { ca } = this.#config.acme
    if (ca === '') return
    await access(resolve(this.#root, ca), constants.R_OK).catch((err: NodeJS.ErrnoException) => {
      throw new TQ_ERR_CONFIG_INVALID_VALUE('configuration', 'tls.acme.ca', `names no readable file: ${resolve(this.#root, ca)} (${err.code ?? err.message})`)
    })
  }

  #rotateTicketKeys (): void {
    const rotation = setInterval(() => {
      this.#ticketKeys = randomBytes(48).toString('base64')
      this.#changed()
    }, TICKET_KEY_ROTATION_MS).unref()
    this.#stops.push(() => clearInterval(rotation))
  }

  #changed (): void {
    const material = this.material
    if (material) for (const listener of this.#listeners) listener(material)
  }
}
