// ACME certificates from Let's Encrypt's test CA, pebble in -strict mode: issued over HTTP-01 (a
// plain node:http server answers the challenges from challengeAnswer), stored 0600, served again
// from disk, renewed, and kept when a renewal fails: the module alone, then `tqserver start` with
// tls.acme, whose plain port answers the challenges.
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { X509Certificate, createPrivateKey } from 'node:crypto'
import { mkdtemp, readFile, readdir, rm, stat } from 'node:fs/promises'
import { createServer } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pino } from 'pino'
import { AcmeCertificates } from '../../src/tls/acme.js'
import type { Certificate } from '../../src/tls/certificate.js'
import { defer } from '../helpers/cleanup.js'
import { LogRecorder } from '../helpers/logs.js'
import { startPebble, type Pebble } from '../helpers/pebble.js'
import { PORTS } from '../helpers/ports.js'
import { until, within } from '../helpers/wait.js'
import { runCliToEnd, startCliServer } from '../helpers/cli.js'
import { useProject, writeFiles } from '../helpers/project.js'
import { h1Request, h2Request, handshake } from '../helpers/tls-client.js'
import type { TlsReport } from '../../src/tls/server-tls.js'

const FIRST_PORT = Number(PORTS.acme.split('-')[0])
/** Where pebble fetches http://tq.test:<port>/.well-known/acme-challenge/<token>. */
const HTTP_PORT = FIRST_PORT + 4
const DOMAIN = 'tq.test'
const ISSUE_MS = 60_000
const CERTS = join('.tqserver', 'certs')

interface Run {
  acme: AcmeCertificates
  logs: LogRecorder
  /** Certificates passed to onCertificate. */
  renewed: Certificate[]
  /** Resolves with the next certificate passed to onCertificate. */
  nextCertificate: () => Promise<Certificate>
}

/** The challenge answerer on HTTP_PORT, for whichever AcmeCertificates runs now. */
async function serveChallenges (t: TestContext): Promise<{ current?: AcmeCertificates }> {
  const target: { current?: AcmeCertificates } = {}
  const server = createServer((request, response) => {
    const token = /^\/\.well-known\/acme-challenge\/([\w-]+)$/.exec(request.url ?? '')?.[1]
    const answer = token === undefined ? undefined : target.current?.challengeAnswer(token)
    response.writeHead(answer === undefined ? 404 : 200, { 'content-type': 'text/plain' }).end(answer ?? 'no such token')
  })
  await new Promise<void>((resolve) => server.listen(HTTP_PORT, '127.0.0.1', resolve))
  defer(t, () => new Promise((resolve) => server.close(resolve)))
  return target
}

async function setUp (t: TestContext) {
  const root = await mkdtemp(join(tmpdir(), 'tq-acme-'))
  defer(t, () => rm(root, { recursive: true, force: true }))
  const challenges = await serveChallenges(t)
  const pebble = await startPebble(t, { httpPort: HTTP_PORT, firstPort: FIRST_PORT })
  const run = (settings: { domains?: string[], renewBefore?: number } = {}): Run => {
    const logs = new LogRecorder()
    const renewed: Certificate[] = []
    const waiting: Array<(certificate: Certificate) => void> = []
    const acme = new AcmeCertificates({
      domains: settings.domains ?? [DOMAIN],
      email: 'ops@tq.test',
      directory: pebble.directory,
      renewBefore: settings.renewBefore ?? 30,
      ca: pebble.caFile
    }, {
      root,
      log: pino({ level: 'info' }, logs),
      onCertificate: (certificate) => {
        renewed.push(certificate)
        waiting.shift()?.(certificate)
      }
    })
    defer(t, () => acme.close())
    challenges.current = acme
    const nextCertificate = () => within(ISSUE_MS, 'onCertificate to get a certificate', new Promise<Certificate>((resolve) => waiting.push(resolve)))
    return { acme, logs, renewed, nextCertificate }
  }
  return { root, pebble, run }
}

/** A certificate issued by the first run, which is closed then. */
async function issueFirst (run: (settings?: { renewBefore?: number }) => Run): Promise<X509Certificate> {
  const first = run()
  const certificate = await within(ISSUE_MS, 'the first certificate', first.acme.start())
  assert.ok(certificate, `issued (${first.acme.status().lastError?.message})`)
  first.acme.close()
  return new X509Certificate(certificate.cert)
}

async function storedSerial (root: string, pebble: Pebble): Promise<string> {
  const file = join(root, CERTS, `${new URL(pebble.directory).host.replace(':', '_')}.pem`)
  return new X509Certificate(await readFile(file)).serialNumber
}

test('issues a certificate from pebble -strict, stores it 0600, and reuses the account key', async (t) => {
  const { root, run } = await setUp(t)
  const first = run()
  const certificate = await within(ISSUE_MS, 'the certificate', first.acme.start())
  assert.ok(certificate, `issued (${first.acme.status().lastError?.message})`)
  const leaf = new X509Certificate(certificate.cert)
  assert.equal(leaf.subjectAltName, `DNS:${DOMAIN}`)
  assert.ok(leaf.checkPrivateKey(createPrivateKey(certificate.key)), 'the key is the certificate\'s')
  assert.ok(first.logs.lines.some((line) => line.msg === 'ACME certificate issued' && String(line.domains) === DOMAIN), 'issuance logged')

  const status = first.acme.status()
  assert.equal(status.notAfter, Date.parse(leaf.validTo))
  assert.equal(status.lastError, null)
  assert.ok(status.lastRenewal !== null && status.renewAt === status.notAfter! - 30 * 86_400_000 && status.nextAttempt === status.renewAt, JSON.stringify(status))

  const dir = join(root, CERTS)
  assert.equal((await stat(dir)).mode & 0o777, 0o700)
  const files = (await readdir(dir)).sort()
  assert.equal(files.length, 2, files.join(', '))
  for (const file of files) assert.equal((await stat(join(dir, file))).mode & 0o777, 0o600, file)
  const accountKey = await readFile(join(dir, 'account.key'), 'utf8')
  first.acme.close()

  // Another domain needs a new certificate; the account stays.
  const second = run({ domains: [DOMAIN, `www.${DOMAIN}`] })
  const wider = await within(ISSUE_MS, 'the certificate for two domains', second.acme.start())
  assert.ok(wider, `issued (${second.acme.status().lastError?.message})`)
  assert.equal(new X509Certificate(wider.cert).subjectAltName, `DNS:${DOMAIN}, DNS:www.${DOMAIN}`)
  assert.equal(await readFile(join(dir, 'account.key'), 'utf8'), accountKey)
  assert.equal(second.logs.count((line) => line.msg === 'ACME account key created'), 0)
})

test('a second start serves the stored certificate and asks the CA nothing', async (t) => {
  const { pebble, run } = await setUp(t)
  const issued = await issueFirst(run)
  await pebble.stop() // any request to the CA would now fail

  const second = run()
  const certificate = await second.acme.start()
  assert.ok(certificate, `served (${second.acme.status().lastError?.message})`)
  assert.equal(new X509Certificate(certificate.cert).serialNumber, issued.serialNumber)
  assert.equal(second.logs.count((line) => line.msg === 'ACME certificate loaded'), 1)
  const status = second.acme.status()
  assert.equal(status.lastError, null)
  assert.ok(status.nextAttempt !== null && status.nextAttempt > Date.now(), 'the renewal lies ahead')
})

test('a renewBefore longer than the certificate lives renews once, and not again for 12 hours', async (t) => {
  const { root, pebble, run } = await setUp(t)
  const issued = await issueFirst(run)

  const second = run({ renewBefore: 3650 }) // pebble's certificates last 5 years
  const renewal = second.nextCertificate()
  const served = await second.acme.start()
  assert.equal(served && new X509Certificate(served.cert).serialNumber, issued.serialNumber, 'the stored one is served at once')
  const renewed = new X509Certificate((await renewal).cert)
  assert.notEqual(renewed.serialNumber, issued.serialNumber)
  assert.equal(renewed.subjectAltName, `DNS:${DOMAIN}`)
  assert.equal(await storedSerial(root, pebble), renewed.serialNumber, 'stored')

  const status = second.acme.status()
  assert.ok(status.lastRenewal !== null && status.nextAttempt === status.lastRenewal + 12 * 3_600_000, JSON.stringify(status))
  assert.equal(second.logs.count((line) => String(line.msg).startsWith('tls.acme.renewBefore is longer than the certificate lasts')), 1)
  assert.equal(second.renewed.length, 1)
})

test('a failed renewal keeps the old certificate and is retried later', async (t) => {
  const { root, pebble, run } = await setUp(t)
  const issued = await issueFirst(run)
  await pebble.stop()

  const second = run({ renewBefore: 3650 })
  const served = await second.acme.start()
  assert.equal(served && new X509Certificate(served.cert).serialNumber, issued.serialNumber)
  const failed = await second.logs.waitFor((line) => line.msg === 'ACME renewal failed, the current certificate is kept', ISSUE_MS, 'the renewal to fail')
  assert.match(String(failed.err), /ECONNREFUSED/)
  assert.equal(failed.level, 40, 'a warning: the certificate served is still good')

  const status = second.acme.status()
  assert.match(status.lastError?.message ?? '', /ECONNREFUSED/)
  assert.ok(status.nextAttempt !== null && status.nextAttempt > Date.now(), `a retry lies ahead: ${JSON.stringify(status)}`)
  assert.equal(status.notAfter, Date.parse(issued.validTo), 'the old certificate is still the one served')
  assert.equal(await storedSerial(root, pebble), issued.serialNumber, 'and the one stored')
  assert.equal(second.renewed.length, 0)
})

test('tqserver start with tls.acme: none while the CA is down, then issued at start, served by every process, a failed renewal shown and the old certificate kept, then renewed while it runs', async (t) => {
  const plainPort = FIRST_PORT + 5
  const workerPorts = `${FIRST_PORT + 6}-${FIRST_PORT + 19}`
  let pebble = await startPebble(t, { httpPort: plainPort, firstPort: FIRST_PORT })
  const config = (renewBefore: number) => ({
    'config/server.yaml': `tls:\n  httpPort: ${plainPort}\n  acme:\n    domains: [${DOMAIN}]\n    email: ops@${DOMAIN}\n    directory: ${pebble.directory}\n    ca: ${pebble.caFile}\n    renewBefore: ${renewBefore}\n`
  })
  const root = await useProject(t, 'tls', config(30), ['ws'])
  const start = async () => {
    const server = await startCliServer(t, 'start', root, workerPorts, ['--proxies', '2'])
    await server.logs.waitFor((line) => line.msg === 'data planes serving', 30_000, 'the data plane to serve')
    const port = Number(new URL(server.url).port)
    // The issued chain ends at pebble's root, made at its start: the test reads the leaf, unverified.
    const served = async () => {
      const serials = new Set<string>()
      for (let i = 0; i < 12; i++) serials.add((await handshake(port, { rejectUnauthorized: false, servername: DOMAIN })).serial)
      return serials
    }
    const health = async () => JSON.parse((await h1Request(server.url, '/health', '', { insecure: true })).body) as { tls: TlsReport }
    const stop = async () => {
      server.child.kill('SIGTERM')
      await within(30_000, 'the server to stop', server.exited)
    }
    return { server, served, health, stop }
  }

  // The CA unreachable and nothing stored: the server runs with no certificate, and says so.
  await pebble.stop()
  const none = await start()
  assert.match(String(none.server.logs.lines.find((line) => line.msg === 'ACME certificate could not be obtained')?.err), /ECONNREFUSED/)
  const status = await runCliToEnd(t, ['status'], { cwd: root })
  assert.equal(status.code, 1)
  assert.match(status.stderr, /completes no TLS handshake: it has no certificate yet .*\[TQ_ERR_CLI_NO_CERTIFICATE\]/)
  await none.stop()

  // Issued at start (the plain port answers pebble's challenge), served by both processes.
  pebble = await startPebble(t, { httpPort: plainPort, firstPort: FIRST_PORT })
  await writeFiles(root, config(30))
  const first = await start()
  const issued = (await first.health()).tls
  assert.equal(issued.source, 'acme')
  assert.deepEqual(issued.certificate?.names, [DOMAIN])
  assert.match(issued.certificate?.issuer ?? '', /Pebble/)
  assert.deepEqual(await first.served(), new Set([issued.certificate!.serialNumber]))
  assert.equal((await h2Request(first.server.url, '/app/x', '', { insecure: true })).status, 200)
  await first.stop()

  // The CA unreachable at the next start, with the certificate due: the stored one is served and
  // the failure shown.
  await pebble.stop()
  await writeFiles(root, config(3650))
  const second = await start()
  const failed = await until(30_000, 'the failed renewal to show in /health', async () => {
    const { tls } = await second.health()
    return tls.lastError !== null && tls
  })
  assert.equal(failed.certificate?.serialNumber, issued.certificate!.serialNumber)
  assert.match(failed.lastError!.message, /ECONNREFUSED/)
  assert.ok(failed.acme!.nextAttempt! > Date.now(), 'a retry lies ahead')
  assert.deepEqual(await second.served(), new Set([issued.certificate!.serialNumber]))
  assert.match((await h1Request(second.server.url, '/metrics', '', { insecure: true })).body, /^tqserver_tls_certificate_error 1$/m)
  await second.stop()

  // The CA back: the due certificate is renewed while the server runs and every process serves the new one.
  pebble = await startPebble(t, { httpPort: plainPort, firstPort: FIRST_PORT })
  await writeFiles(root, config(3650))
  const third = await start()
  const renewed = await until(ISSUE_MS, 'the renewed certificate to be served', async () => {
    const { tls } = await third.health()
    return tls.certificate!.serialNumber !== issued.certificate!.serialNumber && tls
  })
  assert.equal(renewed.lastError, null)
  await until(5_000, 'every process to serve the renewed certificate', async () => {
    const serials = await third.served()
    return serials.size === 1 && serials.has(renewed.certificate!.serialNumber)
  })
  await third.stop()
})
