// The floor for a proxy in Node's HTTP stack: node:http in, undici's dispatch() out, headers passed
// as they are, no routing, accounting or error pages. bench/proxy.ts runs it beside tqserver to show
// how much of tqserver's per-request cost is Node's own. Run: node dist/bench/bare-proxy.js UPSTREAM_PORT LISTEN_PORT
import { createServer } from 'node:http'
import { Pool } from 'undici'

const [upstreamPort, listenPort] = process.argv.slice(2).map(Number) as [number, number]
const pool = new Pool(`http://127.0.0.1:${upstreamPort}`, { connections: 128 })

createServer((req, res) => {
  pool.dispatch({ method: req.method as 'GET', path: req.url ?? '/', headers: req.headers as Record<string, string>, body: req.method === 'GET' ? null : req }, {
    onConnect () {},
    onHeaders (statusCode, raw, resume) {
      const headers: Record<string, string> = {}
      for (let i = 0; i < raw.length; i += 2) {
        const name = raw[i]!.toString().toLowerCase()
        if (name !== 'connection' && name !== 'keep-alive' && name !== 'transfer-encoding') headers[name] = raw[i + 1]!.toString()
      }
      res.writeHead(statusCode, headers)
      res.on('drain', resume)
      return true
    },
    onData (chunk) { return res.write(chunk) },
    onComplete () { res.end() },
    onError () { res.destroy() }
  })
}).listen(listenPort, '127.0.0.1')
