/**
 * The one place raftkv's loggers are made (startNode, restoreNode,
 * RaftKvNode.start and the raftkv command all call createLogger).
 *
 * Every line carries `level` as a name ("info", not 30), `time` in ISO 8601
 * (UTC) and `member`, this member's name. Two formats on the same events:
 * - json (default): one JSON object per line, for collectors;
 * - text: one readable line per event for people —
 *   `2026-12-02T07:41:03.120Z INFO  n1: leader elected: n2 … event=leader_elected term=4 …`.
 * Lines are written synchronously, so the line that says why the process
 * stops is out before it exits.
 */
import pino, { type DestinationStream, type Logger } from 'pino';
import type { NodeConfig } from './config.js';

export type LogFormat = 'json' | 'text';
export const LOG_FORMATS: readonly LogFormat[] = ['json', 'text'];
export type LogLevel = NodeConfig['logLevel'];

export interface LoggerOptions {
  /** This member's name: the `member` field of every line. */
  member: string;
  level: LogLevel;
  format?: LogFormat;
  /** Where lines go; stdout (synchronous) by default. Tests pass a capturing stream. */
  destination?: DestinationStream;
}

export function createLogger(options: LoggerOptions): Logger {
  const out = options.destination ?? pino.destination({ dest: 1, sync: true });
  return pino(
    {
      level: options.level,
      base: { member: options.member },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    options.format === 'text' ? textDestination(out) : out,
  );
}

/** A destination that turns each JSON line pino writes into a text line. */
export function textDestination(out: DestinationStream): DestinationStream {
  return { write: (line: string) => out.write(formatTextLine(line)) };
}

/** Fields shown at the start of a text line rather than as key=value. */
const LEADING = new Set(['time', 'level', 'member', 'msg']);

/**
 * One JSON log line as text: time, level, member and message, then every
 * other field as key=value (strings quoted when they contain spaces, errors
 * as their code and message). Always exactly one line.
 */
export function formatTextLine(jsonLine: string): string {
  let record: Record<string, unknown>;
  try {
    record = JSON.parse(jsonLine) as Record<string, unknown>;
  } catch {
    return oneLine(jsonLine.trimEnd()) + '\n';
  }
  const level = String(record.level ?? '').toUpperCase();
  const head = `${record.time ?? ''} ${level.padEnd(5)} ${record.member ?? ''}: ${record.msg ?? ''}`;
  const fields: string[] = [];
  for (const [key, value] of Object.entries(record)) {
    if (LEADING.has(key) || value === undefined) continue;
    fields.push(`${key}=${textValue(value)}`);
  }
  return oneLine(fields.length > 0 ? `${head}  ${fields.join(' ')}` : head) + '\n';
}

function textValue(value: unknown): string {
  if (value !== null && typeof value === 'object' && 'message' in value) {
    // pino's serialized error: {type, message, stack, code?}; the stack is left to json format.
    const err = value as { message?: unknown; code?: unknown };
    return quote(err.code !== undefined ? `${err.code}: ${err.message}` : String(err.message));
  }
  if (typeof value === 'string') return quote(value);
  return JSON.stringify(value);
}

function quote(s: string): string {
  return /^[^\s"=]+$/.test(s) ? s : JSON.stringify(s);
}

function oneLine(s: string): string {
  return s.replace(/\r?\n/g, '\\n');
}
