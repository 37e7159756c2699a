/**
 * Helpers for the API tests: requests through `app.inject()` (no socket) or
 * over real HTTP, API.md's error body check, and a Server-Sent Events reader
 * over fetch for watches. Every wait here is bounded.
 */
import type { FastifyInstance } from 'fastify';
import type { Test } from 'tap';
import type { KeyValue } from '../../src/kv/mvcc/key-value.js';
import { startCluster, type TestCluster } from '../integration/helpers.js';
import { parseFrame } from '../integration/sse.js';

export type { TestCluster };

/**
 * A parsed JSON body. Tests read it field by field and check every field they
 * use with t.equal/t.match, so it is left untyped on purpose.
 */
// biome-ignore lint/suspicious/noExplicitAny: see above
export type Json = any;

export interface Reply {
  status: number;
  headers: Record<string, string | string[] | number | undefined>;
  /** Parsed JSON, or the raw text when the reply is not JSON. */
  body: Json;
  text: string;
}

export type Method = 'GET' | 'PUT' | 'POST' | 'DELETE';
/** One bad-input case: what it is, the request, and the status and error code API.md gives. */
export type Case = [
  what: string,
  method: Method,
  url: string,
  opts: RequestOptions,
  status: number,
  code: string,
];

export interface RequestOptions {
  /** An object is sent as JSON with content-type application/json; a string is sent as is. */
  body?: unknown;
  headers?: Record<string, string>;
}

/** The headers an object body gets unless the caller sets its own content-type. */
function bodyAndHeaders(opts: RequestOptions): {
  payload: string | undefined;
  headers: Record<string, string>;
} {
  const headers = { ...(opts.headers ?? {}) };
  if (opts.body === undefined) return { payload: undefined, headers };
  if (typeof opts.body === 'string') return { payload: opts.body, headers };
  if (!Object.keys(headers).some((h) => h.toLowerCase() === 'content-type'))
    headers['content-type'] = 'application/json';
  return { payload: JSON.stringify(opts.body), headers };
}

function parse(text: string): Json {
  if (text === '') return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/** One request through fastify's inject (no socket). */
export async function inject(
  app: FastifyInstance,
  method: 'GET' | 'PUT' | 'POST' | 'DELETE' | 'PATCH' | 'HEAD',
  url: string,
  opts: RequestOptions = {},
): Promise<Reply> {
  const { payload, headers } = bodyAndHeaders(opts);
  const res = await app.inject({
    method,
    url,
    headers,
    ...(payload !== undefined ? { payload } : {}),
  });
  return { status: res.statusCode, headers: res.headers, body: parse(res.body), text: res.body };
}

/** One request over real HTTP (127.0.0.1 only), bounded by `timeoutMs`. */
export async function http(
  baseUrl: string,
  method: 'GET' | 'PUT' | 'POST' | 'DELETE',
  path: string,
  opts: RequestOptions & { timeoutMs?: number } = {},
): Promise<Reply> {
  const { payload, headers } = bodyAndHeaders(opts);
  const res = await fetch(`${baseUrl}${path}`, {
    method,
    headers,
    ...(payload !== undefined ? { body: payload } : {}),
    signal: AbortSignal.timeout(opts.timeoutMs ?? 10_000),
  });
  const text = await res.text();
  return {
    status: res.status,
    headers: Object.fromEntries(res.headers.entries()),
    body: parse(text),
    text,
  };
}

/** `/v1/kv/{key}` with the whole key URL-encoded (`/` becomes %2F, which the server decodes back). */
export function kvPath(key: string, query = ''): string {
  return `/v1/kv/${encodeURIComponent(key)}${query}`;
}

/**
 * API.md's error contract: the status, a JSON body `{"error": {"code", "message"}}`
 * with a non-empty message, and nothing that looks like a framework's own error body.
 */
export function assertError(t: Test, res: Reply, status: number, code: string, what = ''): void {
  const label = what ? `${what}: ` : '';
  t.equal(
    res.status,
    status,
    `${label}status ${status} (got ${res.status}: ${res.text.slice(0, 200)})`,
  );
  t.match(String(res.headers['content-type'] ?? ''), /^application\/json/, `${label}JSON body`);
  t.type(res.body, 'object', `${label}body is an object`);
  t.type(res.body?.error, 'object', `${label}body.error is an object`);
  t.equal(res.body?.error?.code, code, `${label}code ${code}`);
  t.type(res.body?.error?.message, 'string', `${label}error.message is a string`);
  t.ok(String(res.body?.error?.message ?? '').length > 0, `${label}error.message is not empty`);
  t.notOk('statusCode' in (res.body ?? {}), `${label}no framework error fields`);
}

/** Checks that a KV object has exactly API.md's fields with the right types. */
export function assertKv(
  t: Test,
  kv: unknown,
  expected: Partial<KeyValue> = {},
  what = 'kv',
): void {
  t.type(kv, 'object', `${what} is an object`);
  const o = kv as Record<string, unknown>;
  t.strictSame(
    Object.keys(o).sort(),
    ['createRevision', 'key', 'lease', 'modRevision', 'value', 'version'],
    `${what} has exactly API.md's KV fields`,
  );
  t.type(o.key, 'string');
  t.type(o.value, 'string');
  for (const f of ['createRevision', 'modRevision', 'version'] as const) {
    t.ok(Number.isSafeInteger(o[f]) && (o[f] as number) >= 0, `${what}.${f} is a count`);
  }
  t.ok(o.lease === null || typeof o.lease === 'string', `${what}.lease is a string or null`);
  if (Object.keys(expected).length > 0) t.match(o, expected, `${what} matches`);
}

export interface SingleNode {
  cluster: TestCluster;
  app: FastifyInstance;
  url: string;
  close(): Promise<void>;
}

/** One real node (LevelDB in a temp dir, free 127.0.0.1 ports) that has elected itself. */
export async function startSingleNode(requestTimeoutMs = 3000): Promise<SingleNode> {
  const cluster = await startCluster(1, { requestTimeoutMs });
  await cluster.waitForLeader();
  return {
    cluster,
    app: cluster.nodes[0]!.app,
    url: cluster.url(0),
    close: () => cluster.close(),
  };
}

/** Polls `check` every 20 ms until it returns a value other than undefined, or fails after `timeoutMs`. */
export async function eventually<T>(
  what: string,
  check: () => Promise<T | undefined> | T | undefined,
  timeoutMs = 5000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

// ---------------------------------------------------------------- Server-Sent Events

export interface SseEvent {
  event: string;
  id: string | undefined;
  data: Json;
  /** The event's lines as sent, without the blank line that ends it. */
  raw: string;
}

export interface SseStream {
  status: number;
  headers: Headers;
  /** The next event, or undefined when the server ended the stream. Rejects after timeoutMs. */
  next(timeoutMs?: number): Promise<SseEvent | undefined>;
  /** Events (skipping progress) until `count` change events arrived. */
  changes(count: number, timeoutMs?: number): Promise<SseEvent[]>;
  /** Resolves true if nothing but progress events arrive within `ms` (and the stream stays open). */
  quietFor(ms: number): Promise<boolean>;
  close(): void;
}

/** Opens `GET path` as an event stream over real HTTP and parses it incrementally. */
export async function openSse(
  baseUrl: string,
  path: string,
  headers: Record<string, string> = {},
): Promise<SseStream> {
  const abort = new AbortController();
  const res = await fetch(`${baseUrl}${path}`, {
    headers: { accept: 'text/event-stream', ...headers },
    signal: AbortSignal.any([abort.signal, AbortSignal.timeout(60_000)]),
  });
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  let ended = false;
  const queue: SseEvent[] = [];
  let pendingRead: Promise<void> | undefined;

  const parseBuffer = () => {
    for (;;) {
      const end = buffer.indexOf('\n\n');
      if (end < 0) return;
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const frame = parseFrame(block);
      if (!frame || (frame.data === '' && frame.event === 'message')) continue;
      const { event, id, data: text } = frame;
      let parsed: unknown = text;
      try {
        parsed = JSON.parse(text);
      } catch {}
      queue.push({ event, id, data: parsed, raw: block });
    }
  };

  const readMore = (): Promise<void> => {
    pendingRead ??= reader.read().then(
      ({ done, value }) => {
        pendingRead = undefined;
        if (done) ended = true;
        else {
          buffer += decoder.decode(value, { stream: true });
          parseBuffer();
        }
      },
      () => {
        pendingRead = undefined;
        ended = true;
      },
    );
    return pendingRead;
  };

  const next = async (timeoutMs = 5000): Promise<SseEvent | undefined> => {
    const deadline = Date.now() + timeoutMs;
    while (queue.length === 0 && !ended) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no SSE event within ${timeoutMs} ms`);
      let timer: NodeJS.Timeout | undefined;
      const timedOut = new Promise<'timeout'>((r) => {
        timer = setTimeout(() => r('timeout'), left);
      });
      const outcome = await Promise.race([readMore(), timedOut]);
      clearTimeout(timer);
      if (outcome === 'timeout') throw new Error(`no SSE event within ${timeoutMs} ms`);
    }
    return queue.shift();
  };

  return {
    status: res.status,
    headers: res.headers,
    next,
    async changes(count, timeoutMs = 5000) {
      const out: SseEvent[] = [];
      const deadline = Date.now() + timeoutMs;
      while (out.length < count) {
        const e = await next(Math.max(1, deadline - Date.now()));
        if (e === undefined)
          throw new Error(`stream ended after ${out.length} of ${count} changes`);
        if (e.event === 'progress') continue;
        out.push(e);
      }
      return out;
    },
    async quietFor(ms) {
      const deadline = Date.now() + ms;
      for (;;) {
        const left = deadline - Date.now();
        if (left <= 0) return true;
        try {
          const e = await next(left);
          if (e === undefined || e.event !== 'progress') {
            if (e) queue.unshift(e);
            return false;
          }
        } catch {
          return true;
        }
      }
    },
    close() {
      abort.abort();
      reader.cancel().catch(() => {});
    },
  };
}
