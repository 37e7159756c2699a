/**
 * Log lines of in-process nodes, captured through raftkv's own logger
 * factory with a destination stream that keeps them (parsed) in memory.
 */
import type { Logger } from 'pino';
import { createLogger, type LogLevel } from '../../src/server/logger.js';

export interface LogLine {
  level: string;
  time: string;
  member: string;
  msg: string;
  event?: string;
  [field: string]: unknown;
}

export class LogCapture {
  /** Every line as written, in order. */
  readonly raw: string[] = [];
  readonly lines: LogLine[] = [];

  /** A logger for member `name` whose JSON lines land here. */
  logger(name: string, level: LogLevel = 'info'): Logger {
    return createLogger({
      member: name,
      level,
      format: 'json',
      destination: {
        write: (line: string) => {
          this.raw.push(line);
          this.lines.push(JSON.parse(line) as LogLine);
        },
      },
    });
  }

  /** Lines of `event`, optionally only `member`'s and those matching `where`. */
  events(event: string, member?: string, where: (l: LogLine) => boolean = () => true): LogLine[] {
    return this.lines.filter(
      (l) => l.event === event && (member === undefined || l.member === member) && where(l),
    );
  }

  /** Waits (bounded) until `event` was logged by `member` (matching `where`); returns the first such line. */
  async waitFor(
    event: string,
    member: string | undefined,
    where: (l: LogLine) => boolean = () => true,
    timeoutMs = 10_000,
  ): Promise<LogLine> {
    const deadline = Date.now() + timeoutMs;
    for (let i = 0; i < 10_000; i++) {
      const found = this.events(event, member, where)[0];
      if (found) return found;
      if (Date.now() >= deadline) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    throw new Error(
      `no ${event} line from ${member ?? 'any member'} within ${timeoutMs} ms; events seen: ${this.lines
        .map((l) => `${l.member}:${l.event ?? l.msg}`)
        .slice(-40)
        .join(', ')}`,
    );
  }
}
