/**
 * Coordination calls (leases, fenced txns) for the real-process fault tests:
 * each one retried across the given nodes while the cluster has no answer for
 * it (no leader yet, a killed node), bounded in attempts and time. A retried
 * write keeps its Idempotency-Key, so it is applied at most once.
 */
import { randomUUID } from 'node:crypto';
import { call, type Outcome, sleep } from './http-ops.js';

const enc = encodeURIComponent;

/** No answer that settles the request: retry it (a 409/404/400 is an answer). */
const unsettled = (o: Outcome) => o.kind === 'unknown' || (o.kind === 'failed' && o.status >= 500);
const unsettledOrRefused = (o: Outcome) => unsettled(o) || (o.kind === 'failed' && o.status === 0);

/** `path` on `urls()` in turn until settled; throws after `timeoutMs` or 200 attempts. */
export async function settled(
  what: string,
  urls: () => string[],
  path: string,
  init: { method?: string; body?: unknown } = {},
  timeoutMs = 15_000,
): Promise<Outcome> {
  const headers: Record<string, string> =
    init.method && init.method !== 'GET' ? { 'idempotency-key': randomUUID() } : {};
  const deadline = Date.now() + timeoutMs;
  let last: Outcome | undefined;
  for (let i = 0; i < 200 && Date.now() < deadline; i++) {
    const candidates = urls();
    last = await call(candidates[i % candidates.length]!, path, { ...init, headers }, 3_500);
    if (!unsettledOrRefused(last)) return last;
    await sleep(100);
  }
  throw new Error(`${what}: no answer in ${timeoutMs} ms (last ${JSON.stringify(last)})`);
}

/** A new lease of `ttl` seconds: its id. */
export async function grantLease(urls: () => string[], ttl: number): Promise<string> {
  const r = await settled('grant', urls, '/v1/leases', { method: 'POST', body: { ttl } });
  if (r.kind !== 'ok' || r.status !== 201) throw new Error(`grant: ${JSON.stringify(r)}`);
  return r.body.id as string;
}

/** PUTs `key` attached to `lease`; throws unless 200. */
export async function putWithLease(urls: () => string[], key: string, lease: string) {
  const r = await settled('put', urls, `/v1/kv/${enc(key)}`, {
    method: 'PUT',
    body: { value: lease, lease },
  });
  if (r.kind !== 'ok' || r.status !== 200) throw new Error(`put ${key}: ${JSON.stringify(r)}`);
  return r.body.revision!;
}

/** The current revision, from a linearizable read. */
export async function currentRevision(urls: () => string[]): Promise<number> {
  const r = await settled('revision', urls, '/v1/kv/no-such-key');
  if (r.kind !== 'failed' || r.status !== 404) throw new Error(`revision: ${JSON.stringify(r)}`);
  return r.body!.revision!;
}

/** A txn that puts `key`=`value` only while lock `lock` is held with `token`: did it run? */
export async function fencedPut(
  urls: () => string[],
  lock: string,
  token: number,
  key: string,
  value: string,
): Promise<boolean> {
  const r = await settled('fenced txn', urls, '/v1/txn', {
    method: 'POST',
    body: { compare: [{ lock, token }], success: [{ op: 'put', key, value }] },
  });
  if (r.kind !== 'ok' || r.status !== 200 || typeof r.body.succeeded !== 'boolean')
    throw new Error(`fenced txn: ${JSON.stringify(r)}`);
  return r.body.succeeded;
}
