// What the control plane and a data plane tell each other over IPC (src/proxy/data-planes.ts is the
// control plane's side, src/proxy/data-plane.ts the data plane's). Messages arrive in the order
// sent, so a data plane that answers a question has applied every route change sent before it.
import type { TrustProxy } from '../forwarded-headers.js'
import type { LogLevel } from '../logger.js'
import type { MetricsSnapshot } from '../report/metrics.js'
import type { WorkerSnapshot } from '../routing/route-table.js'
import type { TrafficDelta } from '../routing/upstream-traffic.js'
import type { SlowClientLimits } from './request-router.js'
import type { PublicServerLimits, PublicTls } from './public-server.js'
import type { TlsMaterial } from '../tls/server-tls.js'

/** Everything a data plane serves by: the server configuration it needs, and where the control plane is. */
export interface DataPlaneSettings {
  server: PublicServerLimits
  slowClients: SlowClientLimits & { upstreamConnections: number }
  trustProxy: TrustProxy
  accessLog: boolean
  liveReload: boolean
  logLevel: LogLevel
  /** Strict-Transport-Security max-age for HTTPS answers (tls.hsts; 0: none). */
  hsts: number
  /** The control plane's relay port and key: host paths and upgrades go there (relay-line.ts). */
  relay: { port: number, key: string }
}

/** Where a data plane binds its own socket, with SO_REUSEPORT, when the control plane bound its so. */
export interface ReusePort { port: number, host: string }

/** Route changes carry `seq`; the data plane acknowledges each once applied. */
export type ToDataPlane =
  /** Sent with the control plane's listening socket, unless `reusePort` names the port to bind beside it. */
  | { type: 'start', seq: number, settings: DataPlaneSettings, tls: PublicTls | undefined, workers: WorkerSnapshot[], reusePort: ReusePort | null }
  /** A new certificate, or rotated session ticket keys: for new connections. */
  | { type: 'tls', material: TlsMaterial }
  | { type: 'worker', seq: number, name: string, worker: WorkerSnapshot | null }
  | { type: 'upstream', seq: number, event: 'retired' | 'hung', origin: string }
  | { type: 'idle?', id: number, origin: string, timeoutMs: number }
  | { type: 'metrics?', id: number }
  /** Report what was served up to now (a stats message), then answer `reported`. */
  | { type: 'stats?', id: number }
  /** `cut`: the workers have stopped, connections still open are closed at once. */
  | { type: 'close', cut: boolean }

/** What ended on each upstream since the last stats message, and what is in flight or waiting now. */
export interface OriginStats extends TrafficDelta {
  origin: string
  inflight: number
  /** How long requests have waited on it with no answer coming back (upstream-traffic.ts quietFor). */
  quietMs: number
}

export type FromDataPlane =
  | { type: 'listening' }
  | { type: 'ack', seq: number }
  | { type: 'idle', id: number, idle: boolean }
  | { type: 'metrics', id: number, metrics: MetricsSnapshot }
  | { type: 'reported', id: number }
  | { type: 'stats', served: number, origins: OriginStats[] }
  | { type: 'failed', origin: string }
  | { type: 'log', records: LogRecord[] }

/** A log line written in the control plane's log: level, fields, message. */
export type LogRecord = [level: 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal', fields: Record<string, unknown>, msg: string]
