// Certificates from an ACME CA (RFC 8555) through acme-client: issued over HTTP-01 (the plain port
// answers with challengeAnswer), stored under .tqserver/certs/, renewed ahead of expiry, and retried
// with a backoff while the old certificate goes on being served.
import { readFile } from 'node:fs/promises'
import { Agent, get } from 'node:https'
import { resolve } from 'node:path'
import { rootCertificates } from 'node:tls'
import { Client, axios, crypto } from 'acme-client'
import type { ServerConfig } from '../config/schema.js'
import type { Logger } from '../logger.js'
import { AcmeStore, describeCertificate, type StoredCertificate } from './acme-store.js'
import { DAY_MS, type Certificate } from './certificate.js'

export interface AcmeStatus {
  domains: string[]
  directory: string
  /** Expiry of the certificate served, epoch ms; null: none yet. */
  notAfter: number | null
  /** When it is renewed, epoch ms. */
  renewAt: number | null
  /** Last certificate issued by this process, epoch ms. */
  lastRenewal: number | null
  /** The last failed issuance; null once one succeeds. */
  lastError: { message: string, at: number } | null
  /** When the next issuance starts (a renewal or a retry), epoch ms; null while one runs. */
  nextAttempt: number | null
}

export interface AcmeOptions {
  /** Project root: the certificates live in <root>/.tqserver/certs/; `ca` is relative to it. */
  root: string
  log: Logger
  /** A certificate issued after start(): a renewal, or a first one that start() could not get. */
  onCertificate: (certificate: Certificate) => void
}

const RETRY_FIRST_MS = 60_000
const RETRY_MAX_MS = 6 * 3_600_000
/** Renewals at most this often: a renewBefore longer than a certificate lives would renew at once, forever. */
const RENEW_INTERVAL_MIN_MS = 12 * 3_600_000
/** setTimeout fires at once for delays of 2^31 ms (24.8 days) and more; longer waits re-arm. */
const TIMER_MAX_MS = 2 ** 31 - 1
const REQUEST_TIMEOUT_MS = 30_000

export class AcmeCertificates {
  readonly #settings: ServerConfig['tls']['acme']
  readonly #options: AcmeOptions
  readonly #store: AcmeStore
  readonly #log: Logger
  /** HTTP-01 tokens of the orders in progress, and their key authorizations. */
  readonly #challenges = new Map<string, string>()
  #current: StoredCertificate | undefined
  #lastRenewal: number | null = null
  #lastError: { message: string, at: number } | null = null
  #nextAttempt: number | null = null
  #retryDelayMs = 0
  #timer: NodeJS.Timeout | undefined
  #agent: Agent | undefined
  #interceptor: number | undefined
  #closed = false

  constructor (settings: ServerConfig['tls']['acme'], options: AcmeOptions) {
    this.#settings = settings
    this.#options = options
    this.#store = new AcmeStore(options.root, settings.directory)
    this.#log = options.log.child({ acme: settings.directory })
  }

  /** The key authorization for an HTTP-01 token (GET /.well-known/acme-challenge/<token>), or undefined. */
  challengeAnswer (token: string): string | undefined {
    return this.#challenges.get(token)
  }

  /**
   * The stored certificate if it names exactly these domains and has not expired (served at once,
   * even if due: the renewal then runs in the background); otherwise one issued now. Resolves
   * undefined when there is none and issuance failed: retries then run in the background and
   * onCertificate gets the certificate. Never rejects.
   */
  async start (): Promise<Certificate | undefined> {
    const stored = await this.#store.readCertificate().catch((err: unknown) => {
      this.#log.warn({ file: this.#store.certificateFile, err: messageOf(err) }, 'stored ACME certificate unreadable, obtaining a new one')
      return undefined
    })
    if (stored !== undefined && this.#fits(stored)) {
      this.#current = stored
      this.#log.info({ domains: stored.domains, notAfter: new Date(stored.notAfter).toISOString() }, 'ACME certificate loaded')
      this.#scheduleRenewal()
      return pick(stored)
    }
    return this.#attempt()
  }

  status (): AcmeStatus {
    return {
      domains: [...this.#settings.domains],
      directory: this.#settings.directory,
      notAfter: this.#current?.notAfter ?? null,
      renewAt: this.#current ? this.#renewAt(this.#current).at : null,
      lastRenewal: this.#lastRenewal,
      lastError: this.#lastError,
      nextAttempt: this.#nextAttempt
    }
  }

  /** Timers off. An order in progress may finish, but its certificate is neither stored nor passed on. */
  close (): void {
    this.#closed = true
    clearTimeout(this.#timer)
    this.#nextAttempt = null
    if (this.#interceptor !== undefined) axios.interceptors.request.eject(this.#interceptor)
  }

  #fits (stored: StoredCertificate): boolean {
    const wanted = new Set(this.#settings.domains.map((name) => name.toLowerCase()))
    const named = new Set(stored.domains.map((name) => name.toLowerCase()))
    const sameNames = wanted.size === named.size && [...wanted].every((name) => named.has(name))
    if (!sameNames) this.#log.info({ domains: stored.domains }, 'stored ACME certificate names other domains, obtaining a new one')
    else if (stored.notAfter <= Date.now()) this.#log.info({ notAfter: new Date(stored.notAfter).toISOString() }, 'stored ACME certificate expired, obtaining a new one')
    return sameNames && stored.notAfter > Date.now()
  }

  /** Issues a certificate once; on failure logs it and arms the retry. Resolves undefined if it failed or close() came first. */
  async #attempt (): Promise<Certificate | undefined> {
    this.#nextAttempt = null
    let issued: StoredCertificate
    try {
      issued = await this.#issue()
    } catch (err) {
      if (this.#closed) return undefined
      const message = isLostNetworkError(err) ? await this.#networkError() : messageOf(err)
      this.#lastError = { message, at: Date.now() }
      this.#retryDelayMs = Math.min(RETRY_MAX_MS, this.#retryDelayMs === 0 ? RETRY_FIRST_MS : this.#retryDelayMs * 2)
      const fields = { domains: this.#settings.domains, err: message, retryInMs: this.#retryDelayMs }
      // Serving an older certificate still works: a warning. Serving none: an error.
      if (this.#current && this.#current.notAfter > Date.now()) this.#log.warn(fields, 'ACME renewal failed, the current certificate is kept')
      else this.#log.error(fields, 'ACME certificate could not be obtained')
      this.#arm(Date.now() + this.#retryDelayMs)
      return undefined
    }
    if (this.#closed) return undefined
    this.#current = issued
    this.#lastRenewal = Date.now()
    this.#lastError = null
    this.#retryDelayMs = 0
    this.#log.info({ domains: issued.domains, notAfter: new Date(issued.notAfter).toISOString(), serial: issued.serial }, 'ACME certificate issued')
    this.#scheduleRenewal()
    return pick(issued)
  }

  async #issue (): Promise<StoredCertificate> {
    await this.#prepareRequests()
    const domains = this.#settings.domains
    const client = new Client({ directoryUrl: this.#settings.directory, accountKey: await this.#accountKey() })
    // No common name: the names go in subjectAltName (RFC 8555 7.4), and a CN longer than 64 characters would be refused.
    // ECDSA P-256: cheaper TLS handshakes than RSA.
    const [key, csr] = await crypto.createCsr({ altNames: [...domains] }, await crypto.createPrivateEcdsaKey('P-256'))
    const cert = await client.auto({
      csr,
      email: this.#settings.email === '' ? undefined : this.#settings.email,
      // Configuring a CA is taken as agreeing to its terms, as certbot --agree-tos and Caddy do.
      termsOfServiceAgreed: true,
      challengePriority: ['http-01'],
      // acme-client's own pre-check fetches the challenge through the system's DNS first: it cannot
      // reach a domain that only the CA's resolver knows (pebble's tq.test), and the CA checks anyway.
      skipChallengeVerification: true,
      challengeCreateFn: async (_authz, challenge, keyAuthorization) => { this.#challenges.set(challenge.token, keyAuthorization) },
      challengeRemoveFn: async (_authz, challenge) => { this.#challenges.delete(challenge.token) }
    })
    const issued = describeCertificate({ cert, key: key.toString() })
    if (!this.#closed) await this.#store.writeCertificate(issued)
    return issued
  }

  /** The stored account key, or a new one (stored): the CA knows the account by its key. */
  async #accountKey (): Promise<string> {
    const stored = await this.#store.readAccountKey()
    if (stored !== undefined) return stored
    const key = (await crypto.createPrivateEcdsaKey('P-256')).toString()
    await this.#store.writeAccountKey(key)
    this.#log.info({ file: this.#store.accountKeyFile }, 'ACME account key created')
    return key
  }

  /**
   * Our settings for acme-client's requests to the CA. It sends them all through one shared axios
   * instance, so an interceptor scoped to the directory's origin (removed by close()) stands in
   * for per-client options.
   */
  async #prepareRequests (): Promise<void> {
    if (this.#settings.ca !== '' && this.#agent === undefined) {
      const file = resolve(this.#options.root, this.#settings.ca)
      const pem = await readFile(file, 'utf8').catch((err: unknown) => { throw new Error(`cannot read tls.acme.ca ${file}: ${messageOf(err)}`) })
      this.#agent = new Agent({ ca: [...rootCertificates, pem] })
    }
    if (this.#interceptor !== undefined || this.#closed) return
    const origin = new URL(this.#settings.directory).origin
    this.#interceptor = axios.interceptors.request.use((config) => {
      if (config.url === undefined || new URL(config.url).origin !== origin) return config
      // timeout: a CA that never answers would hold up every later renewal. retryAttempt: our
      // backoff retries the whole order; acme-client's own retries (5 over 75 s) only delay a
      // failure and then lose its reason (publishlab/node-acme-client#101).
      return Object.assign(config, { httpsAgent: this.#agent, timeout: REQUEST_TIMEOUT_MS, retryAttempt: Infinity })
    })
  }

  /**
   * What a request to the CA that got no answer met. acme-client turns every network error into
   * "Cannot read properties of undefined" (#101), so the directory is asked again, directly.
   */
  async #networkError (): Promise<string> {
    const url = this.#settings.directory
    return new Promise((resolve) => {
      const request = get(url, { agent: this.#agent, timeout: REQUEST_TIMEOUT_MS }, (response) => {
        response.resume()
        resolve(`a request to the CA got no answer (${url} answers ${response.statusCode} now)`)
      })
      request.once('timeout', () => request.destroy(new Error(`no answer within ${REQUEST_TIMEOUT_MS} ms`)))
      request.once('error', (err) => resolve(`${url}: ${err.message}`))
    })
  }

  /** Arms the renewal of the current certificate. */
  #scheduleRenewal (): void {
    const { at, isHeldBack } = this.#renewAt(this.#current!)
    if (isHeldBack) {
      this.#log.warn({ renewBefore: this.#settings.renewBefore, notAfter: new Date(this.#current!.notAfter).toISOString(), renewAt: new Date(at).toISOString() },
        'tls.acme.renewBefore is longer than the certificate lasts: renewing every 12 hours, not at once again')
    }
    this.#arm(at)
  }

  #renewAt (current: StoredCertificate): { at: number, isHeldBack: boolean } {
    const due = current.notAfter - this.#settings.renewBefore * DAY_MS
    const earliest = this.#lastRenewal === null ? -Infinity : this.#lastRenewal + RENEW_INTERVAL_MIN_MS
    return due >= earliest ? { at: due, isHeldBack: false } : { at: earliest, isHeldBack: true }
  }

  /** Runs an attempt at `at` (epoch ms), never before start() has returned; onCertificate gets what it issues. */
  #arm (at: number): void {
    if (this.#closed) return
    clearTimeout(this.#timer)
    this.#nextAttempt = at
    const fire = () => {
      const left = at - Date.now()
      if (left > 0) {
        this.#timer = setTimeout(fire, Math.min(left, TIMER_MAX_MS)).unref()
        return
      }
      void this.#attempt().then((issued) => {
        if (issued !== undefined) this.#options.onCertificate(issued)
      }).catch((err: unknown) => this.#log.error({ err: messageOf(err) }, 'onCertificate failed'))
    }
    this.#timer = setTimeout(fire, Math.min(Math.max(0, at - Date.now()), TIMER_MAX_MS)).unref()
  }
}

function pick ({ cert, key }: Certificate): Certificate {
  return { cert, key }
}

/** The CA's message (acme-client puts an ACME problem's detail in it), or the system's (ECONNREFUSED). */
function messageOf (err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}

/** acme-client's answer to a request that got no response (publishlab/node-acme-client#101). */
function isLostNetworkError (err: unknown): boolean {
  return err instanceof TypeError && err.message.includes("reading 'config'")
}
