// Paths that climb with `..` (plain, %-encoded, with backslashes, double-encoded) against
// `tqserver start` itself: its HTTP server hands worker requests to the router before Fastify
// (plugins/standalone-server.ts), and with hand-off a worker serves the connection after its first
// request line. Sent over raw sockets, byte for byte. None may reach a file outside public/, and
// none may reach the worker with a `..` segment in its path.
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { runCliToEnd, startCliServer, type CliProcess } from '../helpers/cli.js'
import { PORTS } from '../helpers/ports.js'
import { useProject } from '../helpers/project.js'
import { openRaw, rawRequest, type RawConnection, type RawResponse } from '../helpers/raw-http.js'

/** Each aims at a file outside workers/app/public/ (private/secret.txt, src/main.ts, the root's secrets.env). */
const CLIMBS = [
  '/app/../private/secret.txt',
  '/app/sub/../../private/secret.txt',
  '/app/hello.txt/../../private/secret.txt',
  '/app/%2e%2e/private/secret.txt',
  '/app/%2E%2E%2Fprivate%2Fsecret.txt',
  '/app/.%2e/private/secret.txt',
  '/app/..%2fsrc%2fmain.ts',
  '/app/..\\private\\secret.txt',
  '/app/..%5cprivate%5csecret.txt',
  '/app/%5c..%5c..%5c..%5csecrets.env',
  '/app/../../../secrets.env',
  '/app/../../../../../../etc/passwd',
  '/app/..',
  '/app/%2e%2e',
  '/app/%c0%ae%c0%ae/private/secret.txt',
  '/app/%252e%252e/private/secret.txt',
  '/app/%252e%252e%252fprivate%252fsecret.txt',
  '/app/..%255cprivate%255csecret.txt',
  '/__tqserver/../app/private/secret.txt',
  'http://tq.test/app/../private/secret.txt'
]

const SECRETS = /TOP SECRET|ROOT_SECRET|tqserver\/worker|root:/

/** Whether a path, decoded once (as a worker would), has a `..` segment. */
function climbs (url: string): boolean {
  let decoded = url.split('?')[0]!
  try {
    decoded = decodeURIComponent(decoded)
  } catch {}
  return decoded.replaceAll('\\', '/').split('/').includes('..')
}

/** Refused by the host, or answered by the worker for a path that does not climb; never a secret. */
function checkAnswer (path: string, answer: RawResponse): void {
  assert.doesNotMatch(answer.body, SECRETS, `${path} leaked a file (${answer.status})`)
  if (answer.status === 400 || answer.status === 404) return
  assert.equal(answer.status, 200, `${path}: ${answer.status} ${answer.body.slice(0, 200)}`)
  const { url } = JSON.parse(answer.body) as { url: string }
  assert.ok(!climbs(url), `${path} reached the worker as ${url}`)
}

function checkWorkerSawNoClimb (server: CliProcess): void {
  const seen = server.logs.lines.filter((line) => line.worker === 'app' && String(line.msg).startsWith('saw ')).map((line) => String(line.msg).slice(4))
  assert.deepEqual(seen.filter(climbs), [], 'paths with .. that reached the worker')
}

async function project (t: TestContext, config: string): Promise<string> {
  const root = await useProject(t, 'path-echo', { 'config/server.yaml': config, 'secrets.env': 'ROOT_SECRET=1\n' })
  assert.equal((await runCliToEnd(t, ['build'], { cwd: root })).code, 0)
  return root
}

// The two servers run one after the other, each on half of this file's worker ports.
const [FROM, TO] = PORTS.traversalFastPath.split('-').map(Number) as [number, number]
const FAST_PATH_PORTS = `${FROM}-${FROM + 49}`
const HANDOFF_PORTS = `${FROM + 50}-${TO}`

test('tqserver start: paths with .. on the fast path', async (t) => {
  const root = await project(t, 'handoff: false\n')
  const server = await startCliServer(t, 'start', root, FAST_PATH_PORTS)
  const hello = await rawRequest(t, server.url, 'GET', '/app/hello.txt')
  assert.deepEqual([hello.status, hello.body], [200, 'hello from public\n'], 'public/ files are served')
  for (const path of CLIMBS) {
    const answer = await rawRequest(t, server.url, 'GET', path)
    checkAnswer(path, answer)
    // Double-encoded dots are no `..` to the worker, which decodes once; the rest are refused.
    if (path.startsWith('/app/') && !path.includes('%25')) assert.equal(answer.status, 400, `${path} is refused`)
  }
  checkWorkerSawNoClimb(server)
})

test('tqserver start with hand-off: paths with .., first on a connection and later on a handed-off one', async (t) => {
  const root = await project(t, 'handoff: true\n')
  const server = await startCliServer(t, 'start', root, HANDOFF_PORTS)

  // First request line on a new connection: read by the host's front, which decides the hand-off.
  for (const path of CLIMBS) checkAnswer(path, await rawRequest(t, server.url, 'GET', path))

  // Later requests on a connection already handed off: read by the worker itself.
  let connection: RawConnection | undefined
  const handedOff = async () => {
    if (connection && !connection.isClosed) return connection
    connection = await openRaw(t, server.url)
    connection.send('GET /app/first HTTP/1.1\r\nHost: tq.test\r\n\r\n')
    const first = await connection.response(10_000, 'the first answer')
    assert.equal(JSON.parse(first.body).url, '/first', 'the worker serves this connection')
    return connection
  }
  for (const path of CLIMBS) {
    const open = await handedOff()
    open.send(`GET ${path} HTTP/1.1\r\nHost: tq.test\r\n\r\n`)
    checkAnswer(path, await open.response(10_000, `an answer to GET ${path} on a handed-off connection`))
  }
  checkWorkerSawNoClimb(server)
})
