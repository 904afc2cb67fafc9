// Let's Encrypt's test CA for real: Debian's pebble (in -strict mode) and pebble-challtestsrv as its
// DNS, which answers every name (tq.test) with 127.0.0.1, so pebble fetches HTTP-01 challenges from
// http://<domain>:<httpPort>/.well-known/acme-challenge/<token> on this machine.
import { spawn, execFileSync, type ChildProcess } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { TestContext } from 'node:test'
import { defer } from './cleanup.js'
import { until, within } from './wait.js'

const PEBBLE = '/usr/bin/pebble'
const CHALLTESTSRV = '/usr/bin/pebble-challtestsrv'
const START_MS = 20_000

export interface Pebble {
  /** The ACME directory URL (https, served with a self-signed certificate). */
  directory: string
  /** That self-signed certificate, PEM: the CA file a client trusts for the directory. */
  caFile: string
  /** Stops both processes (idempotent); the test's cleanup calls it too. */
  stop: () => Promise<void>
}

/**
 * Starts pebble on `firstPort` (its management API on +1) and its DNS on +2 (management +3).
 * Each process leads its own group, killed by stop() and after the test.
 */
export async function startPebble (t: TestContext, { httpPort, firstPort }: { httpPort: number, firstPort: number }): Promise<Pebble> {
  for (const binary of [PEBBLE, CHALLTESTSRV]) {
    if (!existsSync(binary)) throw new Error(`${binary} is missing: install Debian's pebble package (apt-get install pebble) to run the ACME tests`)
  }
  const dir = await mkdtemp(join(tmpdir(), 'tq-pebble-'))
  defer(t, () => rm(dir, { recursive: true, force: true }))
  const caFile = join(dir, 'cert.pem')
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '30',
    '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1',
    '-keyout', join(dir, 'key.pem'), '-out', caFile], { stdio: 'ignore' })
  await writeFile(join(dir, 'config.json'), JSON.stringify({
    pebble: {
      listenAddress: `127.0.0.1:${firstPort}`,
      managementListenAddress: `127.0.0.1:${firstPort + 1}`,
      certificate: join(dir, 'cert.pem'),
      privateKey: join(dir, 'key.pem'),
      httpPort,
      // Where pebble would validate TLS-ALPN-01, which our client never picks; it listens on neither.
      tlsPort: 443,
      ocspResponderURL: '',
      externalAccountBindingRequired: false
    }
  }))

  const processes: ChildProcess[] = []
  const stop = async () => {
    await Promise.all(processes.map(async (child) => {
      const exited = new Promise((resolve) => child.exitCode !== null || child.signalCode !== null ? resolve(null) : child.once('exit', resolve))
      try {
        process.kill(-child.pid!, 'SIGKILL')
      } catch {} // gone already
      await exited
    }))
  }
  defer(t, stop)

  const dns = `127.0.0.1:${firstPort + 2}`
  processes.push(await startUntil(CHALLTESTSRV, ['-defaultIPv4', '127.0.0.1', '-defaultIPv6', '', '-dns01', dns,
    '-http01', '', '-https01', '', '-tlsalpn01', '', '-management', `127.0.0.1:${firstPort + 3}`], dir, {},
  'Starting management server'))
  // VA_NOSLEEP: pebble otherwise waits up to 15 s at random before it validates a challenge.
  processes.push(await startUntil(PEBBLE, ['-strict', '-config', join(dir, 'config.json'), '-dnsserver', dns], dir,
    { PEBBLE_VA_NOSLEEP: '1' }, `Listening on: 127.0.0.1:${firstPort}`))
  // Both print their lines before they bind: wait until the DNS (TCP too) and the directory accept.
  for (const port of [firstPort + 2, firstPort]) {
    await until(START_MS, `127.0.0.1:${port} to accept connections`, () => accepts(port))
  }
  return { directory: `https://127.0.0.1:${firstPort}/dir`, caFile, stop }
}

/** Spawns `binary` in its own process group and resolves once its output has shown `line`. */
async function startUntil (binary: string, args: string[], cwd: string, env: Record<string, string>, line: string): Promise<ChildProcess> {
  const child = spawn(binary, args, { cwd, env: { PATH: process.env.PATH ?? '', ...env }, detached: true, stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  await within(START_MS, `${binary} to print "${line}"`, new Promise<void>((resolve, reject) => {
    const read = (chunk: Buffer) => {
      output += chunk.toString()
      if (output.includes(line)) resolve()
    }
    child.stdout!.on('data', read)
    child.stderr!.on('data', read)
    child.once('error', reject)
    child.once('exit', (code) => reject(new Error(`${binary} exited with ${code}: ${output}`)))
  })).catch((err: unknown) => {
    try {
      process.kill(-child.pid!, 'SIGKILL')
    } catch {}
    throw err
  })
  return child
}

async function accepts (port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1')
    socket.once('connect', () => { socket.destroy(); resolve(true) })
    socket.once('error', () => resolve(false))
  })
}
