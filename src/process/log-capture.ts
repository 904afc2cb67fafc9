// Reads a worker's stdout and stderr line by line into the server log, and keeps the last lines of
// each worker so that a worker that fails to start can show why. JSON lines written by pino in the
// worker keep their level and fields; other lines are logged at info (stdout) or error (stderr).
import { StringDecoder } from 'node:string_decoder'
import type { Readable } from 'node:stream'
import type { Logger } from '../logger.js'

export type OutputStream = 'stdout' | 'stderr'

export interface OutputLine {
  time: number
  pid: number
  stream: OutputStream
  text: string
}

/** A longer line is split into pieces of this size: a worker writing without newlines cannot grow our memory. */
const MAX_LINE_CHARS = 16 * 1024

const PINO_LEVELS: Record<number, 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal'> = {
  10: 'trace', 20: 'debug', 30: 'info', 40: 'warn', 50: 'error', 60: 'fatal'
}

/** The last lines a worker wrote, across its processes. */
export class OutputBuffer {
  readonly #limit: number
  #lines: OutputLine[] = []

  constructor (limit: number) {
    this.#limit = limit
  }

  push (line: OutputLine): void {
    if (this.#limit === 0) return
    this.#lines.push(line)
    if (this.#lines.length > this.#limit) this.#lines.splice(0, this.#lines.length - this.#limit)
  }

  /** The last `count` lines, oldest first; all of them when count is omitted. */
  last (count = this.#limit): OutputLine[] {
    return this.#lines.slice(-count)
  }

  /** The last lines of one process as text, for error messages. */
  tail (pid: number, count: number): string {
    return this.#lines.filter((line) => line.pid === pid).slice(-count).map((line) => line.text).join('\n')
  }
}

/**
 * Where a process's lines go: `log` carries the worker and pid bindings. Changeable, because a
 * standby process's output is read from its start but belongs to a worker only once it loads one.
 */
export interface OutputSink {
  log: Logger
  buffer: OutputBuffer
}

/** Forwards one process's stdout and stderr to `sink`. */
export function captureOutput (streams: Record<OutputStream, Readable | null>, pid: number, sink: OutputSink): void {
  for (const stream of ['stdout', 'stderr'] as const) {
    const source = streams[stream]
    if (!source) continue
    forEachLine(source, (text) => {
      sink.buffer.push({ time: Date.now(), pid, stream, text: logLine(text, stream, sink.log.child({ stream })) })
    })
  }
}

/** Logs one line and returns its readable text for the buffer. */
function logLine (line: string, stream: OutputStream, log: Logger): string {
  const record = line.startsWith('{') ? parseJson(line) : undefined
  const level = record && typeof record.level === 'number' ? PINO_LEVELS[record.level] : undefined
  if (!record || !level) {
    log[stream === 'stderr' ? 'error' : 'info']({}, line)
    return line
  }
  const { level: _level, time: _time, pid: _pid, hostname: _hostname, msg, ...fields } = record
  const text = typeof msg === 'string' ? msg : line
  log[level](fields, text)
  const stack = (fields.err as { stack?: unknown } | undefined)?.stack
  return typeof stack === 'string' ? `${text}\n${stack}` : text
}

function parseJson (line: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(line)
    return value !== null && typeof value === 'object' && !Array.isArray(value) ? value as Record<string, unknown> : undefined
  } catch {
    return undefined
  }
}

/** Calls `onLine` for each complete line; a partial last line is flushed when the stream ends. */
function forEachLine (source: Readable, onLine: (line: string) => void): void {
  const decoder = new StringDecoder('utf8')
  let pending = ''
  const emit = (line: string) => {
    const trimmed = line.endsWith('\r') ? line.slice(0, -1) : line
    if (trimmed.length > 0) onLine(trimmed)
  }
  source.on('data', (chunk: Buffer) => {
    pending += decoder.write(chunk)
    let newline = pending.indexOf('\n')
    while (newline !== -1) {
      emit(pending.slice(0, newline))
      pending = pending.slice(newline + 1)
      newline = pending.indexOf('\n')
    }
    while (pending.length > MAX_LINE_CHARS) {
      emit(pending.slice(0, MAX_LINE_CHARS))
      pending = pending.slice(MAX_LINE_CHARS)
    }
  })
  source.on('end', () => emit(pending + decoder.end()))
}
