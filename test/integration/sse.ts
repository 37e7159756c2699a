/**
 * Server-Sent Events over fetch, and a watcher that resumes with
 * `Last-Event-ID` when its stream ends or when the test moves it to another
 * node, the way a client rides out a leader change.
 */
import { sleep } from './http-ops.js';

export interface SseEvent {
  event: string;
  id: string | undefined;
  data: string;
}

/** One SSE frame (the text between blank lines); undefined when it carries neither data nor an id. */
export function parseFrame(frame: string): SseEvent | undefined {
  let event = 'message';
  let id: string | undefined;
  const data: string[] = [];
  for (const line of frame.split('\n')) {
    if (line === '' || line.startsWith(':')) continue;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
    if (field === 'event') event = value;
    else if (field === 'id') id = value;
    else if (field === 'data') data.push(value);
  }
  return data.length === 0 && id === undefined ? undefined : { event, id, data: data.join('\n') };
}

/** The events of an SSE body, until it ends (or the fetch is aborted, which throws). */
export async function* sseEvents(body: ReadableStream<Uint8Array>): AsyncGenerator<SseEvent> {
  const decoder = new TextDecoder();
  const reader = body.getReader();
  let buffer = '';
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += decoder.decode(value, { stream: true }).replace(/\r\n?/g, '\n');
      for (let sep = buffer.indexOf('\n\n'); sep >= 0; sep = buffer.indexOf('\n\n')) {
        const frame = parseFrame(buffer.slice(0, sep));
        buffer = buffer.slice(sep + 2);
        if (frame) yield frame;
      }
    }
  } finally {
    await reader.cancel().catch(() => {});
  }
}

export interface WatchKv {
  key: string;
  value: string;
  createRevision: number;
  modRevision: number;
  version: number;
  lease: string | null;
}

export interface ChangeEvent {
  revision: number;
  events: { type: 'put' | 'delete'; kv: WatchKv; prevKv?: WatchKv }[];
}

export interface Connection {
  url: string;
  resumedAfter: number | undefined;
  changes: number;
  endedBy: string;
}

/**
 * Watches `path` (e.g. `/v1/watch/app%2F?prefix=true`) from `fromRevision`,
 * reconnecting after an end or an error, with `Last-Event-ID` set to the last
 * change it received. Bounded: at most `maxConnections` connections.
 */
export class ResumingWatcher {
  readonly changes: ChangeEvent[] = [];
  readonly connections: Connection[] = [];
  /** Anything the stream did that API.md rules out (gaps are found by comparing with history). */
  readonly problems: string[] = [];
  lastRevision: number | undefined;
  private controller: AbortController | undefined;
  private nextUrl: string | undefined;
  private stopped = false;
  private loop: Promise<void> | undefined;

  constructor(
    private readonly path: string,
    private readonly fromRevision: number,
    /** Where to reconnect after a stream ended on its own. */
    private readonly pickUrl: () => string,
    private readonly maxConnections = 40,
  ) {}

  start(url: string): void {
    this.loop = this.run(url);
  }

  /** Drops the current stream and resumes on `url`. */
  switchTo(url: string): void {
    this.nextUrl = url;
    this.controller?.abort();
  }

  /** The URL of the stream currently open (or being opened). */
  get currentUrl(): string | undefined {
    return this.current;
  }

  private current: string | undefined;

  async waitFor(revision: number, timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while ((this.lastRevision ?? 0) < revision && Date.now() < deadline) await sleep(25);
    return (this.lastRevision ?? 0) >= revision;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.controller?.abort();
    await this.loop;
  }

  private async run(firstUrl: string): Promise<void> {
    let url = firstUrl;
    for (let n = 0; n < this.maxConnections && !this.stopped; n++) {
      const connection: Connection = {
        url,
        resumedAfter: this.lastRevision,
        changes: 0,
        endedBy: '',
      };
      this.connections.push(connection);
      this.current = url;
      connection.endedBy = await this.connectOnce(url, connection);
      if (this.stopped) break;
      if (this.nextUrl) {
        url = this.nextUrl;
        this.nextUrl = undefined;
      } else {
        await sleep(100);
        url = this.nextUrl ?? this.pickUrl();
        this.nextUrl = undefined;
      }
    }
    this.current = undefined;
  }

  private async connectOnce(url: string, connection: Connection): Promise<string> {
    const controller = new AbortController();
    this.controller = controller;
    const resume = this.lastRevision;
    const sep = this.path.includes('?') ? '&' : '?';
    const target = `${url}${this.path}${resume === undefined ? `${sep}fromRevision=${this.fromRevision}` : ''}`;
    try {
      const res = await fetch(target, {
        headers: resume === undefined ? {} : { 'last-event-id': String(resume) },
        signal: controller.signal,
      });
      if (res.status !== 200 || !res.body) {
        await res.text().catch(() => {});
        return `status ${res.status}`;
      }
      for await (const ev of sseEvents(res.body)) {
        if (ev.event === 'change') {
          const change = JSON.parse(ev.data) as ChangeEvent;
          if (ev.id !== String(change.revision))
            this.problems.push(`event id ${ev.id} for revision ${change.revision}`);
          if (this.lastRevision !== undefined && change.revision <= this.lastRevision)
            this.problems.push(
              `revision ${change.revision} after ${this.lastRevision} (from ${url}, resumed after ${resume})`,
            );
          if (resume === undefined && change.revision < this.fromRevision)
            this.problems.push(
              `revision ${change.revision} before fromRevision ${this.fromRevision}`,
            );
          this.changes.push(change);
          this.lastRevision = change.revision;
          connection.changes++;
        } else if (ev.event === 'compacted') {
          this.problems.push(`compacted: ${ev.data}`);
          return 'compacted';
        } else if (ev.event === 'closed') {
          return `closed ${ev.data}`;
        }
      }
      return 'ended';
    } catch (err) {
      if (controller.signal.aborted) return 'switched';
      const e = err as { name?: string; cause?: { code?: string } };
      return `error ${e.cause?.code ?? e.name ?? String(err)}`;
    }
  }
}

/**
 * The history of `path` (a watch URL path) from `fromRevision` up to `upTo`, as one watch
 * replay: a node's whole change log in one request. Undefined if the stream ends or the
 * time runs out before `upTo`.
 */
export async function readHistory(
  url: string,
  path: string,
  fromRevision: number,
  upTo: number,
  timeoutMs: number,
): Promise<ChangeEvent[] | undefined> {
  const changes: ChangeEvent[] = [];
  if (upTo < fromRevision) return changes;
  const sep = path.includes('?') ? '&' : '?';
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), timeoutMs);
  try {
    const res = await fetch(`${url}${path}${sep}fromRevision=${fromRevision}`, {
      signal: controller.signal,
    });
    if (res.status !== 200 || !res.body) return undefined;
    for await (const ev of sseEvents(res.body)) {
      if (ev.event === 'progress' && (JSON.parse(ev.data) as { revision: number }).revision >= upTo)
        return changes;
      if (ev.event !== 'change') continue;
      const change = JSON.parse(ev.data) as ChangeEvent;
      if (change.revision > upTo) return changes;
      changes.push(change);
      if (change.revision === upTo) return changes;
    }
    return undefined;
  } catch {
    return undefined;
  } finally {
    clearTimeout(timer);
    controller.abort();
  }
}
