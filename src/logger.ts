// The logger the core writes to: pino's shape, so a Fastify app's logger fits as it is.
import { pino, type Logger as PinoLogger, type LoggerOptions } from 'pino'
import type { LogLevel } from './config/schema.js'

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

/**
 * Options for the standalone server's pino logger. No `pid` in the base: worker lines carry the
 * worker's pid, and one process's log needs no pid of its own. `pretty` uses pino-pretty (dev, TTY).
 */
export function loggerOptions (level: LogLevel, pretty: boolean): LoggerOptions {
  const options: LoggerOptions = { level, base: null }
  if (pretty) {
    options.transport = {
      target: 'pino-pretty',
      options: { translateTime: 'SYS:HH:MM:ss.l', ignore: 'hostname,worker', singleLine: true, messageFormat: '{if worker}[{worker}] {end}{msg}' }
    }
  }
  return options
}

export function createLogger (level: LogLevel, pretty = false): PinoLogger {
  return pino(loggerOptions(level, pretty))
}
