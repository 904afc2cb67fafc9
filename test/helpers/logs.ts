// A pino destination that keeps the JSON lines in memory and lets a test await one.
import { EventEmitter } from 'node:events'
import { within } from './wait.js'

export type LogLine = Record<string, unknown> & { level: number, msg?: string }

export class LogRecorder extends EventEmitter {
  readonly lines: LogLine[] = []
  #pending = ''

  /** pino calls write() with one or more complete JSON lines. */
  write (chunk: string | Buffer): boolean {
    this.#pending += chunk.toString()
    let newline = this.#pending.indexOf('\n')
    while (newline !== -1) {
      const text = this.#pending.slice(0, newline)
      this.#pending = this.#pending.slice(newline + 1)
      newline = this.#pending.indexOf('\n')
      try {
        const line = JSON.parse(text) as LogLine
        this.lines.push(line)
        this.emit('line', line)
      } catch {
        // not JSON: a worker writing raw text through a test's own stream
      }
    }
    return true
  }

  /** The first line, past or future, that matches. */
  waitFor (match: (line: LogLine) => boolean, ms: number, what: string): Promise<LogLine> {
    const found = this.lines.find(match)
    if (found) return Promise.resolve(found)
    return this.next(match, ms, what)
  }

  /** The first line from now on that matches. */
  next (match: (line: LogLine) => boolean, ms: number, what: string): Promise<LogLine> {
    let listener: ((line: LogLine) => void) | undefined
    return within(ms, what, new Promise<LogLine>((resolve) => {
      listener = (line) => {
        if (match(line)) resolve(line)
      }
      this.on('line', listener)
    })).finally(() => this.off('line', listener!))
  }

  count (match: (line: LogLine) => boolean): number {
    return this.lines.filter(match).length
  }

  /** Resolves once `n` lines in all (past and future) have matched. */
  waitForCount (match: (line: LogLine) => boolean, n: number, ms: number, what: string): Promise<LogLine | undefined> {
    let seen = this.count(match)
    if (seen >= n) return Promise.resolve(undefined)
    return this.next((line) => match(line) && ++seen >= n, ms, what)
  }

  /** State changes logged for a worker, as "FROM>TO". */
  transitions (worker: string): string[] {
    return this.lines.filter((line) => line.msg === 'worker state changed' && line.worker === worker).map((line) => `${String(line.from)}>${String(line.to)}`)
  }
}
