/**
 * The faults of a chaos run, one at a time, in rounds that visit every kind
 * in a shuffled order (so even a short run injects each kind):
 *
 * - raftkv_kill: SIGKILL a raftkv member (every other time the leader),
 *   restart it from its data dir a moment later;
 * - bank_kill: SIGKILL a TSBank instance mid-traffic, restart it;
 * - interest_leader_stop: SIGSTOP the instance running the interest job
 *   for longer than its lease TTL, wait until another instance has taken
 *   the job over, then SIGCONT it: it wakes believing it still leads;
 * - raftkv_leader_move: hand raftkv's leadership to another member.
 *
 * One member down at a time keeps a quorum, so the bank must stay correct
 * AND keep working; the checks at the end say whether it did.
 */

import { INTEREST_ELECTION } from '../src/keys.js';
import type { Client } from '../src/raftkv.js';
import { type BankFleet, SESSION_TTL_S } from './bank-fleet.js';
import { delay } from './processes.js';
import type { RaftkvCluster } from './raftkv-cluster.js';
import { waitFor } from './wait.js';

export const FAULT_KINDS = [
  'raftkv_kill',
  'bank_kill',
  'interest_leader_stop',
  'raftkv_leader_move',
] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

export class FaultInjector {
  readonly injected: Record<FaultKind, number> = {
    raftkv_kill: 0,
    bank_kill: 0,
    interest_leader_stop: 0,
    raftkv_leader_move: 0,
  };
  /** Interest leaders that were frozen and saw another instance take the job over. */
  handovers = 0;
  /** Faults that could not be injected (no interest leader yet, a move refused). */
  skipped = 0;
  private killLeaderNext = true;

  constructor(
    private readonly cluster: RaftkvCluster,
    private readonly fleet: BankFleet,
    private readonly client: Client,
    private readonly say: (line: string) => void,
  ) {}

  /**
   * Faults until `untilMs`; the first round always completes, so that even a
   * short run injects every kind (a round takes about 10 s).
   */
  async run(untilMs: number): Promise<void> {
    for (let round = 0; round < 10_000; round++) {
      for (const kind of shuffled(FAULT_KINDS)) {
        if (round > 0 && Date.now() >= untilMs) return;
        await delay(300 + Math.random() * 500);
        await this.inject(kind);
      }
    }
  }

  private async inject(kind: FaultKind): Promise<void> {
    switch (kind) {
      case 'raftkv_kill':
        return this.killRaftkvMember();
      case 'bank_kill':
        return this.killBank();
      case 'interest_leader_stop':
        return this.freezeInterestLeader();
      case 'raftkv_leader_move':
        return this.moveRaftkvLeader();
    }
  }

  private async killRaftkvMember(): Promise<void> {
    const leader = await this.cluster.waitForLeader();
    const victim = this.killLeaderNext ? leader : Math.floor(Math.random() * 3);
    this.killLeaderNext = !this.killLeaderNext;
    await this.cluster.kill(victim);
    this.injected.raftkv_kill += 1;
    this.say(`SIGKILL raftkv ${this.cluster.names[victim]}${victim === leader ? ' (leader)' : ''}`);
    await delay(500 + Math.random() * 700);
    await this.cluster.start(victim);
    await this.cluster.waitForLeader();
  }

  private async killBank(): Promise<void> {
    const candidates = [0, 1, 2].filter((i) => this.fleet.serving(i));
    const victim = candidates[Math.floor(Math.random() * candidates.length)];
    if (victim === undefined) {
      this.skipped += 1;
      return;
    }
    await this.fleet.kill(victim);
    this.injected.bank_kill += 1;
    this.say(`SIGKILL ${this.fleet.names[victim]}`);
    await delay(200 + Math.random() * 500);
    await this.fleet.start(victim);
  }

  private async freezeInterestLeader(): Promise<void> {
    // Right after a start or a handover there may be no leader yet: wait for one, bounded.
    const leader = await waitFor(
      'an interest leader that is running',
      async () => {
        const name = await this.interestLeader();
        return name !== undefined && this.fleet.serving(this.fleet.indexOf(name))
          ? name
          : undefined;
      },
      10_000,
      100,
    ).catch(() => undefined);
    const child =
      leader === undefined ? undefined : this.fleet.instances[this.fleet.indexOf(leader)];
    if (!child) {
      this.skipped += 1;
      return;
    }
    child.signal('SIGSTOP');
    this.injected.interest_leader_stop += 1;
    this.say(`SIGSTOP ${leader} (interest leader) past its ${SESSION_TTL_S} s lease`);
    try {
      await delay(SESSION_TTL_S * 1000);
      const next = await waitFor(
        'another instance to take the interest job over',
        async () => {
          const now = await this.interestLeader();
          return now !== undefined && now !== leader ? now : undefined;
        },
        SESSION_TTL_S * 1000 + 8_000,
        100,
      ).catch(() => undefined);
      if (next !== undefined) {
        this.handovers += 1;
        // Let the new leader pay a night or two while the old one is still frozen.
        await delay(1_000 + Math.random() * 1_000);
      }
    } finally {
      child.signal('SIGCONT');
    }
    this.say(`SIGCONT ${leader}`);
  }

  private async moveRaftkvLeader(): Promise<void> {
    try {
      const moved = await this.client.moveLeader();
      this.injected.raftkv_leader_move += 1;
      this.say(`raftkv leadership moved to ${moved.leader}`);
    } catch (err) {
      this.skipped += 1;
      this.say(`raftkv leadership move refused: ${String(err)}`);
    }
  }

  private async interestLeader(): Promise<string | undefined> {
    try {
      return (await this.client.leader(INTEREST_ELECTION)).value;
    } catch {
      return undefined;
    }
  }
}

function shuffled<T>(items: readonly T[]): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}
