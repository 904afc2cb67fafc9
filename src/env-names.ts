// The environment variables of the two contracts: what the host reads for its own settings, and
// what a worker process is told. One list, so the host never passes its settings on to a worker.

/** Host settings from the environment, and the configuration key each sets (a dotted key: in a section). */
export const HOST_ENV = { TQ_PORT: 'port', TQ_HOST: 'host', TQ_WORKER_PORTS: 'workerPorts', TQ_TRUST_PROXY: 'trustProxy', TQ_PROXIES: 'proxies', TQ_TLS_CERT: 'tls.cert', TQ_TLS_KEY: 'tls.key', TQ_TLS_HTTP_PORT: 'tls.httpPort' } as const
/** Names another configuration file than config/server.yaml. */
export const CONFIG_ENV = 'TQ_CONFIG'

/** What a worker process is given (the worker contract in README.md). */
export const WORKER_ENV = {
  port: 'PORT',
  host: 'HOST',
  name: 'TQ_WORKER_NAME',
  route: 'TQ_WORKER_ROUTE',
  mode: 'TQ_MODE',
  /** The host's trustProxy, as text: whom a worker trusts beyond the host (the SDK's req.ip). */
  hostTrustProxy: 'TQ_HOST_TRUST_PROXY'
} as const
