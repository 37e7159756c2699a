/**
 * A Server-Sent Events parser (the text/event-stream format of the HTML
 * standard), fed with decoded text in chunks of any size.
 *
 * - Lines end with CRLF, LF or CR; a CR at the end of a chunk is held until
 *   the next chunk shows whether an LF follows.
 * - A blank line dispatches the event being built; lines starting with ':'
 *   are comments; `field: value` loses one space after the colon; a line
 *   without a colon is a field with an empty value.
 * - `data` lines are joined with '\n'; `event` names the type (default
 *   'message'); `id` sets the last event id (kept across events, ignored if it
 *   contains NUL); `retry` is reported as a number. Unknown fields are ignored.
 * - An event with no data line is not dispatched (as in browsers); a partial
 *   event at the end of the stream is dropped.
 */
export interface SseEvent {
  event: string;
  data: string;
  /** The last event id seen on the stream so far (SSE semantics), or undefined. */
  id: string | undefined;
}

export class SseParser {
  private buffer = '';
  private started = false;
  private eventType = '';
  private dataLines: string[] = [];
  private hasData = false;
  private lastEventId: string | undefined;
  /** The most recent `retry:` value in milliseconds, if any. */
  retryMs: number | undefined;

  /** Feeds text; returns the events it completed, in order. */
  push(text: string): SseEvent[] {
    let input = this.buffer + text;
    if (!this.started && input.length > 0) {
      this.started = true;
      if (input.charCodeAt(0) === 0xfeff) input = input.slice(1);
    }
    const out: SseEvent[] = [];
    let start = 0;
    for (let i = 0; i < input.length; i++) {
      const c = input.charCodeAt(i);
      if (c !== 10 && c !== 13) continue;
      if (c === 13 && i === input.length - 1) break; // CR at the end: wait for a possible LF
      this.line(input.slice(start, i), out);
      if (c === 13 && input.charCodeAt(i + 1) === 10) i++;
      start = i + 1;
    }
    this.buffer = input.slice(start);
    return out;
  }

  /** The stream ended: a held CR still ends its line; an unterminated event is dropped. */
  end(): SseEvent[] {
    const out: SseEvent[] = [];
    if (this.buffer.endsWith('\r')) this.line(this.buffer.slice(0, -1), out);
    this.buffer = '';
    this.resetEvent();
    return out;
  }

  private line(line: string, out: SseEvent[]): void {
    if (line === '') {
      if (this.hasData) {
        out.push({
          event: this.eventType || 'message',
          data: this.dataLines.join('\n'),
          id: this.lastEventId,
        });
      }
      this.resetEvent();
      return;
    }
    if (line.charCodeAt(0) === 58) return; // ':' comment
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.charCodeAt(0) === 32) value = value.slice(1);
    switch (field) {
      case 'event':
        this.eventType = value;
        break;
      case 'data':
        this.dataLines.push(value);
        this.hasData = true;
        break;
      case 'id':
        if (!value.includes('\0')) this.lastEventId = value;
        break;
      case 'retry':
        if (/^\d+$/.test(value)) this.retryMs = Number(value);
        break;
      default:
        break;
    }
  }

  private resetEvent(): void {
    this.eventType = '';
    this.dataLines = [];
    this.hasData = false;
  }
}
