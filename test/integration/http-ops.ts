/**
 * HTTP calls for the fault tests, each classified by API.md's outcome rules:
 *
 * - `ok`: a 2xx, or a 409 `compare_failed` (a guard that was false is a real,
 *   applied-nothing answer that a linearizability check must explain);
 * - `failed`: any other 4xx, a 503, or a connection refused before anything was
 *   sent: the request certainly was not applied;
 * - `unknown`: a 504, any other 5xx, a reset connection or a client-side
 *   timeout after the request was sent: it may or may not have been applied.
 *
 * Every call is bounded by a client-side timeout, so no test can hang on a
 * node that stopped answering.
 */

/** A KV as API.md returns it. */
export interface Kv {
  key: string;
  value: string;
  createRevision: number;
  modRevision: number;
  version: number;
  lease: string | null;
}

/** The fields of API.md's answers that these tests read; anything else stays unknown. */
export interface Reply {
  revision?: number;
  kv?: Kv | null;
  kvs?: Kv[];
  succeeded?: boolean;
  deleted?: number;
  error?: { code: string; message: string };
  [field: string]: unknown;
}

export type Outcome =
  | { kind: 'ok'; status: number; body: Reply }
  | { kind: 'failed'; status: number; body: Reply | undefined; detail: string }
  | { kind: 'unknown'; status: number; detail: string };

/** Client-side bound on one request: a bit above the nodes' request timeout (3 s in tests). */
export const CLIENT_TIMEOUT_MS = 5_000;

function errorCode(err: unknown): string {
  const e = err as { name?: unknown; code?: unknown; cause?: { code?: unknown; name?: unknown } };
  // The first string: a client-side timeout is a DOMException whose `code` is the number 23.
  const found = [e.cause?.code, e.code, e.cause?.name, e.name].find((c) => typeof c === 'string');
  return (found as string | undefined) ?? 'error';
}

/** One request, classified. `status` is 0 when no HTTP answer arrived. */
export async function call(
  url: string,
  path: string,
  init: { method?: string; body?: unknown; headers?: Record<string, string> } = {},
  timeoutMs = CLIENT_TIMEOUT_MS,
): Promise<Outcome> {
  let res: Response;
  let text: string;
  try {
    res = await fetch(`${url}${path}`, {
      method: init.method ?? 'GET',
      headers: {
        ...(init.body !== undefined ? { 'content-type': 'application/json' } : {}),
        ...init.headers,
      },
      ...(init.body !== undefined ? { body: JSON.stringify(init.body) } : {}),
      signal: AbortSignal.timeout(timeoutMs),
    });
    text = await res.text();
  } catch (err) {
    const code = errorCode(err);
    // Refused: the request never reached a server, so it cannot have been applied.
    if (code === 'ECONNREFUSED')
      return { kind: 'failed', status: 0, body: undefined, detail: code };
    return { kind: 'unknown', status: 0, detail: code };
  }
  let body: Reply | undefined;
  try {
    body = text ? (JSON.parse(text) as Reply) : undefined;
  } catch {
    body = { text };
  }
  const status = res.status;
  if (status >= 200 && status < 300) return { kind: 'ok', status, body: body ?? {} };
  if (status === 409 && body?.error?.code === 'compare_failed') return { kind: 'ok', status, body };
  const detail = `${status} ${body?.error?.code ?? ''} ${body?.error?.message ?? ''}`.trim();
  if ((status >= 400 && status < 500) || status === 503)
    return { kind: 'failed', status, body, detail };
  return { kind: 'unknown', status, detail };
}

/** The revision an ok answer carries (0 otherwise). */
export const revisionOf = (o: Outcome): number => (o.kind === 'ok' ? (o.body.revision ?? 0) : 0);

/** The value of the KV an ok answer carries, if any. */
export const kvValue = (o: Outcome): string | undefined =>
  o.kind === 'ok' ? (o.body.kv?.value ?? undefined) : undefined;

const keyPath = (key: string) => `/v1/kv/${encodeURIComponent(key)}`;

export function putKey(
  url: string,
  key: string,
  value: string,
  guard: { prevValue?: string; prevRevision?: number } = {},
  timeoutMs?: number,
): Promise<Outcome> {
  return call(url, keyPath(key), { method: 'PUT', body: { value, ...guard } }, timeoutMs);
}

export function getKey(url: string, key: string, query = '', timeoutMs?: number) {
  return call(url, `${keyPath(key)}${query}`, {}, timeoutMs);
}

/** A compare-and-swap as a txn: put `value` iff the key's value is `expected` (null: absent). */
export function casTxn(
  url: string,
  key: string,
  expected: string | null,
  value: string,
  timeoutMs?: number,
): Promise<Outcome> {
  const compare =
    expected === null
      ? { key, target: 'version', op: '==', value: 0 }
      : { key, target: 'value', op: '==', value: expected };
  return call(
    url,
    '/v1/txn',
    { method: 'POST', body: { compare: [compare], success: [{ op: 'put', key, value }] } },
    timeoutMs,
  );
}

export interface NodeStatus {
  id: string;
  name: string;
  role: string;
  leader: string | null;
  term: number;
  commitIndex: number;
  appliedIndex: number;
  revision: number;
  members: number;
}

/** GET /v1/status, or undefined when the node does not answer in time. */
export async function status(url: string, timeoutMs = 1_000): Promise<NodeStatus | undefined> {
  const r = await call(url, '/v1/status', {}, timeoutMs);
  return r.kind === 'ok' ? (r.body as unknown as NodeStatus) : undefined;
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Polls `probe` every `everyMs` until it returns a value other than undefined; throws after `timeoutMs`. */
export async function waitUntil<T>(
  what: string,
  probe: () => Promise<T | undefined> | T | undefined,
  timeoutMs: number,
  everyMs = 50,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (let i = 0; i < 100_000; i++) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() >= deadline) break;
    await sleep(everyMs);
  }
  throw new Error(
    `timed out after ${timeoutMs} ms waiting for ${what}${last ? ` (last error: ${String(last)})` : ''}`,
  );
}

/** Runs `fn` over `items` with at most `limit` calls in flight. */
export async function mapLimit<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

/** A small seeded PRNG (mulberry32) so a failing run can be replayed with its seed. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
