// Does bundling a worker's dependencies (fastify, the SDK) into its build start it faster than
// leaving them in node_modules? Spawn to first GET /health 200, interleaved rounds; also prints each
// build's size and time. NO_MAPS=1 starts them without --enable-source-maps.
// Run: npm run build && node dist/bench/worker-startup.js [rounds]
import { fork } from 'node:child_process'
import { mkdirSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import * as esbuild from 'esbuild'
import { probeHealth } from '../src/process/health-probe.js'
import { isPortFree } from '../src/process/port-pool.js'
import { until } from '../test/helpers/wait.js'

const rounds = Number(process.argv[2] ?? 20)
const root = fileURLToPath(new URL('../../bench/fixtures/hello/', import.meta.url))
const out = join(root, 'bin', 'bench')
mkdirSync(out, { recursive: true })

const variants = {
  bundled: { packages: undefined, banner: "import { createRequire as __r } from 'node:module'; const require = __r(import.meta.url);" },
  external: { packages: 'external' as const, banner: '' }
}
for (const [name, variant] of Object.entries(variants)) {
  const started = performance.now()
  await esbuild.build({
    entryPoints: [join(root, 'src/main.ts')], outfile: join(out, `${name}.mjs`), bundle: true, platform: 'node', format: 'esm',
    target: 'node22', sourcemap: 'linked', packages: variant.packages, banner: { js: variant.banner }, logLevel: 'error'
  })
  console.log(`${name}: ${(statSync(join(out, `${name}.mjs`)).size / 1024).toFixed(0)} KiB, built in ${(performance.now() - started).toFixed(0)} ms (one full build)`)
}

let port = 31800 // benchmarks use worker ports 25000-31999 (the tests 20000-24999)
async function startOnce (file: string): Promise<number> {
  while (!await isPortFree(port, '127.0.0.1')) if (++port > 31899) throw new Error('no free port in 31800-31899')
  const started = performance.now()
  const child = fork(file, [], { env: { ...process.env, PORT: String(port), HOST: '127.0.0.1' }, execArgv: process.env.NO_MAPS ? [] : ['--enable-source-maps'], stdio: 'ignore' })
  try {
    await until(30_000, `the worker on ${port} to answer GET /health`, async () => (await probeHealth(port, '127.0.0.1', 1000)).ok, 2)
    return performance.now() - started
  } finally {
    child.kill('SIGKILL')
    await new Promise((resolve) => child.once('exit', resolve))
    port++
  }
}

const samples: Record<string, number[]> = { bundled: [], external: [] }
for (const name of Object.keys(samples)) await startOnce(join(out, `${name}.mjs`)) // warm the disk cache
for (let round = 0; round < rounds; round++) {
  const order = round % 2 === 0 ? ['bundled', 'external'] : ['external', 'bundled']
  for (const name of order) samples[name]!.push(await startOnce(join(out, `${name}.mjs`)))
}
const pct = (values: number[], p: number) => [...values].sort((a, b) => a - b)[Math.min(values.length - 1, Math.floor(values.length * p))]!
for (const [name, values] of Object.entries(samples)) {
  console.log(`${name}: spawn to GET /health 200, median ${pct(values, 0.5).toFixed(1)} ms, p90 ${pct(values, 0.9).toFixed(1)} ms (n=${values.length})`)
}
