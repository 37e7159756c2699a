import type { Message, NodeId, SeededRandom } from '../../src/raft/index.js';

interface InFlight {
  deliverAt: number;
  seq: number;
  message: Message;
}

/**
 * A simulated network: every message gets a random delay (so messages are
 * reordered), may be dropped or duplicated, and is lost when a partition blocks
 * its link at send or delivery time. Time is counted in delivery rounds.
 */
export class SimNetwork {
  dropRate = 0;
  duplicateRate = 0;
  maxDelayRounds = 1;
  /** Directed links that lose every message: "from>to". */
  private readonly blocked = new Set<string>();
  private inFlight: InFlight[] = [];
  private seq = 0;
  private readonly rng: SeededRandom;

  constructor(rng: SeededRandom) {
    this.rng = rng;
  }

  send(message: Message, now: number): void {
    if (this.isBlocked(message.from, message.to)) return;
    if (this.dropRate > 0 && this.rng.nextFloat() < this.dropRate) return;
    // Receivers must not share objects with the sender, as over a real wire.
    this.enqueue(structuredClone(message), now);
    if (this.duplicateRate > 0 && this.rng.nextFloat() < this.duplicateRate) {
      this.enqueue(structuredClone(message), now);
    }
  }

  private enqueue(message: Message, now: number): void {
    const deliverAt = now + 1 + this.rng.nextInt(this.maxDelayRounds);
    this.inFlight.push({ deliverAt, seq: this.seq++, message });
  }

  /** Messages due by `now`, in a random order, minus those a partition now blocks. */
  takeDue(now: number): Message[] {
    const due: InFlight[] = [];
    const later: InFlight[] = [];
    for (const f of this.inFlight) (f.deliverAt <= now ? due : later).push(f);
    this.inFlight = later;
    // Fisher–Yates with the seeded source: deterministic reordering.
    for (let i = due.length - 1; i > 0; i--) {
      const j = this.rng.nextInt(i + 1);
      [due[i], due[j]] = [due[j]!, due[i]!];
    }
    return due.map((f) => f.message).filter((m) => !this.isBlocked(m.from, m.to));
  }

  isBlocked(from: NodeId, to: NodeId): boolean {
    return this.blocked.has(`${from}>${to}`);
  }

  block(from: NodeId, to: NodeId): void {
    if (from !== to) this.blocked.add(`${from}>${to}`);
  }

  /** Blocks both directions between every node of `a` and every node of `b`. */
  split(a: readonly NodeId[], b: readonly NodeId[]): void {
    for (const x of a) {
      for (const y of b) {
        this.block(x, y);
        this.block(y, x);
      }
    }
  }

  heal(): void {
    this.blocked.clear();
  }

  blockedLinks(): string[] {
    return [...this.blocked].sort();
  }

  /** Drops everything in flight to a node (its process died with the sockets). */
  dropTo(id: NodeId): void {
    this.inFlight = this.inFlight.filter((f) => f.message.to !== id);
  }

  inFlightCount(): number {
    return this.inFlight.length;
  }
}
