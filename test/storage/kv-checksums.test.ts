/**
 * Checksums on the kv sublevel (storage format 3): every record of the
 * applied key-value state is sealed with a CRC-32C seeded by its key, at the
 * storage boundary only. A flipped bit or a record under another key makes
 * kvRecords() throw 'corrupt' naming the key, before the state machine sees
 * any of it; a format 2 dir (bare kv records) is re-sealed at open in bounded
 * batches, and an upgrade stopped half way finishes on the next open.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Level } from 'level';
import t, { type Test } from 'tap';
import { type Command, encodeCommand, isSkipped, KvStateMachine } from '../../src/kv/index.js';
import {
  DecodeError,
  decodeKvResealedThrough,
  sealKvValue,
  showKvKey,
  unsealKvValue,
} from '../../src/storage/codec.js';
import { crc32c, crc32cOfText } from '../../src/storage/crc32c.js';
import { LevelRaftStorage, type LevelStorageOptions } from '../../src/storage/index.js';
import { META_KEY, SUBLEVEL } from '../../src/storage/keys.js';
import { fixtureDir, format2DirWith, IDENTITY, tempDir } from './helpers.js';

type RawDb = Level<Uint8Array, Uint8Array>;

const ADVICE = /remove this member and add it back with an empty data dir/;
const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

async function withRawDb<T>(dir: string, fn: (db: RawDb) => Promise<T>): Promise<T> {
  const db = new Level<Uint8Array, Uint8Array>(dir, { keyEncoding: 'view', valueEncoding: 'view' });
  await db.open();
  try {
    return await fn(db);
  } finally {
    await db.close();
  }
}

const textSub = (db: RawDb, name: string) =>
  db.sublevel<string, Uint8Array>(name, { keyEncoding: 'utf8', valueEncoding: 'view' });

/** The kv sublevel as stored on disk, key → raw bytes. */
async function rawKv(dir: string): Promise<Map<string, Uint8Array>> {
  return withRawDb(dir, async (db) => {
    const out = new Map<string, Uint8Array>();
    for await (const [k, v] of textSub(db, SUBLEVEL.kv).iterator()) out.set(k, Uint8Array.from(v));
    return out;
  });
}

async function collect(s: LevelRaftStorage): Promise<[string, Uint8Array][]> {
  const out: [string, Uint8Array][] = [];
  for await (const [k, v] of s.kvRecords()) out.push([k, Uint8Array.from(v)]);
  return out;
}

const texts = (records: [string, Uint8Array][]) =>
  records.map(([k, v]) => [k, decoder.decode(v)] as [string, string]);

t.test('crc32cOfText is the CRC-32C of the UTF-8, without encoding ASCII', async (t) => {
  const samples = ['', 'k/0000000000000001/00000000', 'a/u/zoë', 'ключ', '✓ then ascii', '😀x'];
  samples.push('lone \ud800 surrogate', 'x'.repeat(1000));
  for (const s of samples) t.equal(crc32cOfText(s), crc32c(encoder.encode(s)), JSON.stringify(s));
  t.equal(crc32cOfText('b', crc32cOfText('a')), crc32cOfText('ab'), 'chains like crc32c');
});

t.test('every single-bit flip of a sealed kv record is refused', async (t) => {
  const key = 'l/lease-1';
  const value = encoder.encode('{"id":"lease-1","ttlMs":5000}');
  const sealed = sealKvValue(key, value);
  t.equal(sealed[0], 2, 'version byte: sealed');
  t.same(unsealKvValue(key, sealed), value, 'round trip');
  let refused = 0;
  for (let byte = 0; byte < sealed.byteLength; byte++) {
    for (let bit = 0; bit < 8; bit++) {
      const damaged = Uint8Array.from(sealed);
      damaged[byte]! ^= 1 << bit;
      try {
        unsealKvValue(key, damaged);
      } catch (err) {
        if (err instanceof DecodeError) refused++;
      }
    }
  }
  t.equal(refused, sealed.byteLength * 8, `all ${sealed.byteLength * 8} flips refused`);
  t.throws(() => unsealKvValue('l/lease-2', sealed), /checksum mismatch/, 'under another key');
  t.throws(() => unsealKvValue(key, value), /unknown record version 123/, 'a bare value');
  t.throws(() => unsealKvValue(key, sealed.subarray(0, 3)), /truncated/, 'a torn value');
  t.throws(() => unsealKvValue(key, new Uint8Array(0)), /truncated/, 'an empty value');
  t.same(unsealKvValue('', sealKvValue('', new Uint8Array(0))), new Uint8Array(0), 'empty both');
});

t.test('a key in a message is quoted, escaped and cut', async (t) => {
  t.equal(showKvKey('k/0001'), '"k/0001"');
  t.equal(showKvKey('d/alice\u0000key\n'), '"d/alice\\u0000key\\n"');
  t.equal(showKvKey('a\u0085b\u2028'), '"a\\u0085b\\u2028"');
  const long = `d/${'x'.repeat(200)}`;
  t.equal(showKvKey(long), `"d/${'x'.repeat(78)}"… (202 characters)`);
});

/** Applies `cmds` at indexes 2.. and persists each entry, then the state machine's changes. */
async function applyAll(
  s: LevelRaftStorage,
  sm: KvStateMachine,
  cmds: { cmd: Command; atMs: number; idempotencyKey?: string }[],
): Promise<void> {
  for (const { cmd, atMs, idempotencyKey } of cmds) {
    const index = s.lastIndex() + 1;
    const data = encodeCommand({ v: 1, atMs, cmd, ...(idempotencyKey ? { idempotencyKey } : {}) });
    await s.persistReady(
      {
        entries: [{ index, term: 1, type: 'normal', data }],
        hardState: { term: 1, vote: 'n1', commit: index },
      },
      true,
    );
    const result = sm.apply(index, data);
    if (isSkipped(result) || !result.ok) throw new Error(`${cmd.type}: ${JSON.stringify(result)}`);
    await s.persistApplied(index, undefined, sm.takeMutations());
  }
}

/** Every kind of state machine record: versions, tombstones, leases, dedup, auth, alarms, meta. */
const EVERY_KIND: { cmd: Command; atMs: number; idempotencyKey?: string }[] = [
  { cmd: { type: 'put', key: 'config/a', value: 'alpha' }, atMs: 1_000 },
  { cmd: { type: 'put', key: 'config/b', value: 'beta' }, atMs: 1_001 },
  { cmd: { type: 'put', key: 'config/a', value: 'alpha-2' }, atMs: 1_002 },
  { cmd: { type: 'delete', key: 'config/b' }, atMs: 1_003 },
  { cmd: { type: 'leaseGrant', id: 'lease-1', ttlMs: 60_000 }, atMs: 1_004 },
  { cmd: { type: 'put', key: 'svc/web-1', value: 'up', lease: 'lease-1' }, atMs: 1_005 },
  { cmd: { type: 'leaseKeepAlive', id: 'lease-1' }, atMs: 1_006 },
  { cmd: { type: 'put', key: 'idem/x', value: 'once' }, atMs: 1_007, idempotencyKey: 'idem-1' },
  {
    cmd: {
      type: 'authRolePut',
      name: 'app',
      permissions: [{ resource: 'kv', prefix: 'app/', access: 'readwrite' }],
    },
    atMs: 1_008,
  },
  { cmd: { type: 'authUserPut', name: 'alice', passwordHash: 'h', roles: ['app'] }, atMs: 1_009 },
  { cmd: { type: 'put', key: 'unicode/ключ ✓', value: 'ü' }, atMs: 1_010 },
  { cmd: { type: 'alarm', action: 'raise', alarm: 'nospace', memberId: 'n1' }, atMs: 1_011 },
  { cmd: { type: 'compact', revision: 2 }, atMs: 1_012 },
];

/** A dir whose kv sublevel holds every kind of record, written through the real state machine. */
async function dirWithEveryKind(t: Test): Promise<{ dir: string; sm: KvStateMachine }> {
  const dir = await tempDir(t);
  const s = await LevelRaftStorage.open(dir);
  await s.initialize(IDENTITY, ['n1']);
  const sm = new KvStateMachine();
  await applyAll(s, sm, EVERY_KIND);
  await s.close();
  return { dir, sm };
}

const KINDS = ['m/meta', 'k/', 'l/', 'd/', 'a/meta', 'a/u/', 'a/r/', 'q/'];

t.test('every record kind round-trips through the real state machine', async (t) => {
  const { dir, sm } = await dirWithEveryKind(t);
  const raw = await rawKv(dir);
  for (const kind of KINDS)
    t.ok(
      [...raw.keys()].some((k) => k.startsWith(kind)),
      `a ${kind} record`,
    );
  t.ok(
    [...raw.values()].every((v) => v[0] === 2),
    `all ${raw.size} stored kv records are sealed`,
  );

  const s = await LevelRaftStorage.open(dir);
  t.teardown(() => s.close());
  const records = await collect(s);
  t.same(
    texts(records),
    [...sm.records()]
      .map(([k, v]) => [k, decoder.decode(v)])
      .sort(([a], [b]) => (a! < b! ? -1 : 1)),
    'kvRecords() hands out the state machine records, bare, in key order',
  );
  const loaded = KvStateMachine.load(records, s.appliedIndex());
  t.same(loaded.snapshot(), sm.snapshot(), 'the loaded state machine equals the one that wrote');
  t.match(loaded.get('config/a'), { ok: true, kv: { value: 'alpha-2', version: 2 } });
  t.match(loaded.get('config/b'), { ok: true, kv: null }, 'the deleted key stays deleted');
  t.same(loaded.lease('lease-1')?.keys, ['svc/web-1'], 'the lease and its key');
  t.equal(loaded.alarms().length, 1, 'the alarm');

  // The install paths seal too: replaceKv (raftkv restore, a chunked install) and installRecords.
  for (const kvBatchMaxBytes of [undefined, 200]) {
    const other = await tempDir(t);
    const o = await LevelRaftStorage.open(other, kvBatchMaxBytes ? { kvBatchMaxBytes } : {});
    await o.initialize(IDENTITY, ['n1']);
    await o.replaceKv(sm.records(), 1, { voters: ['n1'], learners: [] });
    t.same(await collect(o), records, `replaceKv${kvBatchMaxBytes ? ' in chunks' : ''}`);
    await o.close();
    t.ok(
      [...(await rawKv(other)).values()].every((v) => v[0] === 2),
      'sealed on disk',
    );
  }
  const joined = await tempDir(t);
  const j = await LevelRaftStorage.open(joined);
  await j.initialize(IDENTITY, undefined);
  const metadata = { index: 20, term: 2, confState: { voters: ['n1'], learners: [] } };
  await j.persistReady({ snapshot: { metadata, data: new Uint8Array(0) }, entries: [] }, true, {
    installRecords: sm.records(),
  });
  t.same(await collect(j), records, 'a snapshot installed with persistReady');
  await j.close();
  t.ok(
    [...(await rawKv(joined)).values()].every((v) => v[0] === 2),
    'sealed on disk',
  );
});

const DAMAGES: {
  name: string;
  key: string;
  damage: (raw: Map<string, Uint8Array>) => Uint8Array;
  message: RegExp;
}[] = [
  {
    name: 'a flipped bit in the lease record',
    key: 'l/lease-1',
    damage: (raw) => flip(raw.get('l/lease-1')!, 20, 4),
    message: /\(sublevel kv, key "l\/lease-1": checksum mismatch/,
  },
  {
    name: 'a flipped bit in the checksum of the meta record',
    key: 'm/meta',
    damage: (raw) => flip(raw.get('m/meta')!, 3, 0),
    message: /\(sublevel kv, key "m\/meta": checksum mismatch/,
  },
  {
    name: 'the version byte of a user record flipped',
    key: 'a/u/alice',
    damage: (raw) => flip(raw.get('a/u/alice')!, 0, 2),
    message: /\(sublevel kv, key "a\/u\/alice": unknown record version 6\)/,
  },
  {
    name: 'the first version record stored under the second (a misdirected write)',
    key: 'k/0000000000000002/00000000',
    damage: (raw) => raw.get('k/0000000000000003/00000000')!,
    message: /\(sublevel kv, key "k\/0000000000000002\/00000000": checksum mismatch/,
  },
  {
    name: 'a torn dedup record',
    key: 'd/idem-1',
    damage: (raw) => raw.get('d/idem-1')!.subarray(0, 4),
    message: /\(sublevel kv, key "d\/idem-1": truncated before record checksum/,
  },
  {
    name: 'a bare record (as format 2 stored it) in a format 3 dir',
    key: 'a/meta',
    damage: (raw) => unsealKvValue('a/meta', raw.get('a/meta')!),
    message: /\(sublevel kv, key "a\/meta": unknown record version 123\)/,
  },
];

function flip(bytes: Uint8Array, byte: number, bit: number): Uint8Array {
  const out = Uint8Array.from(bytes);
  out[byte]! ^= 1 << bit;
  return out;
}

for (const d of DAMAGES) {
  t.test(`kvRecords() refuses ${d.name}, naming the key`, async (t) => {
    const { dir } = await dirWithEveryKind(t);
    const raw = await rawKv(dir);
    t.ok(raw.has(d.key), `the dir has ${d.key}`);
    const damaged = d.damage(raw);
    await withRawDb(dir, (db) => textSub(db, SUBLEVEL.kv).put(d.key, damaged));
    const s = await LevelRaftStorage.open(dir);
    t.teardown(() => s.close());
    const err = await collect(s).catch((e: unknown) => e);
    t.match(err, { name: 'StorageError', code: 'corrupt', dataDir: dir, message: d.message });
    t.match(err, { message: ADVICE });
    t.match(err, { message: new RegExp(`^data dir ${dir} is damaged`) });
  });
}

/**
 * test/storage/fixtures/format-2 was written by a one-member node of main at 9285c49 (format 2,
 * kv records bare): puts config/a (twice) and config/b, config/b deleted, a lease fixture-lease
 * with svc/web-1, idem/x put with Idempotency-Key fixture-idem-1, auth user alice, a key
 * unicode/ключ ✓; applied index 12. format-2.state.json holds what its kv sublevel held then.
 */
function format2Dir(t: Test): Promise<string> {
  return fixtureDir(t, 'format-2');
}

interface FixtureState {
  appliedIndex: number;
  identity: { clusterId: string; nodeId: string };
  records: [string, string][];
}

async function fixtureState(): Promise<FixtureState> {
  const file = path.join(
    path.dirname(fileURLToPath(import.meta.url)),
    'fixtures',
    'format-2.state.json',
  );
  return JSON.parse(await readFile(file, 'utf8')) as FixtureState;
}

async function rawMeta(dir: string) {
  return withRawDb(dir, async (db) => {
    const meta = textSub(db, SUBLEVEL.meta);
    const format = decoder.decode(await meta.get(META_KEY.formatVersion));
    const marker = await meta.get(META_KEY.kvResealedThrough);
    return { format, through: marker && decodeKvResealedThrough(marker) };
  });
}

/** The fixture's state is all there, sealed on disk, and loads into the state machine. */
async function checkUpgraded(t: Test, dir: string, expected: FixtureState, what: string) {
  t.same(await rawMeta(dir), { format: '3', through: undefined }, `${what}: format 3, no marker`);
  const raw = await rawKv(dir);
  t.equal(raw.size, expected.records.length, `${what}: ${raw.size} kv records`);
  t.ok(
    [...raw.values()].every((v) => v[0] === 2),
    `${what}: every kv record is sealed`,
  );
  const s = await LevelRaftStorage.open(dir);
  try {
    const { clusterId, nodeId } = expected.identity;
    t.match(s.identity(), { formatVersion: 3, clusterId, nodeId });
    t.equal(s.appliedIndex(), expected.appliedIndex);
    const records = await collect(s);
    t.same(texts(records), expected.records, `${what}: the same records as format 2 held`);
    const sm = KvStateMachine.load(records, s.appliedIndex());
    t.match(sm.get('config/a'), { ok: true, kv: { value: 'alpha-2', version: 2 } });
    t.match(sm.get('config/b'), { ok: true, kv: null }, 'the deleted key');
    t.same(sm.lease('fixture-lease')?.keys, ['svc/web-1'], 'the lease and its key');
    t.match(sm.get('unicode/ключ ✓'), { ok: true, kv: { value: 'ü' } });
    t.equal(sm.revision, 7);
  } finally {
    await s.close();
  }
}

t.test('a format 2 data dir opens, re-sealed in place, with the same state', async (t) => {
  const dir = await format2Dir(t);
  const expected = await fixtureState();
  t.same(await rawMeta(dir), { format: '2', through: undefined }, 'the fixture is of format 2');
  const before = await rawKv(dir);
  t.equal(before.size, 12, 'with 12 kv records');
  t.ok(
    [...before.values()].every((v) => v[0] === 0x7b),
    'stored bare (the state machine JSON)',
  );
  const batches: number[] = [];
  const s = await LevelRaftStorage.open(dir, { onKvResealBatch: (n) => batches.push(n) });
  t.same(batches, [12], 'one batch: the state is small');
  t.equal(s.identity()?.formatVersion, 3);
  await s.close();
  await checkUpgraded(t, dir, expected, 'after the upgrade');
  await checkUpgraded(t, dir, expected, 'opened again');
});

class Crash extends Error {}

t.test('an upgrade stopped after any batch finishes on the next open', async (t) => {
  const expected = await fixtureState();
  const keys = expected.records.map(([k]) => k);
  // kvResealBatchMaxBytes 1: one record per batch, then a last batch that drops the marker.
  for (let stopAfter = 1; stopAfter <= keys.length; stopAfter++) {
    const dir = await format2Dir(t);
    const options: LevelStorageOptions = {
      kvResealBatchMaxBytes: 1,
      onKvResealBatch: (n) => {
        if (n === stopAfter) throw new Crash(`stopped after batch ${n}`);
      },
    };
    const err = await LevelRaftStorage.open(dir, options).catch((e: unknown) => e);
    t.type((err as Error).cause, Crash, `open stopped after batch ${stopAfter}`);
    const half = await rawMeta(dir);
    t.same(half, { format: '3', through: keys[stopAfter - 1] }, 'format 3 and the marker');
    const raw = await rawKv(dir);
    const sealedKeys = keys.filter((k) => raw.get(k)![0] === 2);
    t.same(sealedKeys, keys.slice(0, stopAfter), `exactly the first ${stopAfter} records sealed`);
    const resumed: number[] = [];
    const again = await LevelRaftStorage.open(dir, {
      kvResealBatchMaxBytes: 1,
      onKvResealBatch: (n) => resumed.push(n),
    });
    await again.close();
    t.equal(resumed.at(-1), keys.length - stopAfter, 'the next open seals only the rest');
    await checkUpgraded(t, dir, expected, `resumed after ${stopAfter}`);
  }
});

t.test('a large format 2 state is re-sealed in bounded batches', async (t) => {
  const count = 5_000;
  const value = (i: number) => encoder.encode(`{"n":${i},"pad":"${'p'.repeat(i % 300)}"}`);
  const keyOf = (i: number) => `k/${i.toString(16).padStart(16, '0')}/00000000`;
  const records = Array.from({ length: count }, (_, i) => [keyOf(i), value(i)] as const);
  const totalBytes = records.reduce((n, [k, v]) => n + k.length + v.byteLength, 0);
  const dir = await format2DirWith(t, records);
  const maxBytes = 64 * 1024;
  const counts: number[] = [];
  const o = await LevelRaftStorage.open(dir, {
    kvResealBatchMaxBytes: maxBytes,
    onKvResealBatch: (n) => counts.push(n),
  });
  t.teardown(() => o.close());
  t.equal(counts.at(-1), count, `all ${count} records re-sealed`);
  t.ok(counts.length >= totalBytes / maxBytes, `${counts.length} batches for ${totalBytes} bytes`);
  const perBatch = counts.map((n, i) => n - (counts[i - 1] ?? 0));
  // A batch closes once it reaches maxBytes; the smallest record is 43 bytes (+16 overhead).
  t.ok(
    perBatch.every((n) => n <= Math.ceil(maxBytes / 59)),
    `at most ${Math.max(...perBatch)} records per batch`,
  );
  const read = await collect(o);
  t.equal(read.length, count);
  let same = 0;
  for (const [k, v] of read) {
    const i = Number.parseInt(k.slice(2, 18), 16);
    if (k === keyOf(i) && decoder.decode(v) === decoder.decode(value(i))) same++;
  }
  t.equal(same, count, 'every record reads back as it was');
});
