/**
 * Leases across SIGKILL of the leader, on 3 real raftkv processes. API.md: "A
 * lease never expires before its TTL has passed since its last acknowledged
 * keepalive, whatever happens to the leader (a new leader restarts every
 * deadline at its election)". Leases kept alive through followers (raw HTTP
 * and the library's keeper) must keep their keys through two leader kills and
 * restarts; leases left to lapse (before, across and after a kill) must lose
 * their keys eventually, within a generous bound, and exactly once in every
 * node's history.
 */
import t from 'tap';
import { Client } from '../../src/client/index.js';
import { currentRevision, grantLease, putWithLease } from './coordination-ops.js';
import { call, sleep, waitUntil } from './http-ops.js';
import { ProcessCluster } from './process-cluster.js';
import { readHistory } from './sse.js';

const enc = encodeURIComponent;
/** --tick-ms 20 and 10 election ticks, randomized up to twice that. */
const ELECTION_TIMEOUT_MAX_MS = 400;
/** "eventually", not timing: a loaded 2-core machine may lag by seconds. */
const EXPIRY_SLACK_MS = 3 * ELECTION_TIMEOUT_MAX_MS + 8_000;
const KEPT_TTL_S = 4;
const KILL_ROUNDS = 2;
const STRADDLING_PER_ROUND = 3;

/** Renews a lease over raw HTTP every `everyMs` through `targets()`, recording what it saw. */
class HttpKeeper {
  /** Send times of the renewals answered 200. */
  readonly ackSentAt: number[] = [];
  attempts = 0;
  /** Set if a renewal was answered 404 (the lease is gone). */
  lostAt: number | undefined;
  private stopped = false;
  private readonly loop: Promise<void>;

  constructor(
    readonly lease: string,
    readonly ttlS: number,
    private readonly grantedAt: number,
    private readonly targets: () => string[],
    everyMs = 400,
  ) {
    this.loop = this.run(everyMs);
  }

  private async run(everyMs: number): Promise<void> {
    for (let i = 0; !this.stopped && i < 1_000; i++) {
      const urls = this.targets();
      const sent = Date.now();
      this.attempts++;
      // A short timeout: a renewal stuck behind a dead leader is retried elsewhere.
      const r = await call(
        urls[i % urls.length]!,
        `/v1/leases/${enc(this.lease)}/keepalive`,
        { method: 'POST' },
        1_000,
      );
      if (this.stopped) return;
      if (r.kind === 'ok') this.ackSentAt.push(sent);
      else if (r.status === 404) {
        this.lostAt = Date.now();
        return;
      }
      await sleep(everyMs);
    }
  }

  /** The longest time the lease went without an acknowledged renewal (grant to first ack, ...). */
  maxGapMs(until: number): number {
    const times = [this.grantedAt, ...this.ackSentAt, until];
    return Math.max(...times.slice(1).map((x, i) => x - times[i]!));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.loop;
  }
}

interface Doomed {
  label: string;
  lease: string;
  ttlS: number;
  keys: string[];
  /** Before the grant was sent: its deadline cannot be earlier than this + TTL. */
  grantedAt: number;
  goneSeenAt?: number;
}

/**
 * Lists `lk/` every 150 ms through a running node and records when each
 * expected key was first seen missing, by a listing sent after the key's put
 * was acknowledged.
 */
class Observer {
  readonly expected = new Map<string, { putAckAt: number; missingSince?: number }>();
  listings = 0;
  private stopped = false;
  private readonly loop: Promise<void>;

  constructor(private readonly urls: () => string[]) {
    this.loop = this.run();
  }

  private async run(): Promise<void> {
    for (let i = 0; !this.stopped && i < 2_000; i++) {
      const urls = this.urls();
      const sent = Date.now();
      const r = await call(urls[i % urls.length]!, `/v1/kv?prefix=${enc('lk/')}&keysOnly=true`);
      if (r.kind === 'ok' && r.status === 200 && r.body.more === false) {
        this.listings++;
        const present = new Set((r.body.kvs ?? []).map((kv) => kv.key));
        for (const [key, e] of this.expected)
          if (e.putAckAt < sent && !present.has(key)) e.missingSince ??= Date.now();
      }
      await sleep(150);
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.loop;
  }
}

t.test(
  'leases kept alive through followers keep their keys across leader SIGKILLs; lapsed ones lose them exactly once',
  async (t) => {
    const c = await ProcessCluster.create(3);
    t.teardown(() => c.close());
    const keepers: HttpKeeper[] = [];
    let observer: Observer | undefined;
    let client: Client | undefined;
    t.teardown(async () => {
      await Promise.all(keepers.map((k) => k.stop()));
      await observer?.stop();
      await client?.close();
    });
    try {
      await c.startAll();
      let leader = await c.waitForLeader();
      const running = () => [0, 1, 2].filter((i) => c.running(i)).map((i) => c.url(i));
      // Renewals go to nodes other than the last known leader (they forward them).
      const followers = () =>
        [0, 1, 2].filter((i) => i !== leader && c.running(i)).map((i) => c.url(i));
      observer = new Observer(running);
      const startRev = (await currentRevision(running)) + 1;

      const attach = async (prefix: string, lease: string): Promise<string[]> => {
        const keys = [`${prefix}/a`, `${prefix}/b`];
        for (const key of keys) {
          await putWithLease(running, key, lease);
          observer!.expected.set(key, { putAckAt: Date.now() });
        }
        return keys;
      };
      const doomed: Doomed[] = [];
      const grantDoomed = async (label: string, ttlS: number) => {
        const grantedAt = Date.now();
        const lease = await grantLease(running, ttlS);
        const keys = await attach(`lk/doomed/${label}`, lease);
        doomed.push({ label, lease, ttlS, keys, grantedAt });
      };

      // Kept: three renewed over raw HTTP, one by the library's keeper; all through followers.
      const keptKeys = new Map<string, string[]>();
      for (let i = 0; i < 3; i++) {
        const grantedAt = Date.now();
        const lease = await grantLease(running, KEPT_TTL_S);
        keepers.push(new HttpKeeper(lease, KEPT_TTL_S, grantedAt, followers));
        keptKeys.set(lease, await attach(`lk/kept/${i}`, lease));
      }
      client = new Client({ endpoints: followers(), timeoutMs: 2_000 });
      const libLease = await grantLease(running, KEPT_TTL_S);
      let libLost: string | undefined;
      const libKeeper = client.keepLeaseAlive(libLease, { ttlSeconds: KEPT_TTL_S });
      void libKeeper.lost.then((err) => {
        libLost = `${err.code}: ${err.message}`;
      });
      keptKeys.set(libLease, await attach('lk/kept/lib', libLease));
      // Dropped: kept alive through both kills, then left to lapse under the last leader.
      const droppedAt0 = Date.now();
      const droppedLease = await grantLease(running, 3);
      const dropped = new HttpKeeper(droppedLease, 3, droppedAt0, followers);
      keepers.push(dropped);
      const droppedKeys = await attach('lk/doomed/dropped', droppedLease);

      // Early: lapse under the first leader, before any kill.
      await grantDoomed('early-0', 1);
      await grantDoomed('early-1', 1);
      await waitUntil(
        'the early leases to lose their keys',
        () =>
          doomed.every((d) => d.keys.every((k) => observer!.expected.get(k)?.missingSince))
            ? true
            : undefined,
        1_000 + EXPIRY_SLACK_MS,
        100,
      );

      let lastSettledAt = Date.now();
      const killed: string[] = [];
      for (let round = 1; round <= KILL_ROUNDS; round++) {
        // Straddling: deadlines spread around the kill (some pass while the leader is dead).
        for (let j = 0; j < STRADDLING_PER_ROUND; j++) {
          await grantDoomed(`r${round}-${j}`, 2);
          await sleep(250);
        }
        await sleep(600);
        const victim = await c.waitForLeader();
        await c.kill(victim);
        killed.push(c.names[victim]!);
        leader = await c.waitForLeader();
        await sleep(700);
        await c.start(victim);
        leader = await c.waitForLeader();
        lastSettledAt = Date.now();
      }
      const finalTerm = (await c.statuses())[leader]?.term;

      // The dropped lease lapses under the last leader; kept ones go on renewing for more
      // than a TTL, so a deadline wrongly carried over a kill would have fired by now.
      await dropped.stop();
      const droppedStoppedAt = Date.now();
      doomed.push({
        label: 'dropped',
        lease: droppedLease,
        ttlS: 3,
        keys: droppedKeys,
        grantedAt: dropped.ackSentAt.at(-1) ?? droppedAt0,
      });
      await sleep(KEPT_TTL_S * 1000 + 1_000);
      const boundOf = (d: Doomed) =>
        Math.max(d.grantedAt, lastSettledAt) + d.ttlS * 1000 + EXPIRY_SLACK_MS;
      await waitUntil(
        'every lapsed lease to lose its keys',
        () =>
          doomed.every((d) => d.keys.every((k) => observer!.expected.get(k)?.missingSince))
            ? true
            : undefined,
        Math.max(...doomed.map(boundOf)) - Date.now() + 2_000,
        100,
      );
      const keptUntil = Date.now();
      const keptKeepers = keepers.filter((k) => k !== dropped);
      await Promise.all([...keptKeepers.map((k) => k.stop()), libKeeper.stop()]);
      await observer.stop();

      // Safety: no kept lease's key was ever missing, no renewal was refused, and they live.
      const gaps = keptKeepers.map((k) => k.maxGapMs(keptUntil));
      t.ok(
        gaps.every((g) => g < KEPT_TTL_S * 1000),
        `precondition: renewals never paused for a TTL (max gaps ${gaps.join(', ')} ms)`,
      );
      t.same(
        keptKeepers.filter((k) => k.lostAt !== undefined).map((k) => k.lease),
        [],
        'no kept lease was refused a renewal',
      );
      t.equal(libLost, undefined, "the library's keeper never lost its lease");
      const keptMissing = [...keptKeys.values()]
        .flat()
        .filter((k) => observer!.expected.get(k)?.missingSince !== undefined);
      t.same(keptMissing, [], 'no key of a kept lease was ever seen missing');
      for (const lease of keptKeys.keys()) {
        const r = await call(running()[0]!, `/v1/leases/${enc(lease)}`);
        t.equal(r.status, 200, `kept lease ${lease} still exists`);
      }

      // Liveness, generously bounded: each lapsed lease's keys went, and the lease with them.
      for (const d of doomed) {
        const gone = Math.max(...d.keys.map((k) => observer!.expected.get(k)!.missingSince!));
        d.goneSeenAt = gone;
        const r = await call(running()[0]!, `/v1/leases/${enc(d.lease)}`);
        t.equal(r.status, 404, `${d.label}: the lapsed lease is gone`);
      }
      const termNow = (await c.statuses())[leader]?.term;
      if (termNow === finalTerm) {
        const late = doomed.filter((d) => d.goneSeenAt! > boundOf(d));
        t.same(
          late.map((d) => `${d.label} ${d.goneSeenAt! - boundOf(d)} ms late`),
          [],
          'every lapsed lease lost its keys within TTL + 3 election timeouts + slack of the last election',
        );
      } else t.comment(`leadership changed again (term ${finalTerm} -> ${termNow}): no time bound`);

      // Exactly once, on every node: one delete per lapsed key (its lease's keys in one
      // revision), none for a kept key, one put per key; and all three histories agree.
      const upTo = await currentRevision(running);
      await waitUntil(
        'every node at the same revision',
        async () => {
          const sts = await c.statuses();
          return sts.every((s) => s && s.revision >= upTo) ? true : undefined;
        },
        15_000,
        100,
      );
      const histories = await Promise.all(
        [0, 1, 2].map((i) =>
          readHistory(c.url(i), `/v1/watch/${enc('lk/')}?prefix=true`, startRev, upTo, 15_000),
        ),
      );
      t.ok(
        histories.every((h) => h !== undefined),
        'every node replays the history',
      );
      t.ok(
        histories.every((h) => JSON.stringify(h) === JSON.stringify(histories[0])),
        'the three nodes have the same history',
      );
      const history = histories[0] ?? [];
      const deletesOf = new Map<string, number[]>();
      const putsOf = new Map<string, number>();
      for (const ch of history)
        for (const e of ch.events) {
          if (e.type === 'delete')
            deletesOf.set(e.kv.key, [...(deletesOf.get(e.kv.key) ?? []), ch.revision]);
          else putsOf.set(e.kv.key, (putsOf.get(e.kv.key) ?? 0) + 1);
        }
      t.same(
        [...keptKeys.values()].flat().filter((k) => deletesOf.has(k)),
        [],
        'no kept key was ever deleted',
      );
      for (const d of doomed) {
        t.same(
          d.keys.map((k) => deletesOf.get(k)?.length ?? 0),
          d.keys.map(() => 1),
          `${d.label}: each key deleted exactly once`,
        );
        t.equal(
          new Set(d.keys.map((k) => deletesOf.get(k)?.[0])).size,
          1,
          `${d.label}: its keys went in one revision`,
        );
      }
      t.ok(
        [...putsOf.values()].every((n) => n === 1),
        'every key was put once (nothing recreated)',
      );

      const renewals = keptKeepers.map((k) => k.ackSentAt.length);
      t.comment(
        `${keptKeys.size} kept leases (${renewals.join('+')} HTTP renewals acknowledged of ` +
          `${keptKeepers.reduce((n, k) => n + k.attempts, 0)} sent, + the library keeper), ` +
          `${doomed.length} lapsed leases (${doomed.map((d) => d.label).join(', ')}), ` +
          `${KILL_ROUNDS} leader kills (${killed.join(', ')}), ${observer.listings} listings, ` +
          `${history.length} revisions in each history; dropped lease gone ` +
          `${(doomed.at(-1)!.goneSeenAt ?? 0) - droppedStoppedAt} ms after its renewals stopped`,
      );
    } finally {
      if (!t.passing()) t.comment(c.diagnostics());
    }
  },
);
