/**
 * The workloads, built once per system from its request builders: raftkv's /v1 API, or etcd's v3
 * JSON gateway (base64 keys and values, int64 as strings, both linearizable by default).
 */
import type { System } from './cluster.js';
import type { Op, WatchApi, Workload } from './load.js';

export const keyCount = 10_000;
export const valueBytes = 256;

/** A 256-byte printable value (the same bytes for every put: the server must not care). */
const value = Array.from({ length: valueBytes }, (_, i) =>
  String.fromCharCode(97 + ((i * 7) % 26)),
).join('');
const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');

export const benchKey = (i: number) => `bench/k/${String(i).padStart(5, '0')}`;

/** One system's request builders and answer readers. */
export interface Api extends WatchApi {
  get(key: string, serializable: boolean): Op;
  /** Put `key` iff its modRevision is `modRevision` (0: absent); else read it. */
  cas(key: string, modRevision: number): Op;
  /** From a CAS answer: did it apply, and the key's modRevision now. */
  casResult(body: string): { succeeded: boolean; modRevision: number };
}

const raftkvApi: Api = {
  put: (key) => ({ method: 'PUT', path: `/v1/kv/${key}`, body: JSON.stringify({ value }) }),
  putRevision: (body) => (JSON.parse(body) as { revision: number }).revision,
  get: (key, serializable) => ({
    method: 'GET',
    path: serializable ? `/v1/kv/${key}?consistency=serializable` : `/v1/kv/${key}`,
  }),
  cas: (key, modRevision) => ({
    method: 'POST',
    path: '/v1/txn',
    body: JSON.stringify({
      compare: [{ key, target: 'modRevision', op: '==', value: modRevision }],
      success: [{ op: 'put', key, value }],
      failure: [{ op: 'get', key }],
    }),
  }),
  casResult: (body) => {
    const r = JSON.parse(body) as {
      succeeded: boolean;
      revision: number;
      results: Array<{ kvs?: Array<{ modRevision: number }> }>;
    };
    if (r.succeeded) return { succeeded: true, modRevision: r.revision };
    return { succeeded: false, modRevision: r.results[0]?.kvs?.[0]?.modRevision ?? 0 };
  },
  watch: (prefix) => ({ method: 'GET', path: `/v1/watch/${prefix}?prefix=true` }),
  liveOnHeaders: true,
  parser: () => {
    let buffered = '';
    return (text) => {
      buffered += text;
      const blocks = buffered.split('\n\n');
      buffered = blocks.pop() ?? '';
      const revisions: number[] = [];
      for (const block of blocks) {
        if (!block.startsWith('event: change')) continue;
        const id = /^id: (\d+)$/m.exec(block);
        if (id) revisions.push(Number(id[1]));
      }
      return { revisions, live: true };
    };
  },
};

/** etcd's range_end for a prefix: the prefix with its last byte incremented. */
function prefixEnd(prefix: string): string {
  const bytes = Buffer.from(prefix, 'utf8');
  bytes[bytes.length - 1]! += 1;
  return bytes.toString('base64');
}

const etcdValue = b64(value);
const etcdApi: Api = {
  put: (key) => ({
    method: 'POST',
    path: '/v3/kv/put',
    body: `{"key":"${b64(key)}","value":"${etcdValue}"}`,
  }),
  putRevision: (body) =>
    Number((JSON.parse(body) as { header: { revision: string } }).header.revision),
  get: (key, serializable) => ({
    method: 'POST',
    path: '/v3/kv/range',
    body: serializable ? `{"key":"${b64(key)}","serializable":true}` : `{"key":"${b64(key)}"}`,
  }),
  cas: (key, modRevision) => ({
    method: 'POST',
    path: '/v3/kv/txn',
    body: JSON.stringify({
      compare: [
        { key: b64(key), target: 'MOD', result: 'EQUAL', mod_revision: String(modRevision) },
      ],
      success: [{ request_put: { key: b64(key), value: etcdValue } }],
      failure: [{ request_range: { key: b64(key) } }],
    }),
  }),
  casResult: (body) => {
    // proto3 JSON leaves out false booleans: a failed txn has no `succeeded`.
    const r = JSON.parse(body) as {
      header: { revision: string };
      succeeded?: boolean;
      responses?: Array<{ response_range?: { kvs?: Array<{ mod_revision: string }> } }>;
    };
    if (r.succeeded) return { succeeded: true, modRevision: Number(r.header.revision) };
    const kv = r.responses?.[0]?.response_range?.kvs?.[0];
    return { succeeded: false, modRevision: kv ? Number(kv.mod_revision) : 0 };
  },
  watch: (prefix) => ({
    method: 'POST',
    path: '/v3/watch',
    body: JSON.stringify({ create_request: { key: b64(prefix), range_end: prefixEnd(prefix) } }),
  }),
  liveOnHeaders: false,
  // The gateway streams one JSON object per line: `{"result": {created | events}}`.
  parser: () => {
    let buffered = '';
    let live = false;
    return (text) => {
      buffered += text;
      const lines = buffered.split('\n');
      buffered = lines.pop() ?? '';
      const revisions: number[] = [];
      for (const line of lines) {
        if (line.trim() === '') continue;
        const { result } = JSON.parse(line) as {
          result?: { created?: boolean; events?: Array<{ kv: { mod_revision: string } }> };
        };
        if (result?.created) live = true;
        for (const e of result?.events ?? []) revisions.push(Number(e.kv.mod_revision));
      }
      return { revisions, live };
    };
  },
};

export const apis: Record<System, Api> = { raftkv: raftkvApi, etcd: etcdApi };

/** A cheap PRNG (xorshift32) so a run does not depend on Math.random's state. */
function rng(seed: number): () => number {
  let x = seed | 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 0x1_0000_0000;
  };
}

const randomKey = (r: () => number) => benchKey(Math.floor(r() * keyCount));

export function putWorkload(api: Api): Workload {
  const r = rng(1);
  return { next: () => api.put(randomKey(r)) };
}

export function getWorkload(api: Api, serializable: boolean): Workload {
  const r = rng(2);
  return { next: () => api.get(randomKey(r), serializable) };
}

/** 90% linearizable gets, 10% puts, over the same 10k keys. */
export function mixWorkload(api: Api): Workload {
  const r = rng(3);
  return { next: () => (r() < 0.9 ? api.get(randomKey(r), false) : api.put(randomKey(r))) };
}

/** Puts every key once, in order (run before reads so that every get finds its key). */
export function preloadWorkload(api: Api): Workload {
  let i = 0;
  return { next: () => api.put(benchKey(i++ % keyCount)) };
}

/**
 * Compare-and-swap: each in-flight slot owns one key and puts it iff its modRevision is the one
 * the slot last saw; a failed compare (not expected: nobody else writes the key) re-reads it
 * in the same txn and counts as an error `compare_failed`.
 */
export function casWorkload(api: Api, tag: string): Workload {
  const seen = new Map<number, number>();
  return {
    next: (w) => api.cas(`bench/cas/${tag}/${w}`, seen.get(w) ?? 0),
    check: (w, _op, body) => {
      const { succeeded, modRevision } = api.casResult(body);
      seen.set(w, modRevision);
      return succeeded ? undefined : 'compare_failed';
    },
  };
}
