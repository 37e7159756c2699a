/** Leases as replicated state: attach, detach, revoke in one revision, keepalive, checkpoints. */
import t from 'tap';
import type { RevisionChange } from '../../src/kv/index.js';
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

t.test('leases() lists every lease in id order', (t) => {
  const f = new Feeder();
  for (const id of ['b', 'a', 'c']) f.apply({ type: 'leaseGrant', id, ttlMs: 1_000 });
  t.strictSame(
    f.sm.leases().map((lease) => lease.id),
    ['a', 'b', 'c'],
  );
  t.end();
});
