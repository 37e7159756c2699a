/** Leases as replicated state: attach, detach, revoke in one revision, keepalive, checkpoints. */
import t from 'tap';
import type { RevisionChange } from '../../src/kv/index.js';
import { LeaseTable } from '../../src/kv/leases.js';
import { MutationLog } from '../../src/kv/mutations.js';
import { expectOk, Feeder } from './helpers.js';

function withLease(): Feeder {
  const f = new Feeder();
  expectOk(f.apply({ type: 'leaseGrant', id: 'L', ttlMs: 10_000 }), 'leaseGrant');
  return f;
}

t.test('grant records the lease without a revision', (t) => {
  const f = new Feeder();
  f.nowMs = 42;
  t.strictSame(f.apply({ type: 'leaseGrant', id: 'L', ttlMs: 5_000 }), {
    ok: true,
    op: 'leaseGrant',
    revision: 0,
    id: 'L',
    ttlMs: 5_000,
  });
  t.strictSame(f.sm.lease('L'), {
    id: 'L',
    ttlMs: 5_000,
    grantedAtMs: 42,
    lastRenewedAtMs: 42,
    renewedAtIndex: 1,
    remainingMs: null,
    checkpointedAtMs: null,
    keys: [],
  });
  t.match(f.apply({ type: 'leaseGrant', id: 'L', ttlMs: 1 }), {
    ok: false,
    code: 'invalid_request',
  });
  t.equal(f.sm.lease('nope'), undefined);
  t.end();
});

t.test('puts attach keys; a put without the lease or a delete detaches', (t) => {
  const f = withLease();
  f.apply({ type: 'leaseGrant', id: 'M', ttlMs: 10_000 });
  f.put('a', '1', { lease: 'L' });
  f.put('b', '1', { lease: 'L' });
  f.put('c', '1', { lease: 'L' });
  t.strictSame(f.sm.lease('L')?.keys, ['a', 'b', 'c']);
  f.put('a', '2'); // no lease: detached
  f.put('b', '2', { lease: 'M' }); // moved
  f.apply({ type: 'delete', key: 'c' });
  t.strictSame(f.sm.lease('L')?.keys, []);
  t.strictSame(f.sm.lease('M')?.keys, ['b']);
  const got = f.sm.get('b');
  t.equal(got.ok && got.kv?.lease, 'M');
  t.end();
});

t.test('revoke deletes all attached keys in one revision', (t) => {
  const f = withLease();
  for (const key of ['svc/b', 'svc/a', 'svc/c']) f.put(key, 'up', { lease: 'L' });
  f.put('other', 'x');
  const changes: RevisionChange[] = [];
  f.sm.watches.register({ key: '', prefix: true, onChange: (c) => changes.push(c) });
  const revoked = expectOk(f.apply({ type: 'leaseRevoke', id: 'L' }), 'leaseRevoke');
  t.equal(revoked.deleted, 3);
  t.equal(revoked.revision, 5, 'one revision for three deletes');
  t.equal(changes.length, 1, 'one watch call');
  t.strictSame(
    changes[0]!.events.map((e) => [e.type, e.kv.key, e.kv.modRevision, e.prevKv?.value]),
    [
      ['delete', 'svc/a', 5, 'up'],
      ['delete', 'svc/b', 5, 'up'],
      ['delete', 'svc/c', 5, 'up'],
    ],
    'in key order',
  );
  const left = f.sm.range();
  t.strictSame(left.ok && left.kvs.map((kv) => kv.key), ['other']);
  t.equal(f.sm.lease('L'), undefined);
  t.strictSame(f.sm.leases(), []);
  t.end();
});

t.test('revoking a lease without keys changes no revision', (t) => {
  const f = withLease();
  t.strictSame(f.apply({ type: 'leaseRevoke', id: 'L' }), {
    ok: true,
    op: 'leaseRevoke',
    revision: 0,
    id: 'L',
    deleted: 0,
  });
  t.end();
});

t.test('lease_not_found', (t) => {
  const f = new Feeder();
  const notFound = { ok: false, code: 'lease_not_found', revision: 0 };
  t.match(f.put('a', '1', { lease: 'L' }), notFound);
  t.match(
    f.apply({
      type: 'txn',
      compare: [],
      success: [
        { op: 'put', key: 'b', value: '1' },
        { op: 'put', key: 'a', value: '1', lease: 'L' },
      ],
      failure: [],
    }),
    notFound,
    'a txn with an unknown lease changes nothing, not even its other puts',
  );
  t.match(f.apply({ type: 'leaseRevoke', id: 'L' }), notFound);
  t.match(f.apply({ type: 'leaseKeepAlive', id: 'L' }), notFound);
  t.equal(f.sm.revision, 0);
  t.end();
});

t.test('keepalive restarts the TTL; checkpoints record the remaining time', (t) => {
  const f = new Feeder();
  f.nowMs = 1_000;
  f.apply({ type: 'leaseGrant', id: 'L', ttlMs: 10_000 });
  f.nowMs = 4_000;
  const checkpoint = f.apply({
    type: 'leaseCheckpoint',
    leases: [
      { id: 'L', remainingMs: 7_000 },
      { id: 'gone', remainingMs: 1 },
    ],
  });
  t.strictSame(checkpoint, { ok: true, op: 'leaseCheckpoint', revision: 0, updated: 1 });
  t.match(f.sm.lease('L'), { remainingMs: 7_000, checkpointedAtMs: 4_000, lastRenewedAtMs: 1_000 });
  f.nowMs = 6_000;
  t.strictSame(f.apply({ type: 'leaseKeepAlive', id: 'L' }), {
    ok: true,
    op: 'leaseKeepAlive',
    revision: 0,
    id: 'L',
    ttlMs: 10_000,
  });
  t.match(f.sm.lease('L'), {
    grantedAtMs: 1_000,
    lastRenewedAtMs: 6_000,
    remainingMs: null,
    checkpointedAtMs: null,
  });
  // A keepalive proposed with a lagging clock still renews at the state machine time.
  f.apply({ type: 'leaseKeepAlive', id: 'L' }, { atMs: 10 });
  t.match(f.sm.lease('L'), { lastRenewedAtMs: 6_000 });
  t.end();
});

t.test(
  'a renewal is named by its log index: with the clock standing still, a revoke or checkpoint computed before a keepalive is void',
  (t) => {
    const f = new Feeder();
    f.nowMs = 5_000;
    f.apply({ type: 'leaseGrant', id: 'L', ttlMs: 10_000 });
    const granted = f.sm.lease('L')!.renewedAtIndex;
    t.equal(granted, f.index, 'the grant is the first renewal');
    // A new leader whose wall clock is behind proposes: the state machine clock does not move.
    f.apply({ type: 'leaseKeepAlive', id: 'L' }, { atMs: 10 });
    const renewed = f.sm.lease('L')!;
    t.equal(renewed.lastRenewedAtMs, 5_000, 'same time as the grant');
    t.equal(renewed.renewedAtIndex, f.index, 'but a new renewal');
    t.match(
      f.apply({
        type: 'leaseCheckpoint',
        leases: [{ id: 'L', remainingMs: 1, renewedAtIndex: granted }],
      }),
      { ok: true, updated: 0 },
      'a checkpoint computed from the grant is void',
    );
    t.match(f.sm.lease('L'), { remainingMs: null });
    t.match(
      f.apply({ type: 'leaseRevoke', id: 'L', ifRenewedAtIndex: granted }),
      { ok: false, code: 'compare_failed' },
      'an expiry computed from the grant loses to the keepalive',
    );
    t.ok(f.sm.lease('L'), 'the lease lives');
    t.match(
      f.apply({
        type: 'leaseCheckpoint',
        leases: [{ id: 'L', remainingMs: 7, renewedAtIndex: renewed.renewedAtIndex }],
      }),
      { ok: true, updated: 1 },
    );
    t.match(
      f.apply({ type: 'leaseRevoke', id: 'L', ifRenewedAtIndex: renewed.renewedAtIndex }),
      { ok: true, op: 'leaseRevoke' },
      'an expiry computed from the last renewal revokes',
    );
    t.end();
  },
);

t.test('a lease record written before renewedAtIndex existed reads as renewal 0', (t) => {
  const old = {
    id: 'L',
    ttlMs: 5,
    grantedAtMs: 1,
    lastRenewedAtMs: 2,
    remainingMs: null,
    checkpointedAtMs: null,
  };
  const table = LeaseTable.fromRecords(new MutationLog(false), [
    new TextEncoder().encode(JSON.stringify(old)),
  ]);
  t.strictSame(table.get('L'), { ...old, renewedAtIndex: 0 });
  t.end();
});

t.test('entries written by earlier builds still compare renewals by time', (t) => {
  const f = new Feeder();
  f.nowMs = 1_000;
  f.apply({ type: 'leaseGrant', id: 'L', ttlMs: 10_000 });
  f.nowMs = 2_000;
  f.apply({ type: 'leaseKeepAlive', id: 'L' });
  t.match(
    f.apply({ type: 'leaseCheckpoint', leases: [{ id: 'L', remainingMs: 1, renewedAtMs: 1_000 }] }),
    { ok: true, updated: 0 },
  );
  t.match(f.apply({ type: 'leaseRevoke', id: 'L', ifRenewedAtMs: 1_000 }), {
    ok: false,
    code: 'compare_failed',
  });
  t.match(f.apply({ type: 'leaseRevoke', id: 'L', ifRenewedAtMs: 2_000 }), {
    ok: true,
    op: 'leaseRevoke',
  });
  t.end();
});

t.test('leases() lists every lease in id order', (t) => {
  const f = new Feeder();
  for (const id of ['b', 'a', 'c']) f.apply({ type: 'leaseGrant', id, ttlMs: 1_000 });
  t.strictSame(
    f.sm.leases().map((lease) => lease.id),
    ['a', 'b', 'c'],
  );
  t.end();
});
