// The certificate files behind HTTPS (`tls.cert`, `tls.key`): a pair replaced on disk is served to
// new connections by every process without a restart, while open connections keep theirs; a pair
// that cannot be served (not PEM, a key of another, expired) is refused (logged, shown in /health
// and /metrics) and the old one stays, and putting the served one back clears the refusal;
// bad TLS settings stop start-up with a message that says what is wrong.
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { createServer } from 'node:net'
import { copyFile, mkdir, rename, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { connect } from 'node:http2'
import { makeCertificate, makeExpiredCertificate } from '../helpers/certificates.js'
import { runCliToEnd, startCliServer } from '../helpers/cli.js'
import { PORTS } from '../helpers/ports.js'
import { parsePortRange } from '../../src/config/server-config.js'
import { useProject } from '../helpers/project.js'
import { h2Request, handshake } from '../helpers/tls-client.js'
import { until } from '../helpers/wait.js'
import { defer } from '../helpers/cleanup.js'

const CERT = 'certs/server.crt'
const KEY = 'certs/server.key'
const { from, to } = parsePortRange(PORTS.tlsCertificates)
const WORKER_PORTS = `${from}-${to - 1}`
/** Enough new connections that both processes serving the port take some. */
const CONNECTIONS = 12

interface TlsHealth { tls: { certificate: { serialNumber: string }, lastError: { message: string } | null } }

async function startTls (t: TestContext) {
  const root = await useProject(t, 'tls', {}, ['ws'])
  const first = await makeCertificate(join(root, CERT), join(root, KEY))
  const server = await startCliServer(t, 'start', root, WORKER_PORTS, ['--tls-cert', CERT, '--tls-key', KEY, '--proxies', '2'])
  await server.logs.waitFor((line) => line.msg === 'data planes serving', 30_000, 'the data plane to serve')
  const port = Number(new URL(server.url).port)
  // Every connection verifies against both certificates: the test reads which one it got.
  const health = async (ca: string) => JSON.parse((await h2Request(server.url, '/health', ca)).body) as TlsHealth
  return { root, server, port, first, health }
}

/** Makes a new pair elsewhere and moves it into place, as renewal tools do (each file whole at once). */
async function replacePair (root: string, name = 'next') {
  const made = await makeCertificate(join(root, `staging/${name}.crt`), join(root, `staging/${name}.key`))
  await rename(join(root, `staging/${name}.key`), join(root, KEY))
  await rename(join(root, `staging/${name}.crt`), join(root, CERT))
  return made
}

/** The serial numbers served on `count` new connections. */
async function servedSerials (port: number, ca: string[], count = CONNECTIONS): Promise<Set<string>> {
  const serials = new Set<string>()
  for (let i = 0; i < count; i++) serials.add((await handshake(port, { ca })).serial)
  return serials
}

test('a certificate replaced on disk is served to new connections by every process, without a restart', async (t) => {
  const { root, server, port, first, health } = await startTls(t)
  // An HTTP/2 connection opened before the change keeps its certificate and keeps serving.
  const open = connect(server.url, { ca: first.cert })
  // The server may be killed first at the end of the test: its reset is not this test's failure.
  open.on('error', () => {})
  defer(t, () => open.destroy())
  await new Promise((resolve) => open.once('connect', resolve))
  const next = await replacePair(root)
  const both = [first.cert, next.cert]
  await server.logs.waitFor((line) => line.msg === 'certificate files changed: the new certificate is served to new connections', 15_000, 'the new certificate to be loaded')
  await until(5_000, 'every process to serve the new certificate', async () => {
    const serials = await servedSerials(port, both)
    return serials.size === 1 && serials.has(next.serial)
  })
  assert.equal((await health(next.cert)).tls.certificate.serialNumber, next.serial)
  assert.equal((open.socket as unknown as { getPeerCertificate: () => { serialNumber: string } }).getPeerCertificate().serialNumber, first.serial)
  const answer = await new Promise<number>((resolve, reject) => {
    const stream = open.request({ ':path': '/app/still' })
    stream.on('response', (headers) => resolve(Number(headers[':status']))).on('error', reject).resume()
  })
  assert.equal(answer, 200, 'the connection opened before still serves')
  assert.equal(server.child.exitCode, null, 'no restart')
})

test('a certificate that cannot be served is refused, the old one kept and the error shown; a good one then clears it', async (t) => {
  const { root, server, port, first, health } = await startTls(t)
  const refusal = (reason: RegExp) => server.logs.next((line) => line.code === 'TQ_ERR_TLS_CERTIFICATE' && reason.test(String(line.msg)) && /is still served/.test(String(line.msg)), 15_000, `a refusal: ${reason}`)
  // Not PEM at all.
  let refused = refusal(/holds no PEM certificate/)
  await writeFile(join(root, 'staging.crt'), 'not a certificate\n')
  await rename(join(root, 'staging.crt'), join(root, CERT))
  await refused
  assert.deepEqual(await servedSerials(port, [first.cert]), new Set([first.serial]))
  assert.match((await health(first.cert)).tls.lastError!.message, /holds no PEM certificate/)
  const errorGauge = async () => /^tqserver_tls_certificate_error (\d)$/m.exec((await h2Request(server.url, '/metrics', first.cert)).body)?.[1]
  assert.equal(await errorGauge(), '1')
  // The file put back as it was: the refusal clears.
  await writeFile(join(root, 'staging.crt'), first.cert)
  await rename(join(root, 'staging.crt'), join(root, CERT))
  await until(15_000, 'the refusal to clear', async () => (await health(first.cert)).tls.lastError === null)
  assert.equal(await errorGauge(), '0')
  // An expired pair is refused too: every client would refuse it.
  refused = refusal(/the certificate expired on 2020-02-01/)
  const expired = await makeExpiredCertificate(join(root, 'staging/expired.crt'), join(root, 'staging/expired.key'))
  await rename(join(root, 'staging/expired.key'), join(root, KEY))
  await rename(join(root, 'staging/expired.crt'), join(root, CERT))
  await refused
  assert.deepEqual(await servedSerials(port, [first.cert, expired.cert]), new Set([first.serial]))
  // A certificate with a key that is not its own.
  const other = await makeCertificate(join(root, 'staging/other.crt'), join(root, 'staging/other.key'))
  refused = refusal(/the private key does not belong to the certificate/)
  await copyFile(join(root, 'staging/other.crt'), join(root, 'staging/swap.crt'))
  await writeFile(join(root, 'staging/first.key'), first.key)
  await rename(join(root, 'staging/first.key'), join(root, KEY))
  await rename(join(root, 'staging/swap.crt'), join(root, CERT))
  await refused
  assert.deepEqual(await servedSerials(port, [first.cert, other.cert]), new Set([first.serial]))
  // A good pair is taken and clears the error.
  const next = await replacePair(root)
  await until(15_000, 'the good pair to be served', async () => (await health(next.cert).catch(() => undefined))?.tls.certificate.serialNumber === next.serial)
  assert.equal((await health(next.cert)).tls.lastError, null)
})

test('bad TLS settings stop start-up with a message that names the file or key and the reason', async (t) => {
  const root = await useProject(t, 'tls')
  await makeCertificate(join(root, CERT), join(root, KEY))
  const other = await makeCertificate(join(root, 'certs/other.crt'), join(root, 'certs/other.key'))
  await writeFile(join(root, 'certs/mismatched.key'), other.key)
  await makeExpiredCertificate(join(root, 'certs/expired.crt'), join(root, 'certs/expired.key'))
  await mkdir(join(root, 'config'), { recursive: true })
  await writeFile(join(root, 'config/acme.yaml'), `tls:\n  httpPort: ${to}\n  acme:\n    domains: [tq.test]\n    directory: https://127.0.0.1:${to}/dir\n    ca: certs/no-such-ca.pem\n`)
  const start = (args: string[]) => runCliToEnd(t, ['start', '--port', '0', '--worker-ports', WORKER_PORTS, ...args], { cwd: root })
  const cases: Array<[string[], RegExp]> = [
    [['--tls-cert', 'certs/missing.crt', '--tls-key', KEY], /certs\/missing\.crt does not exist \[TQ_ERR_TLS_CERTIFICATE\]/],
    [['--tls-cert', CERT, '--tls-key', 'certs/mismatched.key'], /the private key does not belong to the certificate \[TQ_ERR_TLS_CERTIFICATE\]/],
    [['--tls-cert', KEY, '--tls-key', KEY], /holds no PEM certificate \[TQ_ERR_TLS_CERTIFICATE\]/],
    [['--tls-cert', 'certs/expired.crt', '--tls-key', 'certs/expired.key'], /the certificate expired on 2020-02-01T00:00:00\.000Z \[TQ_ERR_TLS_CERTIFICATE\]/],
    [['--tls-cert', CERT], /--tls-cert: key "tls\.key" must be set with tls\.cert/],
    [['--tls-http-port', '8089'], /--tls-http-port: key "tls\.httpPort" redirects to HTTPS, so it needs tls\.cert and tls\.key or tls\.acme\.domains/],
    [['--config', 'config/acme.yaml'], /key "tls\.acme\.ca" names no readable file: .*certs\/no-such-ca\.pem \(ENOENT\) \[TQ_ERR_CONFIG_INVALID_VALUE\]/]
  ]
  for (const [args, message] of cases) {
    const { code, stderr } = await start(args)
    assert.equal(code, 1, args.join(' '))
    assert.match(stderr.replace(/\n/g, ' '), message, args.join(' '))
  }
  // The plain port held by another program.
  const holder = createServer()
  await new Promise<void>((resolve) => holder.listen(to, '127.0.0.1', resolve))
  defer(t, () => holder.close())
  const { code, stderr } = await start(['--tls-cert', CERT, '--tls-key', KEY, '--tls-http-port', String(to)])
  assert.equal(code, 1)
  assert.match(stderr, new RegExp(`port ${to} on 127\\.0\\.0\\.1 is held by another program; choose another with --tls-http-port or TQ_TLS_HTTP_PORT \\[TQ_ERR_PORT_IN_USE\\]`))
})
