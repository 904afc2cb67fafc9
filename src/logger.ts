// The logger the core writes to: pino's shape, so a Fastify app's logger fits as it is.
import { pino, type Logger as PinoLogger, type LoggerOptions } from 'pino'

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const
export type LogLevel = typeof LOG_LEVELS[number]

type LogFn = (obj: object, msg?: string) => void

export interface Logger {
  level: string
  trace: LogFn
  debug: LogFn
  info: LogFn
  warn: LogFn
  error: LogFn
  fatal: LogFn
  child: (bindings: Record<string, unknown>) => Logger
}

/** A log file rotated by size (logFile in server.yaml), `path` absolute. */
export interface LogFile {
  path: string
  maxSize: string
  keep: number
}

const PRETTY = { translateTime: 'SYS:HH:MM:ss.l', ignore: 'hostname,worker', singleLine: true, messageFormat: '{if worker}[{worker}] {end}{msg}' }

/**
 * Options for the standalone server's pino logger. No `pid` in the base: worker lines carry the
 * worker's pid, and one process's log needs no pid of its own. `pretty` uses pino-pretty (dev,
 * TTY); a `file` adds pino-roll, in pino's transport thread like pino-pretty, so that writing
 * and rotating files never blocks the proxy. Without either, pino writes to stdout directly.
 */
export function loggerOptions (level: LogLevel, pretty: boolean, file?: LogFile): LoggerOptions {
  const options: LoggerOptions = { level, base: null }
  const targets = []
  if (pretty) targets.push({ target: 'pino-pretty', level, options: PRETTY })
  else if (file) targets.push({ target: 'pino/file', level, options: { destination: 1 } })
  if (file) {
    targets.push({
      target: 'pino-roll',
      level,
      // limit.count: rotated files besides the current one; removeOtherLogFiles: also those of
      // earlier runs, which pino-roll otherwise keeps forever.
      options: { file: file.path, size: file.maxSize, mkdir: true, symlink: true, limit: { count: file.keep - 1, removeOtherLogFiles: true } }
    })
  }
  if (targets.length > 0) options.transport = { targets }
  return options
}

export function createLogger (level: LogLevel, pretty = false, file?: LogFile): PinoLogger {
  return pino(loggerOptions(level, pretty, file))
}
