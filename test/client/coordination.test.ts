/**
 * The coordination API of Client against a 3-node in-process cluster:
 * leases (and keepLeaseAlive), registry (and its watch), locks (and fenced
 * txns), elections (and observe).
 */
import t from 'tap';
import {
  Client,
  type LeaderChange,
  RaftkvError,
  type RegistryWatchResponse,
} from '../../src/client/index.js';
import { startCluster } from '../integration/helpers.js';

const cluster = await startCluster(3);
t.teardown(() => cluster.close());
await cluster.waitForLeader();
const client = new Client({ endpoints: [0, 1, 2].map((i) => cluster.url(i)) });
t.teardown(() => client.close());

/** The error a promise rejects with (fails the test if it resolves). */
async function rejection(p: Promise<unknown>): Promise<RaftkvError> {
  try {
    await p;
  } catch (err) {
    return err as RaftkvError;
  }
  throw new Error('expected a rejection');
}

/** Rejects after `ms` so a stuck await fails the test instead of hanging it. */
function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: no result within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

t.test('leases: grant, keepAlive, lease, leases, revoke', async (t) => {
  const chosen = await client.grantLease(30, { id: 'client-lease-1' });
  t.same(chosen, { id: 'client-lease-1', ttl: 30 });
  const picked = await client.grantLease(30);
  t.type(picked.id, 'string');
  t.ok(picked.ttl >= 30);

  await client.put('lease/a', '1', { lease: chosen.id });
  await client.put('lease/b', '2', { lease: chosen.id });
  t.same(await client.keepAlive(chosen.id), { id: chosen.id, ttl: 30 });
  const info = await client.lease(chosen.id);
  t.match(info, { id: chosen.id, ttl: 30, remaining: Number });
  t.ok(info.remaining > 0 && info.remaining <= 30);
  t.same([...info.keys].sort(), ['lease/a', 'lease/b']);

  const ids = (await client.leases()).map((l) => l.id);
  t.ok(ids.includes(chosen.id) && ids.includes(picked.id));

  t.same(await client.revokeLease(chosen.id), { revoked: true, deleted: 2 });
  t.equal((await client.list({ prefix: 'lease/' })).kvs.length, 0, 'keys went with the lease');
  t.equal((await rejection(client.keepAlive(chosen.id))).code, 'lease_not_found');
  t.equal((await rejection(client.lease(chosen.id))).code, 'lease_not_found');
  t.equal((await rejection(client.revokeLease(chosen.id))).code, 'lease_not_found');
  await client.revokeLease(picked.id);
});

t.test('keepLeaseAlive renews, and reports loss at once when revoked elsewhere', async (t) => {
  const { id, ttl } = await client.grantLease(2);
  let calls = 0;
  const lostVia: RaftkvError[] = [];
  const keeper = client.keepLeaseAlive(id, {
    ttlSeconds: ttl,
    onLost: (err) => {
      calls++;
      lostVia.push(err);
    },
  });
  // Alive well past its TTL thanks to the keeper.
  await new Promise((r) => setTimeout(r, ttl * 1000 + 1_000));
  t.ok((await client.lease(id)).remaining > 0, 'still alive after its TTL');

  // Someone else revokes it: the next renewal (within ttl/3) reports it lost.
  const other = new Client({ endpoints: [cluster.url(2)] });
  t.teardown(() => other.close());
  const revokedAt = Date.now();
  await other.revokeLease(id);
  const err = await within(keeper.lost, ttl * 1000, 'lost');
  t.ok(err instanceof RaftkvError);
  t.equal(err.code, 'lease_not_found');
  t.ok(Date.now() - revokedAt < (ttl * 1000) / 3 + 1_000, 'reported within about ttl/3');
  t.equal(calls, 1);
  t.equal(lostVia[0], err);
  await keeper.stop(); // harmless after the loss
  t.equal(calls, 1);
});

t.test('keepLeaseAlive: a lease that is gone is lost at once; stop() ends quietly', async (t) => {
  const gone = client.keepLeaseAlive('no-such-lease', { ttlSeconds: 30 });
  t.equal((await within(gone.lost, 5_000, 'lost')).code, 'lease_not_found');

  const { id, ttl } = await client.grantLease(5);
  let lost = false;
  const keeper = client.keepLeaseAlive(id, { ttlSeconds: ttl, onLost: () => (lost = true) });
  await new Promise((r) => setTimeout(r, 100));
  await keeper.stop();
  await client.revokeLease(id);
  await new Promise((r) => setTimeout(r, 300));
  t.notOk(lost, 'no loss reported after stop()');
  t.throws(() => client.keepLeaseAlive(id, { ttlSeconds: 0 }), { code: 'invalid_request' });
});

t.test('keepLeaseAlive reports loss when it cannot renew within the TTL', async (t) => {
  // Nothing listens on this endpoint: every renewal fails.
  const dead = new Client({ endpoints: ['http://127.0.0.1:1'], retries: 0, backoffMs: 10 });
  t.teardown(() => dead.close());
  const started = Date.now();
  const keeper = dead.keepLeaseAlive('whatever', { ttlSeconds: 1 });
  const err = await within(keeper.lost, 5_000, 'lost');
  t.equal(err.code, 'lease_expired');
  const elapsed = Date.now() - started;
  t.ok(elapsed >= 900 && elapsed < 2_500, `lost after about the TTL (${elapsed} ms)`);
});

t.test('registry: register, update, name_taken, lookup, list, unregister', async (t) => {
  const a = (await client.grantLease(30)).id;
  const b = (await client.grantLease(30)).id;
  const created = await client.register('svc/db', 'host-a:5432', a);
  t.match(created, { name: 'svc/db', value: 'host-a:5432', lease: a, createRevision: Number });
  const updated = await client.register('svc/db', 'host-a:6543', a);
  t.equal(updated.value, 'host-a:6543');
  t.equal(updated.createRevision, created.createRevision);

  const taken = await rejection(client.register('svc/db', 'host-b', b));
  t.ok(taken instanceof RaftkvError);
  t.equal(taken.code, 'name_taken');
  t.equal(taken.status, 409);
  t.match(taken.entry, { name: 'svc/db', value: 'host-a:6543', lease: a });

  await client.register('svc/cache', 'host-b:6379', b);
  await client.register('other/x', 'x', b);
  t.match(await client.lookup('svc/db'), { name: 'svc/db', value: 'host-a:6543', lease: a });
  t.equal((await rejection(client.lookup('svc/none'))).code, 'key_not_found');
  const listed = await client.registry('svc/');
  t.same(
    listed.entries.map((e) => e.name),
    ['svc/cache', 'svc/db'],
  );
  t.type(listed.revision, 'number');
  t.ok((await client.registry()).entries.length >= 3);

  const wrong = await rejection(client.unregister('svc/db', { lease: b }));
  t.equal(wrong.code, 'compare_failed');
  t.match(await client.unregister('svc/db', { lease: a }), { deleted: 1, revision: Number });
  t.match(await client.unregister('svc/cache'), { deleted: 1 });
  t.equal((await rejection(client.unregister('svc/cache'))).code, 'key_not_found');

  // Revoking the lease drops its names.
  await client.revokeLease(b);
  t.equal((await rejection(client.lookup('other/x'))).code, 'key_not_found');
  await client.revokeLease(a);
});

t.test('watchRegistry streams puts and deletes under a prefix', async (t) => {
  const lease = (await client.grantLease(30)).id;
  const watch = client.watchRegistry('w/');
  const seen: RegistryWatchResponse[] = [];
  const collected = (async () => {
    for await (const change of watch) {
      seen.push(change);
      if (seen.flatMap((c) => c.events).length >= 3) break;
    }
  })();
  await new Promise((r) => setTimeout(r, 200));
  await client.register('w/one', '1', lease);
  await client.register('elsewhere', 'not watched', lease);
  await client.register('w/one', '1b', lease);
  await client.unregister('w/one');
  await within(collected, 10_000, 'registry watch');
  const events = seen.flatMap((c) => c.events);
  t.same(
    events.map((e) => [e.type, e.entry.name, e.type === 'put' ? e.entry.value : '']),
    [
      ['put', 'w/one', '1'],
      ['put', 'w/one', '1b'],
      ['delete', 'w/one', ''],
    ],
  );
  t.ok(seen.every((c, i) => i === 0 || c.revision > seen[i - 1]!.revision));
  t.ok(watch.closed);

  // fromRevision replays history.
  const replay = client.watchRegistry('w/', { fromRevision: seen[0]!.revision });
  const first = await within(replay.next(), 5_000, 'replay');
  t.equal(first.done, false);
  if (!first.done) t.equal(first.value.revision, seen[0]!.revision);
  replay.close();
  await client.revokeLease(lease);
});

t.test('locks: lock, lock_timeout, unlock, fencedTxn', async (t) => {
  const a = (await client.grantLease(30)).id;
  const b = (await client.grantLease(30)).id;
  const first = await client.lock('job', { lease: a });
  t.match(first, { name: 'job', key: String, fencingToken: Number });

  const timedOut = await rejection(client.lock('job', { lease: b, timeoutMs: 1_000 }));
  t.equal(timedOut.code, 'lock_timeout');

  const fenced = await client.fencedTxn('job', first.fencingToken, {
    success: [{ op: 'put', key: 'fenced/x', value: 'by a' }],
  });
  t.equal(fenced.succeeded, true);

  // b waits in line and gets the lock once a releases it.
  const waiting = client.lock('job', { lease: b, timeoutMs: 5_000 });
  await new Promise((r) => setTimeout(r, 200));
  t.match(await client.unlock('job', first.key), { released: true });
  const second = await within(waiting, 6_000, 'second lock');
  t.ok(second.fencingToken > first.fencingToken, 'fencing tokens increase');

  const stale = await client.fencedTxn('job', first.fencingToken, {
    compare: [{ key: 'fenced/x', target: 'value', op: '==', value: 'by a' }],
    success: [{ op: 'put', key: 'fenced/x', value: 'stale write' }],
  });
  t.equal(stale.succeeded, false, 'a stale holder cannot write');
  t.equal((await client.get('fenced/x')).kv.value, 'by a');

  // Revoking the holder's lease releases the lock.
  await client.revokeLease(b);
  const third = await client.lock('job', { lease: a, timeoutMs: 2_000 });
  t.ok(third.fencingToken > second.fencingToken);
  await client.unlock('job', third.key);
  await client.revokeLease(a);
});

t.test('elections: campaign, leader, proclaim, observe, resign', async (t) => {
  const a = (await client.grantLease(30)).id;
  const b = (await client.grantLease(30)).id;
  t.equal((await rejection(client.leader('primary'))).code, 'no_leader_elected');

  const controller = new AbortController();
  const seen: LeaderChange[] = [];
  const observed = (async () => {
    for await (const change of client.observe('primary', { signal: controller.signal })) {
      seen.push(change);
      if (seen.length >= 5) break;
    }
  })();
  await new Promise((r) => setTimeout(r, 200));

  const won = await client.campaign('primary', { lease: a, value: 'node-a' });
  t.match(won.leader, { key: String, value: 'node-a', revision: Number });
  t.same(await client.leader('primary'), won.leader);

  const waiting = client.campaign('primary', { lease: b, value: 'node-b', timeoutMs: 5_000 });
  await new Promise((r) => setTimeout(r, 100));
  t.match(await client.proclaim('primary', won.leader.key, 'node-a v2'), {
    leader: { value: 'node-a v2' },
  });
  t.match(await client.resign('primary', won.leader.key), { resigned: true });
  const next = await within(waiting, 6_000, 'second campaign');
  t.equal(next.leader.value, 'node-b');
  await client.resign('primary', next.leader.key);

  await within(observed, 10_000, 'observe');
  controller.abort();
  t.same(
    seen.map((c) => c.leader?.value ?? null),
    [null, 'node-a', 'node-a v2', 'node-b', null],
  );
  t.ok(seen.every((c, i) => i === 0 || c.revision > seen[i - 1]!.revision));
  const timedOut = await rejection(
    client
      .campaign('primary-2', { lease: a, value: 'x', timeoutMs: 2_000 })
      .then(() => client.campaign('primary-2', { lease: b, value: 'y', timeoutMs: 1_000 })),
  );
  t.equal(timedOut.code, 'lock_timeout');
  await client.revokeLease(a);
  await client.revokeLease(b);
});
