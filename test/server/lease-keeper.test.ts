import fc from 'fast-check';
import pino from 'pino';
import t from 'tap';
import { type Command, encodeCommand } from '../../src/kv/index.js';
import type { CommandResult } from '../../src/kv/results.js';
import { KvStateMachine } from '../../src/kv/state-machine.js';
import { LeaseKeeper } from '../../src/server/lease-keeper.js';

/**
 * LeaseKeeper with a fake clock and fake Raft: every node has its own keeper;
 * the replicated state is one real KvStateMachine (all connected nodes apply
 * the same log). A proposal by the node that really leads commits at once
 * (autoCommit) or when the test calls commit(); a proposal by anyone else
 * (an isolated or deposed leader) never commits and is rejected when it heals.
 * confirmLeadership() stays pending until settleConfirms(): it resolves for the
 * node that really leads and rejects for everyone else.
 */

const log = pino({ level: 'silent' });
const flush = () => new Promise<void>((r) => setImmediate(r));

interface Pending {
  from: number;
  cmd: Command;
  resolve(r: CommandResult): void;
  reject(e: Error): void;
}

interface SimNode {
  keeper: LeaseKeeper;
  /** Raft role as this node believes it (an isolated leader still believes it leads). */
  thinksLeader: boolean;
  connected: boolean;
  confirms: { resolve(): void; reject(e: Error): void }[];
  confirmCalls: number;
  /** Clock time of the last resolved confirmation while leading this term (-1: none). */
  confirmedAt: number;
  stuck: Pending[];
}

class Sim {
  t = 0;
  readonly sm = new KvStateMachine({ trackMutations: false });
  private index = 0;
  /** The node that really leads (can commit), or -1. */
  leader = -1;
  readonly nodes: SimNode[];
  queue: Pending[] = [];
  readonly proposed: { by: number; at: number; cmd: Command }[] = [];
  onApply: (cmd: Command, r: CommandResult, by: number) => void = () => {};

  constructor(
    n: number,
    readonly intervalMs: number,
    readonly tickMs: number,
    public autoCommit = true,
    /** Perfect clocks by default: the margin for clock rates has its own test. */
    clockRateBound = 0,
  ) {
    this.nodes = Array.from({ length: n }, (_, i) => {
      const node: SimNode = {
        keeper: undefined as unknown as LeaseKeeper,
        thinksLeader: false,
        connected: true,
        confirms: [],
        confirmCalls: 0,
        confirmedAt: -1,
        stuck: [],
      };
      node.keeper = new LeaseKeeper(
        {
          now: () => this.t,
          leases: () => this.sm.leases(),
          lease: (id) => this.sm.lease(id),
          confirmLeadership: () => {
            node.confirmCalls++;
            return new Promise<void>((resolve, reject) => node.confirms.push({ resolve, reject }));
          },
          isLeader: () => node.thinksLeader,
          propose: (cmd) => this.propose(i, cmd),
          log,
        },
        intervalMs,
        { clockRateBound },
      );
      return node;
    });
  }

  private propose(from: number, cmd: Command): Promise<CommandResult> {
    this.proposed.push({ by: from, at: this.t, cmd });
    return new Promise((resolve, reject) => {
      const p: Pending = { from, cmd, resolve, reject };
      if (from !== this.leader) this.nodes[from]!.stuck.push(p);
      else if (this.autoCommit) resolve(this.apply(cmd, from));
      else this.queue.push(p);
    });
  }

  /** Commits the queued proposals of the node that really leads, in order. */
  async commit(): Promise<void> {
    const queue = this.queue;
    this.queue = [];
    for (const p of queue) {
      if (p.from === this.leader) p.resolve(this.apply(p.cmd, p.from));
      else p.reject(new Error('not committed: leadership lost'));
    }
    await flush();
  }

  private apply(cmd: Command, by: number): CommandResult {
    const r = this.sm.apply(++this.index, encodeCommand({ v: 1, atMs: this.t, cmd }));
    if ('skipped' in r) throw new Error('unexpected skip');
    for (const n of this.nodes) if (n.connected) n.keeper.onApplied(r);
    this.onApply(cmd, r, by);
    return r;
  }

  /** A client request through the leader; undefined if there is none (the client retries later). */
  client(cmd: Command): Promise<CommandResult> | undefined {
    if (this.leader < 0) return undefined;
    return this.propose(this.leader, cmd);
  }

  elect(i: number): void {
    const n = this.nodes[i]!;
    if (!n.connected) throw new Error('electing an isolated node');
    this.leader = i;
    n.thinksLeader = true;
    n.confirmedAt = -1;
    n.keeper.becomeLeader();
  }

  /** The leader steps down (it knows at once). */
  stepDown(): void {
    const n = this.nodes[this.leader]!;
    n.thinksLeader = false;
    n.keeper.loseLeadership();
    this.leader = -1;
  }

  /** Cuts node i off: if it led, it keeps believing so, and nothing it proposes commits. */
  isolate(i: number): void {
    this.nodes[i]!.connected = false;
    if (this.leader === i) this.leader = -1;
  }

  /** Node i rejoins: it learns the new term (if it led, it steps down) and its stuck proposals fail. */
  heal(i: number): void {
    const n = this.nodes[i]!;
    if (n.connected) return;
    if (n.thinksLeader && this.leader !== i) {
      n.thinksLeader = false;
      n.keeper.loseLeadership();
    }
    for (const p of n.stuck.splice(0)) p.reject(new Error('not committed: deposed'));
    n.connected = true;
  }

  settleConfirms(): void {
    this.nodes.forEach((n, i) => {
      for (const c of n.confirms.splice(0)) {
        if (i === this.leader && n.connected) {
          n.confirmedAt = this.t;
          c.resolve();
        } else c.reject(new Error('deposed'));
      }
    });
  }

  /** One tick of every node's clock, then pending confirmations settle. */
  async tick(settle = true): Promise<void> {
    this.t += this.tickMs;
    for (const n of this.nodes) n.keeper.tick();
    await flush();
    if (settle) {
      this.settleConfirms();
      await flush();
    }
  }

  async ticks(k: number): Promise<void> {
    for (let i = 0; i < k; i++) await this.tick();
  }

  revokes(): { by: number; at: number; id: string }[] {
    return this.proposed.flatMap((p) =>
      p.cmd.type === 'leaseRevoke' ? [{ by: p.by, at: p.at, id: p.cmd.id }] : [],
    );
  }
}

t.test(
  'under the clock-rate bound the leader waits TTL × (1 + b) / (1 − b) on its clock',
  async (t) => {
    const sim = new Sim(3, 10_000, 1, true, 0.01);
    sim.elect(0);
    await sim.client({ type: 'leaseGrant', id: 'a', ttlMs: 1000 });
    t.equal(sim.nodes[0]!.keeper.remainingMs('a'), 1000, 'lookups report the TTL itself');
    const stretched = (1000 * 1.01) / 0.99; // 1020.2 ms
    while (sim.revokes().length === 0 && sim.t < 2000) await sim.tick();
    t.equal(sim.revokes()[0]?.at, Math.ceil(stretched), 'revoked at the first tick past 1020.2 ms');
    // A client whose clock runs 1 % slow measures the lease: never shorter than its TTL.
    t.ok(sim.revokes()[0]!.at * 0.99 >= 1000 * 1.01 - 1e-9);
  },
);

t.test('a checkpoint records TTL ms, so a new leader applies the margin once', async (t) => {
  const sim = new Sim(3, 100, 10, true, 0.01);
  sim.elect(0);
  await sim.client({ type: 'leaseGrant', id: 'a', ttlMs: 1000 });
  await sim.ticks(10); // t = 100: a checkpoint
  const remaining = sim.sm.lease('a')!.remainingMs!;
  t.ok(Math.abs(remaining - (1000 - 100 / (1.01 / 0.99))) <= 1, `checkpointed ${remaining}`);
  sim.stepDown();
  sim.elect(1);
  t.equal(
    sim.nodes[1]!.keeper.remainingMs('a'),
    remaining,
    'the new leader reports the checkpointed TTL',
  );
});

t.test('no revoke is proposed before confirmLeadership resolves', async (t) => {
  const sim = new Sim(3, 10_000, 10);
  sim.elect(0);
  await sim.client({ type: 'leaseGrant', id: 'a', ttlMs: 100 });
  for (let i = 0; i < 9; i++) await sim.tick();
  t.equal(sim.revokes().length, 0, 'nothing before the TTL');
  await sim.tick(false); // t = 100: the deadline; confirmation pending
  t.equal(sim.nodes[0]!.confirmCalls, 1, 'leadership is being confirmed');
  for (let i = 0; i < 5; i++) await sim.tick(false);
  t.equal(sim.revokes().length, 0, 'no revoke while the confirmation is pending');
  t.equal(sim.nodes[0]!.confirmCalls, 1, 'one confirmation at a time');
  sim.settleConfirms();
  await flush();
  t.same(
    sim.revokes().map((r) => [r.by, r.id]),
    [[0, 'a']],
    'revoked right after the confirmation',
  );
  t.equal(sim.sm.leases().length, 0);
});

t.test('a deposed leader whose confirmation fails revokes nothing', async (t) => {
  const sim = new Sim(3, 10_000, 10);
  sim.elect(0);
  await sim.client({ type: 'leaseGrant', id: 'a', ttlMs: 100 });
  await sim.client({ type: 'leaseGrant', id: 'b', ttlMs: 100 });
  sim.isolate(0); // node 0 is paused/partitioned but still believes it leads
  for (let i = 0; i < 30; i++) await sim.tick(); // its confirmations keep failing
  t.ok(sim.nodes[0]!.confirmCalls >= 2, 'it keeps trying to confirm');
  t.equal(sim.revokes().length, 0, 'never proposes a revoke');
  t.equal(sim.sm.leases().length, 2, 'both leases live');
  // Meanwhile a new leader restarts the deadlines; node 0 heals and steps down.
  sim.elect(1);
  const electedAt = sim.t;
  sim.heal(0);
  t.equal(sim.nodes[0]!.keeper.isLeading(), false);
  await sim.ticks(5);
  await sim.client({ type: 'leaseKeepAlive', id: 'a' });
  await sim.ticks(5);
  const revokes = sim.revokes();
  t.same(
    revokes.map((r) => [r.by, r.id]),
    [[1, 'b']],
    'only the new leader revokes, only the lease not kept alive',
  );
  t.ok(revokes[0]!.at >= electedAt + 100, 'a full TTL after the election');
});

t.test('a lease renewed while the confirmation is pending is not revoked', async (t) => {
  const sim = new Sim(3, 10_000, 10);
  sim.elect(0);
  await sim.client({ type: 'leaseGrant', id: 'a', ttlMs: 100 });
  await sim.client({ type: 'leaseGrant', id: 'b', ttlMs: 100 });
  for (let i = 0; i < 10; i++) await sim.tick(i < 9);
  t.equal(sim.nodes[0]!.confirmCalls, 1, 'confirmation pending for both');
  await sim.client({ type: 'leaseKeepAlive', id: 'a' });
  sim.settleConfirms();
  await flush();
  t.same(
    sim.revokes().map((r) => r.id),
    ['b'],
    'only the lease that was not renewed',
  );
  t.same(
    sim.sm.leases().map((l) => l.id),
    ['a'],
  );
  t.equal(sim.nodes[0]!.keeper.remainingMs('a'), 100, 'a full TTL from the keepalive');
});

t.test(
  'checkpoints every interval with the remaining TTLs; a new leader restarts from them',
  async (t) => {
    const sim = new Sim(3, 200, 10);
    sim.elect(0);
    await sim.client({ type: 'leaseGrant', id: 'a', ttlMs: 1000 });
    await sim.ticks(5);
    await sim.client({ type: 'leaseGrant', id: 'b', ttlMs: 5000 });
    await sim.ticks(65); // t = 650
    const cps = sim.proposed.filter((p) => p.cmd.type === 'leaseCheckpoint');
    t.same(
      cps.map((p) => p.at),
      [200, 400, 600],
      'one checkpoint per interval',
    );
    t.same(
      // Each entry also names the renewal it was computed from (so a later keepalive voids it).
      cps.map((p) =>
        p.cmd.type === 'leaseCheckpoint'
          ? p.cmd.leases.map(({ id, remainingMs }) => ({ id, remainingMs }))
          : [],
      ),
      [
        [
          { id: 'a', remainingMs: 800 },
          { id: 'b', remainingMs: 4850 },
        ],
        [
          { id: 'a', remainingMs: 600 },
          { id: 'b', remainingMs: 4650 },
        ],
        [
          { id: 'a', remainingMs: 400 },
          { id: 'b', remainingMs: 4450 },
        ],
      ],
      'with what each lease has left',
    );
    const state = sim.sm.lease('a')!;
    t.equal(state.remainingMs, 400, 'the checkpoint is in the replicated state');

    // The leader dies at 650; node 2 is elected at 800 and restarts from the checkpoint.
    sim.isolate(0);
    await sim.ticks(15);
    sim.elect(2);
    t.equal(sim.nodes[2]!.keeper.remainingMs('a'), 400, 'a: the checkpointed remaining TTL');
    t.equal(sim.nodes[2]!.keeper.remainingMs('b'), 4450);
    // A keepalive clears the checkpoint: the next election gives the full TTL.
    await sim.client({ type: 'leaseKeepAlive', id: 'b' });
    t.equal(sim.sm.lease('b')!.remainingMs, null, 'a keepalive makes the checkpoint obsolete');
    sim.stepDown();
    sim.elect(1);
    t.equal(sim.nodes[1]!.keeper.remainingMs('b'), 5000);
    // No leases, no checkpoints.
    await sim.client({ type: 'leaseRevoke', id: 'a' });
    await sim.client({ type: 'leaseRevoke', id: 'b' });
    const before = sim.proposed.length;
    await sim.ticks(50);
    t.equal(sim.proposed.length, before, 'nothing to checkpoint, nothing proposed');
  },
);

// ---------------------------------------------------------------- the property

const TICK = 10;
const INTERVAL = 200;

type Action =
  | { k: 'grant'; ttl: number }
  | { k: 'keepalive'; lease: number }
  | { k: 'wait'; ticks: number }
  | { k: 'change'; gapTicks: number; next: number; isolate: boolean; healFirst: boolean }
  | { k: 'heal' };

const actionArb: fc.Arbitrary<Action> = fc.oneof(
  {
    weight: 2,
    arbitrary: fc.record({
      k: fc.constant('grant' as const),
      ttl: fc.constantFrom(150, 300, 700, 2000),
    }),
  },
  { weight: 5, arbitrary: fc.record({ k: fc.constant('keepalive' as const), lease: fc.nat(20) }) },
  {
    weight: 5,
    arbitrary: fc.record({
      k: fc.constant('wait' as const),
      ticks: fc.integer({ min: 1, max: 40 }),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      k: fc.constant('change' as const),
      gapTicks: fc.integer({ min: 1, max: 30 }),
      next: fc.nat(1),
      isolate: fc.boolean(),
      healFirst: fc.boolean(),
    }),
  },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('heal' as const) }) },
);

interface Model {
  /** Last acknowledged (applied) grant or keepalive + TTL. */
  trueDeadline: Map<string, number>;
  /** trueDeadline + the allowance of every leader change since. */
  upper: Map<string, number>;
  revoked: Map<string, number>;
  changes: number;
  keepalives: number;
}

/** Allowance per leader change: a checkpoint interval (on tick boundaries), the time without a leader, rounding. */
const allowance = (gapMs: number) => INTERVAL + gapMs + 2 * TICK + 1;
/** Revokes are decided on a tick and confirmed by the end of it. */
const SLACK = 2 * TICK;

async function runModel(actions: Action[]): Promise<Model & { failures: string[] }> {
  const sim = new Sim(3, INTERVAL, TICK);
  const m: Model = {
    trueDeadline: new Map(),
    upper: new Map(),
    revoked: new Map(),
    changes: 0,
    keepalives: 0,
  };
  const failures: string[] = [];
  const fail = (s: string) => {
    if (failures.length < 5) failures.push(`t=${sim.t}: ${s}`);
  };
  sim.onApply = (_cmd, r, by) => {
    if (!r.ok) return;
    if (r.op === 'leaseGrant' || r.op === 'leaseKeepAlive') {
      m.trueDeadline.set(r.id, sim.t + r.ttlMs);
      m.upper.set(r.id, sim.t + r.ttlMs);
    } else if (r.op === 'leaseRevoke') {
      const td = m.trueDeadline.get(r.id)!;
      const up = m.upper.get(r.id)!;
      if (sim.t < td) fail(`lease ${r.id} revoked ${td - sim.t} ms before its true deadline ${td}`);
      if (sim.t > up + SLACK) fail(`lease ${r.id} revoked ${sim.t - up} ms after its bound ${up}`);
      const n = sim.nodes[by]!;
      if (n.confirmedAt < 0)
        fail(`lease ${r.id} revoked by ${by} without a confirmation this term`);
      if (m.revoked.has(r.id)) fail(`lease ${r.id} revoked twice`);
      m.revoked.set(r.id, sim.t);
    }
  };
  /** Deadlines on the real leader: never before the true deadline, never past the bound. */
  const checkDeadlines = () => {
    if (sim.leader < 0) return;
    const keeper = sim.nodes[sim.leader]!.keeper;
    for (const l of sim.sm.leases()) {
      const rem = keeper.remainingMs(l.id);
      if (rem === undefined) {
        fail(`leader ${sim.leader} has no deadline for ${l.id}`);
        continue;
      }
      const td = m.trueDeadline.get(l.id)!;
      if (sim.t + rem < td) fail(`leader deadline ${sim.t + rem} for ${l.id} < true ${td}`);
      if (rem > 0 && sim.t + rem > m.upper.get(l.id)! + 1)
        fail(`leader deadline ${sim.t + rem} for ${l.id} > bound ${m.upper.get(l.id)}`);
    }
  };
  let nextId = 0;
  let isolated = -1;
  sim.elect(0);
  for (const a of actions) {
    switch (a.k) {
      case 'grant':
        await sim.client({ type: 'leaseGrant', id: `l${nextId++}`, ttlMs: a.ttl });
        break;
      case 'keepalive': {
        const live = sim.sm.leases();
        if (live.length === 0) break;
        const p = sim.client({ type: 'leaseKeepAlive', id: live[a.lease % live.length]!.id });
        if (p && (await p).ok) m.keepalives++;
        break;
      }
      case 'wait':
        for (let i = 0; i < a.ticks; i++) {
          await sim.tick();
          checkDeadlines();
        }
        break;
      case 'heal':
        if (isolated >= 0) sim.heal(isolated);
        isolated = -1;
        break;
      case 'change': {
        const old = sim.leader;
        if (old < 0) break;
        if (isolated >= 0) sim.heal(isolated); // keep a majority
        isolated = -1;
        const x = sim.t;
        if (a.isolate) {
          sim.isolate(old);
          isolated = old;
        } else sim.stepDown();
        for (let i = 0; i < a.gapTicks; i++) await sim.tick();
        if (a.isolate && a.healFirst) {
          sim.heal(old);
          isolated = -1;
        }
        const candidates = [0, 1, 2].filter((i) => i !== old && sim.nodes[i]!.connected);
        sim.elect(candidates[a.next % candidates.length]!);
        m.changes++;
        const gap = sim.t - x;
        for (const l of sim.sm.leases()) m.upper.set(l.id, m.upper.get(l.id)! + allowance(gap));
        checkDeadlines();
        break;
      }
    }
  }
  // Drain: heal, stop keeping anything alive; every lease must go, within its bound.
  if (isolated >= 0) sim.heal(isolated);
  const horizon = Math.max(sim.t, ...m.upper.values()) + 10 * TICK;
  while (sim.t < horizon) {
    await sim.tick();
    checkDeadlines();
  }
  if (sim.sm.leases().length > 0)
    fail(
      `leases never revoked: ${sim.sm
        .leases()
        .map((l) => l.id)
        .join(',')}`,
    );
  return { ...m, failures };
}

t.test(
  'property: deadlines across leader changes are never cut short nor extended past the bound',
  async (t) => {
    let runs = 0;
    let changes = 0;
    let keepalives = 0;
    let revoked = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(actionArb, { minLength: 5, maxLength: 80 }), async (actions) => {
        const r = await runModel(actions);
        runs++;
        changes += r.changes;
        keepalives += r.keepalives;
        revoked += r.revoked.size;
        if (r.failures.length > 0) throw new Error(r.failures.join('\n'));
      }),
      { numRuns: 300, seed: 0x1ea5e },
    );
    t.pass(
      `${runs} runs: ${changes} leader changes, ${keepalives} keepalives, ${revoked} expiries`,
    );
    t.ok(changes > 100 && revoked > 100, 'the runs exercised leader changes and expiries');
  },
);

// ------------------------------------------------------- regressions: two ways a lease was cut short

t.test(
  'a checkpoint computed before an in-flight keepalive is void once the keepalive is applied, so the next leader does not cut the lease short',
  async (t) => {
    const sim = new Sim(3, 200, 10, false);
    sim.elect(0);
    sim.client({ type: 'leaseGrant', id: 'a', ttlMs: 1500 });
    await sim.commit(); // granted at t = 0
    for (let i = 0; i < 99; i++) {
      await sim.tick();
      await sim.commit(); // t = 990; checkpoints committed as they come
    }
    const ka = sim.client({ type: 'leaseKeepAlive', id: 'a' })!; // proposed at 990, in flight
    await sim.tick(); // t = 1000: checkpoint computed from the old deadline (1500): remaining 500
    await sim.commit(); // log order: keepalive (acknowledged now, at 1000), then the checkpoint
    t.equal(
      (await ka).ok,
      true,
      'keepalive acknowledged at t=1000: the lease must live until 2500',
    );
    const ackAt = sim.t;
    sim.isolate(0); // the leader dies right after
    await sim.ticks(10);
    sim.elect(1); // t = 1100
    const rem = sim.nodes[1]!.keeper.remainingMs('a')!;
    t.ok(
      sim.t + rem >= ackAt + 1500,
      `new leader deadline ${sim.t + rem} must be >= ${ackAt + 1500} (checkpoint remainingMs ${sim.sm.lease('a')?.remainingMs})`,
    );
  },
);

t.test(
  'a revoke decided while a keepalive is in flight is refused once that keepalive is applied',
  async (t) => {
    const sim = new Sim(3, 10_000, 10, false);
    sim.elect(0);
    sim.client({ type: 'leaseGrant', id: 'a', ttlMs: 100 });
    await sim.commit();
    await sim.ticks(9); // t = 90
    const ka = sim.client({ type: 'leaseKeepAlive', id: 'a' })!; // in time, but not yet committed
    await sim.tick(); // t = 100: the deadline passes; confirmation resolves; revoke proposed
    await sim.commit(); // log order: keepalive (acknowledged at 100), revoke
    t.equal((await ka).ok, true, 'keepalive acknowledged at t=100');
    t.equal(sim.sm.lease('a') !== undefined, true, 'the lease must live until t=200');
  },
);
