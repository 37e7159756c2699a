/** Command encoding, garbage entries, limits, and the applied-index rules. */
import fc from 'fast-check';
import t from 'tap';
import {
  type Command,
  type CommandEnvelope,
  decodeCommand,
  encodeCommand,
  KvStateMachine,
} from '../../src/kv/index.js';
import { entry, expectOk, Feeder } from './helpers.js';

const utf8 = (text: string) => new TextEncoder().encode(text);

t.test('every command type round-trips', (t) => {
  const commands: Command[] = [
    { type: 'put', key: 'k', value: 'v', lease: 'L', prevRevision: 0, prevValue: 'p' },
    { type: 'delete', key: 'k/', prefix: true },
    { type: 'delete', key: 'k', prevRevision: 3 },
    { type: 'sync' },
    {
      type: 'txn',
      compare: [
        { key: 'k', target: 'value', op: '==', value: null },
        { key: 'k', target: 'modRevision', op: '<', value: 4 },
        { lock: 'l', token: 7 },
      ],
      success: [
        { op: 'put', key: 'k', value: 'v', lease: 'L' },
        { op: 'get', key: '', prefix: true },
      ],
      failure: [{ op: 'delete', key: 'k' }],
    },
    { type: 'compact', revision: 9 },
    { type: 'leaseGrant', id: 'L', ttlMs: 1000 },
    { type: 'leaseRevoke', id: 'L' },
    { type: 'leaseKeepAlive', id: 'L' },
    { type: 'leaseCheckpoint', leases: [{ id: 'L', remainingMs: 5 }] },
  ];
  for (const cmd of commands) {
    const envelope: CommandEnvelope = { v: 1, atMs: 123, idempotencyKey: 'Req 1!', cmd };
    t.strictSame(decodeCommand(encodeCommand(envelope)), { ok: true, envelope }, cmd.type);
  }
  t.end();
});

t.test('decode never throws, whatever the bytes', (t) => {
  const anyBytes = fc.oneof(
    fc.uint8Array({ maxLength: 64 }),
    fc.jsonValue({ maxDepth: 4 }).map((v) => utf8(JSON.stringify(v))),
    // Near misses: a valid envelope with one field replaced by anything.
    fc
      .record({
        field: fc.constantFrom(
          'v',
          'atMs',
          'idempotencyKey',
          'cmd',
          'type',
          'key',
          'value',
          'compare',
        ),
        junk: fc.jsonValue({ maxDepth: 2 }),
      })
      .map(({ field, junk }) => {
        const cmd: Record<string, unknown> = {
          type: 'txn',
          key: 'k',
          value: 'v',
          compare: [],
          success: [],
          failure: [],
        };
        const envelope: Record<string, unknown> = { v: 1, atMs: 1, cmd };
        if (field in envelope) envelope[field] = junk;
        else cmd[field] = junk;
        return utf8(JSON.stringify(envelope));
      }),
  );
  fc.assert(
    fc.property(anyBytes, (bytes) => {
      const decoded = decodeCommand(bytes);
      return decoded.ok || typeof decoded.error === 'string';
    }),
    { numRuns: 2_000 },
  );
  t.pass('2000 random entries');
  t.end();
});

t.test('malformed commands are rejected with a reason', (t) => {
  const bad: [string, unknown][] = [
    ['wrong version', { v: 2, atMs: 1, cmd: { type: 'compact', revision: 1 } }],
    ['negative time', { v: 1, atMs: -1, cmd: { type: 'compact', revision: 1 } }],
    ['unknown type', { v: 1, atMs: 1, cmd: { type: 'rename' } }],
    ['empty key', { v: 1, atMs: 1, cmd: { type: 'put', key: '', value: 'v' } }],
    ['lone surrogate', { v: 1, atMs: 1, cmd: { type: 'put', key: 'a\ud800', value: 'v' } }],
    ['number value', { v: 1, atMs: 1, cmd: { type: 'put', key: 'k', value: 5 } }],
    ['fractional revision', { v: 1, atMs: 1, cmd: { type: 'compact', revision: 1.5 } }],
    [
      'prefix with prevRevision',
      { v: 1, atMs: 1, cmd: { type: 'delete', key: 'k', prefix: true, prevRevision: 1 } },
    ],
    ['zero ttl', { v: 1, atMs: 1, cmd: { type: 'leaseGrant', id: 'L', ttlMs: 0 } }],
    [
      'long idempotency key',
      { v: 1, atMs: 1, idempotencyKey: 'x'.repeat(129), cmd: { type: 'compact', revision: 1 } },
    ],
    [
      'non-ASCII idempotency key',
      { v: 1, atMs: 1, idempotencyKey: 'é', cmd: { type: 'compact', revision: 1 } },
    ],
    [
      'compare value of the wrong type',
      {
        v: 1,
        atMs: 1,
        cmd: {
          type: 'txn',
          compare: [{ key: 'k', target: 'version', op: '==', value: '1' }],
          success: [],
          failure: [],
        },
      },
    ],
    [
      'unknown compare op',
      {
        v: 1,
        atMs: 1,
        cmd: {
          type: 'txn',
          compare: [{ key: 'k', target: 'value', op: '<=', value: 'a' }],
          success: [],
          failure: [],
        },
      },
    ],
    ['missing txn branch', { v: 1, atMs: 1, cmd: { type: 'txn', compare: [], success: [] } }],
    [
      'unknown txn op',
      {
        v: 1,
        atMs: 1,
        cmd: { type: 'txn', compare: [], success: [{ op: 'range', key: 'k' }], failure: [] },
      },
    ],
  ];
  for (const [what, envelope] of bad) {
    const decoded = decodeCommand(utf8(JSON.stringify(envelope)));
    t.equal(decoded.ok, false, what);
  }
  t.match(decodeCommand(new Uint8Array([0xff, 0xfe])), { ok: false, error: /not a command/ });
  t.end();
});

t.test('garbage entries apply as deterministic invalid_request no-ops', (t) => {
  const f = new Feeder();
  f.put('a', '1');
  f.sm.takeMutations();
  const result = f.applyBytes(utf8('{"v":1,"atMs":5,"cmd":{"type":7}}'));
  t.match(result, { ok: false, code: 'invalid_request', revision: 1 });
  t.match(f.applyBytes(new Uint8Array([1, 2, 3])), { ok: false, code: 'invalid_request' });
  t.equal(f.sm.appliedIndex, 3, 'the entry is consumed');
  t.equal(f.sm.revision, 1);
  t.strictSame(f.sm.takeMutations(), [], 'nothing to persist');
  t.end();
});

t.test('an entry of a newer raftkv is told apart from garbage', (t) => {
  const newer: [string, unknown][] = [
    ['newer envelope', { v: 2, atMs: 1, cmd: { type: 'put', key: 'k', value: 'v' } }],
    ['unknown command type', { v: 1, atMs: 1, cmd: { type: 'rename' } }],
  ];
  for (const [what, envelope] of newer)
    t.match(decodeCommand(utf8(JSON.stringify(envelope))), { ok: false, newer: true }, what);
  const garbage: [string, unknown][] = [
    ['bad field of a known type', { v: 1, atMs: 1, cmd: { type: 'put', key: '', value: 'v' } }],
    ['type not a string', { v: 1, atMs: 1, cmd: { type: 7 } }],
    ['version not a number', { v: '2', atMs: 1, cmd: { type: 'compact', revision: 1 } }],
  ];
  for (const [what, envelope] of garbage)
    t.match(decodeCommand(utf8(JSON.stringify(envelope))), { ok: false, newer: false }, what);
  t.match(decodeCommand(utf8('{"v":1')), { ok: false, newer: false }, 'not JSON');
  const sync = utf8(JSON.stringify({ v: 1, atMs: 1, cmd: { type: 'sync' } }));
  t.match(decodeCommand(sync), { ok: true }, 'known to the decoder');
  t.match(decodeCommand(sync, new Set(['put'])), { ok: false, newer: true }, 'not understood');
  t.end();
});

t.test('an entry of a newer raftkv stops apply, which changes nothing', (t) => {
  const f = new Feeder({ understoodCommands: new Set(['put']) });
  f.put('a', '1');
  f.sm.takeMutations();
  const before = f.sm.snapshot();
  const sync = entry({ type: 'sync' });
  t.throws(
    () => f.sm.apply(2, sync),
    { name: 'CommandNotUnderstoodError', index: 2, message: /entry 2 needs a newer raftkv/ },
    'never applied as a no-op',
  );
  t.equal(f.sm.appliedIndex, 1, 'the entry is not consumed: a newer raftkv applies it');
  t.strictSame(f.sm.takeMutations(), [], 'nothing to persist');
  t.strictSame(f.sm.snapshot(), before, 'the state is unchanged');
  t.throws(() => f.sm.apply(2, sync), 'and again on a retry');
  const newer = new KvStateMachine();
  t.match(newer.apply(1, sync), { ok: true, op: 'sync', revision: 0 }, 'a 0.2.0 build applies it');
  t.end();
});

t.test('empty entries are Raft no-ops; applied entries are skipped', (t) => {
  const sm = new KvStateMachine();
  t.strictSame(sm.apply(1, new Uint8Array()), { ok: true, op: 'noop', revision: 0 });
  t.equal(sm.appliedIndex, 1);
  const put = entry({ type: 'put', key: 'a', value: '1' });
  expectOk(sm.apply(5, put), 'put'); // gaps are allowed: the server may not hand over every entry
  t.equal(sm.appliedIndex, 5);
  t.strictSame(sm.apply(5, put), { skipped: true });
  t.strictSame(sm.apply(3, put), { skipped: true });
  t.equal(sm.revision, 1, 'skipped entries change nothing');
  t.throws(() => sm.apply(0, put), 'index 0 is a programmer error');
  t.end();
});

t.test('limits: too_large, and every replica judges the same way', (t) => {
  const f = new Feeder();
  const key4096 = 'k'.repeat(4096);
  expectOk(f.put(key4096, 'v'), 'put');
  t.match(f.put(`${key4096}k`, 'v'), { ok: false, code: 'too_large' });
  // 1366 × 3-byte characters = 4098 bytes: the limit is in UTF-8 bytes, not characters.
  t.match(f.put('€'.repeat(1366), 'v'), { ok: false, code: 'too_large' });
  t.match(f.put('😀'.repeat(1024), 'v'), { ok: true }, '4096 bytes of astral characters');
  expectOk(f.put('big', 'x'.repeat(1024 * 1024)), 'put');
  t.match(f.put('big', 'x'.repeat(1024 * 1024 + 1)), { ok: false, code: 'too_large' });
  const ops = (n: number) =>
    Array.from({ length: n }, (_, i) => ({ op: 'put' as const, key: `t${i}`, value: '' }));
  expectOk(f.apply({ type: 'txn', compare: [], success: ops(128), failure: [] }), 'txn');
  t.match(f.apply({ type: 'txn', compare: [], success: [], failure: ops(129) }), {
    ok: false,
    code: 'too_large',
  });
  t.match(f.apply({ type: 'delete', key: `${key4096}k`, prefix: true }), {
    ok: false,
    code: 'too_large',
  });

  const small = new Feeder({ limits: { keyBytesMax: 4, valueBytesMax: 2, txnOpsMax: 1 } });
  t.match(small.put('kkkkk', ''), { code: 'too_large' });
  t.match(small.put('k', 'vvv'), { code: 'too_large' });
  t.match(small.apply({ type: 'put', key: 'k', value: '', prevValue: 'vvv' }), {
    code: 'too_large',
  });
  t.match(
    small.apply({
      type: 'txn',
      compare: [
        { key: 'k', target: 'version', op: '==', value: 0 },
        { key: 'k', target: 'version', op: '==', value: 0 },
      ],
      success: [],
      failure: [],
    }),
    { code: 'too_large' },
  );
  t.match(
    small.apply({
      type: 'txn',
      compare: [{ key: 'kkkkk', target: 'version', op: '==', value: 0 }],
      success: [],
      failure: [],
    }),
    { code: 'too_large' },
  );
  t.end();
});

t.test('put and delete guards', (t) => {
  const f = new Feeder();
  const created = expectOk(f.apply({ type: 'put', key: 'a', value: '1', prevRevision: 0 }), 'put');
  t.match(f.apply({ type: 'put', key: 'a', value: '2', prevRevision: 0 }), {
    ok: false,
    code: 'compare_failed',
    kv: created.kv,
    revision: 1,
  });
  t.match(f.apply({ type: 'put', key: 'a', value: '2', prevValue: 'x' }), {
    code: 'compare_failed',
  });
  t.match(f.apply({ type: 'put', key: 'b', value: '2', prevValue: '' }), {
    code: 'compare_failed',
    kv: null,
  });
  expectOk(f.apply({ type: 'put', key: 'a', value: '2', prevRevision: 1, prevValue: '1' }), 'put');
  t.match(f.apply({ type: 'delete', key: 'a', prevRevision: 1 }), { code: 'compare_failed' });
  t.match(f.apply({ type: 'delete', key: 'a', prevRevision: 2 }), {
    ok: true,
    deleted: 1,
    revision: 3,
    prevKvs: [{ key: 'a', value: '2' }],
  });
  t.match(f.apply({ type: 'delete', key: 'a', prevRevision: 0 }), {
    ok: true,
    deleted: 0,
    revision: 3,
  });
  t.end();
});

t.test('txn: compares see the state before, ops see earlier ops, one revision', (t) => {
  const f = new Feeder();
  f.put('x', '1');
  const result = expectOk(
    f.apply({
      type: 'txn',
      compare: [
        { key: 'x', target: 'value', op: '==', value: '1' },
        { key: 'missing', target: 'version', op: '==', value: 0 },
        { key: 'missing', target: 'value', op: '==', value: null },
        { key: 'x', target: 'lease', op: '==', value: null },
      ],
      success: [
        { op: 'put', key: 'y', value: '2' },
        { op: 'get', key: 'y' },
        { op: 'delete', key: 'x' },
        { op: 'delete', key: 'x' },
        { op: 'get', key: '', prefix: true },
      ],
      failure: [],
    }),
    'txn',
  );
  t.equal(result.succeeded, true);
  t.equal(result.revision, 2);
  t.strictSame(
    result.results.map((r) =>
      r.op === 'get' ? r.kvs.map((kv) => kv.key) : r.op === 'delete' ? r.deleted : r.kv.modRevision,
    ),
    [2, ['y'], 1, 0, ['y']],
  );
  const fenced = expectOk(
    f.apply({
      type: 'txn',
      compare: [{ lock: 'l', token: 1 }],
      success: [],
      failure: [{ op: 'get', key: 'y' }],
    }),
    'txn',
  );
  t.equal(fenced.succeeded, false, 'fences are never held until locks exist');
  t.match(
    f.apply({
      type: 'txn',
      compare: [],
      success: [],
      failure: [
        { op: 'put', key: 'a/1', value: '' },
        { op: 'delete', key: 'a/', prefix: true },
      ],
    }),
    { ok: false, code: 'invalid_request' },
    'a branch may not write a key twice, even the branch that does not run',
  );
  t.end();
});
