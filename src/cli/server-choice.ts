// Which server `tqserver status` and `reload` talk to: the one named by --url, the one of this root
// on --port, or the only one running in this root (.tqserver/servers/). Several running and none
// named is refused with the list, rather than a guess.
import { runningServers, SERVERS_DIR, type RunningServer } from '../server-file.js'
import { TQ_ERR_CLI_NOT_RUNNING, TQ_ERR_CLI_SEVERAL_SERVERS, TQ_ERR_CLI_USAGE } from '../errors.js'

export interface ServerChoice {
  url?: string | undefined
  port?: string | undefined
}

/** A server to talk to; `pid` when it runs in this root on this machine (so it can be signalled). */
export interface ChosenServer {
  url: string
  pid?: number
}

export async function chooseServer (root: string, choice: ServerChoice): Promise<ChosenServer> {
  if (choice.url !== undefined && choice.port !== undefined) throw new TQ_ERR_CLI_USAGE('pass --url or --port, not both')
  const servers = await runningServers(root)
  if (choice.url !== undefined) {
    if (!URL.canParse(choice.url)) throw new TQ_ERR_CLI_USAGE(`--url must be a URL such as http://127.0.0.1:8080 (got "${choice.url}")`)
    const url = choice.url.replace(/\/+$/, '')
    const local = servers.find((server) => sameOrigin(server.url, url))
    return local ? { url: local.url, pid: local.pid } : { url }
  }
  if (choice.port !== undefined) {
    if (!/^[0-9]+$/.test(choice.port)) throw new TQ_ERR_CLI_USAGE(`--port must be a port number (got "${choice.port}")`)
    const server = servers.find((server) => server.port === Number(choice.port))
    if (!server) throw new TQ_ERR_CLI_NOT_RUNNING(root, `none on port ${choice.port}${listed(servers, '; running: ')}`)
    return { url: server.url, pid: server.pid }
  }
  if (servers.length === 0) throw new TQ_ERR_CLI_NOT_RUNNING(root, `no ${SERVERS_DIR}/<port>.json names a running process; or pass --url`)
  if (servers.length > 1) throw new TQ_ERR_CLI_SEVERAL_SERVERS(servers.length, root, listed(servers))
  return { url: servers[0]!.url, pid: servers[0]!.pid }
}

function listed (servers: RunningServer[], before = ''): string {
  return servers.length === 0 ? '' : before + servers.map((server) => `${server.url} (pid ${server.pid}, ${server.mode})`).join(', ')
}

function sameOrigin (a: string, b: string): boolean {
  return new URL(a).origin === new URL(b).origin
}
