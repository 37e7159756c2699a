/**
 * kvctl's output, chosen once: the global `-o/--output` flag picks one
 * Printer for the whole invocation, and every command hands it both forms of
 * its answer — the value (the API's JSON) and a function rendering the table
 * text — so no command decides the format for itself.
 *
 * The formats:
 * - `table` (default): the text form; tables have a header row and two
 *   spaces between columns, single objects are `field  value` lines, and
 *   control characters in cells are escaped so one value stays on one line.
 * - `json`: `show` prints the value indented (one answer), `line` on one line
 *   (one event of a stream, so the output can be consumed line by line).
 */
import type { Writable } from 'node:stream';

export const FORMATS = ['table', 'json'] as const;
export type Format = (typeof FORMATS)[number];

export interface Printer {
  readonly format: Format;
  /** A command's one answer: indented JSON, or `text()` (rendered only for `table`). */
  show(value: unknown, text: () => string): void;
  /** One event of a stream or a long-running command: single-line JSON, or `text()`. */
  line(value: unknown, text: () => string): void;
}

/** What a printer writes to: process.stdout, or a collecting stream in tests. */
export type Output = Pick<Writable, 'write'>;

/** The printer of `format`, writing to `out` (stdout unless given). */
export function printerFor(format: Format, out: Output = process.stdout): Printer {
  const write = (text: string) => {
    out.write(`${text}\n`);
  };
  if (format === 'json')
    return {
      format,
      show: (value) => write(JSON.stringify(value, null, 2)),
      line: (value) => write(JSON.stringify(value)),
    };
  return {
    format,
    show: (_value, text) => write(text()),
    line: (_value, text) => write(text()),
  };
}

// ------------------------------------------------------------------ the table form's pieces

/** A table cell: control characters escaped so one value stays on one line. */
export function cell(value: unknown): string {
  if (value === null || value === undefined || value === '') return '-';
  return String(value).replace(
    // biome-ignore lint/suspicious/noControlCharactersInRegex: escaping them is the point
    /[\u0000-\u001f\u007f]/g,
    (c) =>
      c === '\n'
        ? '\\n'
        : c === '\t'
          ? '\\t'
          : c === '\r'
            ? '\\r'
            : `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`,
  );
}

/** Columns padded to their widest cell, two spaces apart; the last column is not padded. */
export function table(headers: string[], rows: unknown[][]): string {
  const text = rows.map((r) => r.map(cell));
  const widths = headers.map((h, i) => Math.max(h.length, ...text.map((r) => r[i]!.length)));
  const line = (cols: string[]) =>
    cols
      .map((c, i) => (i === cols.length - 1 ? c : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(headers), ...text.map(line)].join('\n');
}

/** Two columns, field and value, for a single object. */
export function fields(entries: [string, unknown][]): string {
  const width = Math.max(...entries.map(([k]) => k.length));
  return entries.map(([k, v]) => `${k.padEnd(width)}  ${cell(v)}`).join('\n');
}
