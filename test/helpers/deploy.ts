// tqserver deploy run as a user runs it, and the workers the deploy tests ship.
import { spawn } from 'node:child_process'
import type { TestContext } from 'node:test'
import { CLI } from './cli.js'
import { within } from './wait.js'
import { defer } from './cleanup.js'

/** Runs `tqserver deploy target` in `root`; `path` goes in front of PATH (the ssh stand-in). */
export function deploy (t: TestContext, root: string, target: string, path?: string): Promise<{ code: number | null, output: string, ms: number }> {
  const started = performance.now()
  const env = { ...process.env, npm_config_prefer_offline: 'true', PATH: [path, process.env.PATH].filter(Boolean).join(':') }
  const child = spawn(process.execPath, [CLI, 'deploy', target], { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  child.stdout.on('data', (chunk: Buffer) => { output += chunk.toString() })
  child.stderr.on('data', (chunk: Buffer) => { output += chunk.toString() })
  defer(t, () => { if (child.exitCode === null) child.kill('SIGKILL') })
  return within(300_000, `tqserver deploy ${target} to finish`, new Promise((resolve) => child.once('exit', (code) => resolve({ code, output, ms: Math.round(performance.now() - started) }))))
}

/** The two workers at `version`: an SDK worker built by esbuild, and a node script run as a command. */
export function workers (version: number): Record<string, string> {
  return {
    'workers/app/src/main.ts': `import { serve } from 'tqserver/worker'
await serve(async (app) => {
  app.get('/version', async () => ({ version: ${version} }))
  app.post('/echo', async (request) => ({ version: ${version}, echo: request.body }))
})
`,
    'workers/cmd/server.mjs': `import { createServer } from 'node:http'
createServer((req, res) => {
  req.resume()
  req.on('end', () => {
    res.setHeader('content-type', 'application/json')
    res.end(JSON.stringify({ version: ${version} }))
  })
}).listen(Number(process.env.PORT), process.env.HOST)
`
  }
}
