/**
 * Coordination primitives under faults, on real in-process 3-node clusters
 * (127.0.0.1, fast ticks): lock handover when a holder stops renewing (as if
 * SIGSTOP'd) with enforced fencing, also across a stopped leader; leases kept
 * alive through the majority while the leader is isolated; lease expiry
 * deleting attached keys exactly once; registry names never held twice.
 */
import t from 'tap';
import { startCluster, type TestCluster } from '../integration/helpers.js';
import { type ChangeEvent, readHistory } from '../integration/sse.js';
import {
  currentRevision,
  grantLease,
  KeepAlive,
  liveNodes,
  req,
  retrying,
  sleep,
} from './coordination-helpers.js';

const enc = encodeURIComponent;
const urlsOf = (c: TestCluster, nodes: number[]) => nodes.map((i) => c.url(i));

/** A watch replay of `path` from `from` to the current revision, read from node `node`. */
async function history(c: TestCluster, node: number, path: string, from: number) {
  const upTo = await currentRevision(c);
  for (let attempt = 0; attempt < 5; attempt++) {
    const h = await readHistory(c.url(node), path, from, upTo, 10_000);
    if (h) return h;
    await sleep(200);
  }
  throw new Error(`no history of ${path} from node ${node}`);
}

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs: number) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const v = await probe();
    if (v !== undefined) return v;
    await sleep(50);
  }
  throw new Error(`timed out waiting for ${what}`);
}

t.test(
  'locks: a holder that stops renewing loses the lock; stale fenced writes never land; tokens increase',
  async (t) => {
    const c = await startCluster(3);
    t.teardown(() => c.close());
    await c.waitForLeader();
    const ROUNDS = 4;
    const LEADER_STOP_ROUND = 2;
    const all = () => urlsOf(c, liveNodes(c));

    const acquire = (lease: string, node: () => number[]) =>
      retrying(
        'acquire',
        () => urlsOf(c, node()),
        (u) => req(u, 'POST', '/v1/locks/job', { lease, timeoutMs: 20_000 }, 25_000),
        30_000,
      );
    const fenced = async (token: number, value: string) => {
      // A retry (after a lost answer) carries the same Idempotency-Key: it is the same write.
      const r = await retrying('fenced write', all, (u) =>
        req(
          u,
          'POST',
          '/v1/txn',
          {
            compare: [{ lock: 'job', token }],
            success: [{ op: 'put', key: 'fenced/out', value }],
          },
          5_000,
          { 'idempotency-key': `fenced-${value}` },
        ),
      );
      if (r.status !== 200) throw new Error(`txn: ${JSON.stringify(r)}`);
      return r.body.succeeded as boolean;
    };

    const startRev = (await currentRevision(c)) + 1;
    const landed: { token: number; value: string }[] = [];
    const staleAttempts: string[] = [];

    let lease = await grantLease(c, 2);
    let ka = new KeepAlive(c, lease);
    const first = await acquire(lease, () => [0]);
    t.equal(first.status, 200, 'the first holder acquires');
    let token = first.body.fencingToken as number;
    t.ok(await fenced(token, `${token}:first`), 'the holder writes through its fence');
    landed.push({ token, value: `${token}:first` });

    for (let r = 1; r <= ROUNDS; r++) {
      const leaderNow = await c.waitForLeader();
      // The waiter queues on a follower (so stopping the leader does not cut its request).
      const followers = liveNodes(c).filter((i) => i !== leaderNow);
      const waiterNode = followers[r % followers.length]!;
      const nextLease = await grantLease(c, 2);
      const nextKa = new KeepAlive(c, nextLease);
      const waiting = acquire(nextLease, () => [waiterNode]);
      await sleep(300);
      // The holder still holds while it renews: its fenced write lands.
      const still = `${token}:still-${r}`;
      t.ok(await fenced(token, still), `round ${r}: the live holder still writes`);
      landed.push({ token, value: still });

      // The holder is paused past its TTL (it stops renewing).
      await ka.pause();
      let stoppedLeader = -1;
      if (r === LEADER_STOP_ROUND) {
        stoppedLeader = c.leaderIndex();
        if (stoppedLeader >= 0 && stoppedLeader !== waiterNode) await c.stopNode(stoppedLeader);
        else stoppedLeader = -1;
      }
      const got = await waiting;
      t.equal(got.status, 200, `round ${r}: the waiter acquires once the holder's lease lapses`);
      const nextToken = got.body.fencingToken as number;
      t.ok(nextToken > token, `round ${r}: fencing token increases (${token} < ${nextToken})`);

      // The paused holder wakes up and tries to write through its old token: refused.
      const stale = `${token}:stale-${r}`;
      staleAttempts.push(stale);
      t.equal(
        await fenced(token, stale),
        false,
        `round ${r}: the stale holder's write does not land`,
      );
      const kaStale = await retrying('keepalive', all, (u) =>
        req(u, 'POST', `/v1/leases/${enc(lease)}/keepalive`),
      );
      t.equal(kaStale.status, 404, `round ${r}: the stale holder's lease is gone`);
      const fresh = `${nextToken}:fresh-${r}`;
      t.ok(await fenced(nextToken, fresh), `round ${r}: the new holder writes`);
      landed.push({ token: nextToken, value: fresh });

      if (stoppedLeader >= 0) {
        await c.restartNode(stoppedLeader);
        t.pass(`round ${r}: the leader (node ${stoppedLeader}) was stopped during the handover`);
      }
      lease = nextLease;
      ka = nextKa;
      token = nextToken;
    }
    await ka.pause();
    await retrying('revoke', all, (u) => req(u, 'DELETE', `/v1/leases/${enc(lease)}`));

    // The key's history: exactly the fenced writes that were acknowledged, tokens never going back.
    const h = await history(c, 0, `/v1/watch/${enc('fenced/out')}`, startRev);
    const values = h.flatMap((ch) =>
      ch.events.filter((e) => e.type === 'put').map((e) => e.kv.value),
    );
    t.same(
      values,
      landed.map((l) => l.value),
      'every acknowledged fenced write landed, in order, and nothing else',
    );
    t.notOk(
      values.some((v) => staleAttempts.includes(v)),
      'no stale write is in the history',
    );
    const tokens = values.map((v) => Number(v.split(':')[0]));
    t.ok(
      tokens.every((tok, i) => i === 0 || tok >= tokens[i - 1]!),
      `tokens never decrease: ${tokens.join(',')}`,
    );
    const holders = [...new Set(tokens)];
    t.equal(holders.length, ROUNDS + 1, `${ROUNDS} handovers, ${holders.length} distinct holders`);
    t.ok(
      holders.every((tok, i) => i === 0 || tok > holders[i - 1]!),
      'tokens strictly increase from one holder to the next',
    );
  },
);

t.test(
  'leases: an isolated leader revokes nothing that the majority kept alive; expiry deletes keys exactly once',
  async (t) => {
    const c = await startCluster(3);
    t.teardown(() => c.close());
    const old = await c.waitForLeader();
    const ids = c.nodes.map((n) => n!.node.id);
    const others = [0, 1, 2].filter((i) => i !== old);
    const majority = () => urlsOf(c, others);

    const startRev = (await currentRevision(c)) + 1;
    // Kept leases: renewed through the majority side only. Doomed ones: left to expire.
    const kept = await Promise.all([0, 1, 2].map(() => grantLease(c, 3)));
    const kas = kept.map((l) => new KeepAlive(c, l, 250, () => [old]));
    const keysOf = new Map<string, string[]>();
    // The doomed leases are granted only when their keys are next: with a TTL of 1 s, they
    // could lapse while a loaded machine is still putting the kept leases' keys.
    let doomed: string[] = [];
    for (const prefix of ['kept/', 'exp/'] as const) {
      if (prefix === 'exp/') doomed = await Promise.all([0, 1].map(() => grantLease(c, 1)));
      const leases = prefix === 'kept/' ? kept : doomed;
      for (const [i, l] of leases.entries()) {
        const keys = [`${prefix}${i}/a`, `${prefix}${i}/b`];
        keysOf.set(l, keys);
        for (const k of keys) {
          const r = await retrying('put', majority, (u) =>
            req(u, 'PUT', `/v1/kv/${enc(k)}`, { value: l, lease: l }),
          );
          t.equal(r.status, 200, `put ${k}`);
        }
      }
    }

    // Isolate the leader for longer than the kept leases' TTL: its own deadlines for them pass.
    for (const f of c.filters) f.isolate(ids[old]!);
    const newLeader = await waitFor(
      'a new leader on the majority side',
      async () => {
        const i = others.find((j) => c.nodes[j]!.node.statusSync().role === 'leader');
        return i;
      },
      10_000,
    );
    t.not(newLeader, old, `node ${newLeader} leads the majority`);
    t.comment(`isolated ex-leader node ${old} role: ${c.nodes[old]!.node.statusSync().role}`);
    await sleep(4_000);
    for (const f of c.filters) f.heal();
    await sleep(1_000);
    t.ok(
      kas.every((k) => !k.lost),
      'no kept-alive lease was lost',
    );
    t.ok(
      kas.every((k) => k.renewals >= 5),
      `renewals through the majority: ${kas.map((k) => k.renewals).join(',')}`,
    );

    // Every node, including the healed ex-leader, agrees on the leases and keys.
    const revision = await currentRevision(c);
    for (const i of [0, 1, 2]) {
      await waitFor(
        `node ${i} to catch up`,
        async () =>
          (await req(c.url(i), 'GET', `/v1/kv/x?consistency=serializable`)).body?.revision >=
          revision
            ? true
            : undefined,
        10_000,
      );
      for (const l of kept) {
        const r = await req(c.url(i), 'GET', `/v1/leases/${enc(l)}`);
        t.equal(r.status, 200, `node ${i}: kept lease ${l} lives`);
      }
      const keptKeys = await req(c.url(i), 'GET', `/v1/kv?prefix=kept%2F&consistency=serializable`);
      const expKeys = await req(c.url(i), 'GET', `/v1/kv?prefix=exp%2F&consistency=serializable`);
      t.equal(keptKeys.body?.kvs?.length, 6, `node ${i}: the kept leases' keys are all there`);
      t.equal(expKeys.body?.kvs?.length ?? 0, 0, `node ${i}: the expired leases' keys are gone`);
    }
    for (const l of doomed) {
      const r = await retrying('lookup', majority, (u) => req(u, 'GET', `/v1/leases/${enc(l)}`));
      t.equal(r.status, 404, `doomed lease ${l} expired`);
    }

    // Let the kept leases expire too now (no more renewals), after the leader change.
    const pausedAt = await currentRevision(c);
    await Promise.all(kas.map((k) => k.pause()));
    await waitFor(
      'the kept leases to expire',
      async () => {
        const r = await req(c.url(newLeader), 'GET', '/v1/leases');
        return r.status === 200 && r.body.leases.length === 0 ? true : undefined;
      },
      15_000,
    );

    // The watch history, read from the ex-leader: each attached key deleted exactly once,
    // a lease's keys in one revision; nothing deleted before its lease ended.
    const check = async (node: number, prefix: string) => {
      const h: ChangeEvent[] = await history(
        c,
        node,
        `/v1/watch/${enc(prefix)}?prefix=true`,
        startRev,
      );
      const deletes = new Map<string, number[]>();
      for (const ch of h)
        for (const e of ch.events)
          if (e.type === 'delete')
            deletes.set(e.kv.key, [...(deletes.get(e.kv.key) ?? []), ch.revision]);
      return deletes;
    };
    for (const node of [old, newLeader]) {
      for (const prefix of ['kept/', 'exp/']) {
        const deletes = await check(node, prefix);
        const leases = prefix === 'kept/' ? kept : doomed;
        for (const l of leases) {
          const [a, b] = keysOf.get(l)!;
          t.same(
            [deletes.get(a!)?.length, deletes.get(b!)?.length],
            [1, 1],
            `node ${node}: ${a} and ${b} deleted exactly once`,
          );
          t.equal(deletes.get(a!)?.[0], deletes.get(b!)?.[0], `node ${node}: in one revision`);
          if (prefix === 'kept/')
            t.ok(
              (deletes.get(a!)?.[0] ?? 0) > pausedAt,
              `node ${node}: ${a} deleted only after its renewals stopped`,
            );
        }
      }
    }
  },
);

t.test('registry: a name is never held by two live leases', async (t) => {
  const c = await startCluster(3);
  t.teardown(() => c.close());
  await c.waitForLeader();
  const NAME = 'svc/primary';
  const ROUNDS = 3;
  const startRev = (await currentRevision(c)) + 1;
  const register = (node: number, lease: string) =>
    req(c.url(node), 'PUT', `/v1/registry/${NAME}`, { value: `by-${lease}`, lease });

  let registrations = 0;
  let conflicts = 0;
  let observations = 0;
  /** Every node must name the same holder, and it must be a live lease. */
  const observe = async (expect: string) => {
    for (const i of [0, 1, 2]) {
      const r = await req(c.url(i), 'GET', `/v1/registry/${NAME}`);
      t.equal(r.body?.lease, expect, `node ${i} sees holder ${expect}`);
      observations++;
    }
    const l = await req(c.url(0), 'GET', `/v1/leases/${enc(expect)}`);
    t.equal(l.status, 200, 'the holder lease is live');
  };

  const all: string[] = [];
  let contenders = await Promise.all([0, 1, 2, 3, 4, 5].map(() => grantLease(c, 2)));
  all.push(...contenders);
  let kas = new Map(contenders.map((l) => [l, new KeepAlive(c, l)]));
  for (let round = 1; round <= ROUNDS; round++) {
    // Everyone registers at once, each through a different node.
    const replies = await Promise.all(contenders.map((l, i) => register(i % 3, l)));
    const won = replies.flatMap((r, i) => (r.status === 201 ? [contenders[i]!] : []));
    t.equal(won.length, 1, `round ${round}: exactly one registration wins`);
    const holder = won[0]!;
    registrations++;
    for (const r of replies) {
      if (r.status === 201) continue;
      conflicts++;
      t.equal(r.status, 409, `round ${round}: the others get 409`);
      t.equal(r.body.entry.lease, holder, 'naming the holder');
    }
    await observe(holder);

    // The holder stops renewing; the others keep trying, and get 409 until it expires.
    await kas.get(holder)!.pause();
    const losers = contenders.filter((l) => l !== holder);
    let next: string | undefined;
    const deadline = Date.now() + 15_000;
    while (next === undefined && Date.now() < deadline) {
      const rs = await Promise.all(losers.map((l, i) => register((i + round) % 3, l)));
      const wins = rs.flatMap((r, i) => (r.status === 201 ? [losers[i]!] : []));
      t.ok(wins.length <= 1, 'at most one re-registration wins');
      for (const r of rs) {
        if (r.status === 201) continue;
        conflicts++;
        t.equal(r.status, 409, 'the others are refused');
        if (r.body?.entry?.lease !== holder && r.body?.entry?.lease !== wins[0])
          t.fail(`a 409 names an unexpected holder ${JSON.stringify(r.body)}`);
      }
      if (wins.length === 1) next = wins[0];
      else await sleep(100);
    }
    t.ok(next, `round ${round}: the name passes on once the holder's lease expired`);
    registrations++;
    const gone = await req(c.url(round % 3), 'GET', `/v1/leases/${enc(holder)}`);
    t.equal(gone.status, 404, 'the previous holder lease is gone');
    const late = await register(0, holder);
    t.ok(
      late.status === 404 || late.status === 409,
      `the expired holder cannot register again (${late.status} ${late.body?.error?.code})`,
    );
    await observe(next!);

    // Next round: the new holder leaves at once and fresh contenders join.
    await kas.get(next!)!.pause();
    await retrying(
      'revoke',
      () => urlsOf(c, [0, 1, 2]),
      (u) => req(u, 'DELETE', `/v1/leases/${enc(next!)}`),
    );
    for (const k of kas.values()) await k.pause();
    contenders = await Promise.all([0, 1, 2, 3, 4, 5].map(() => grantLease(c, 2)));
    all.push(...contenders);
    kas = new Map(contenders.map((l) => [l, new KeepAlive(c, l)]));
  }
  for (const k of kas.values()) await k.pause();

  // The registry watch history: a put by another lease only ever follows a delete.
  const h = await history(c, 1, `/v1/registry?prefix=${enc('svc/')}&watch=true`, startRev);
  let current: string | null = null;
  let creates = 0;
  for (const ch of h) {
    for (const e of (ch as unknown as { events: { type: string; entry: { lease: string } }[] })
      .events) {
      if (e.type === 'put') {
        if (current !== null && current !== e.entry.lease)
          t.fail(`revision ${ch.revision}: ${e.entry.lease} registered while ${current} held it`);
        if (current === null) creates++;
        current = e.entry.lease;
      } else current = null;
    }
  }
  t.equal(creates, registrations, `${creates} holders in the history, one at a time`);
  t.pass(
    `${ROUNDS} rounds, ${all.length} leases, ${registrations} registrations, ${conflicts} refusals, ${observations} observations`,
  );
});
