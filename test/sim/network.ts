import type { Message, NodeId, SeededRandom } from '../../src/raft/index.js';
import type { NodeClock, SimScheduler } from './clock.js';

/** Where the network hands messages over, and who tells senders how a snapshot went. */
export interface NetworkEndpoints {
  /** The receiving process's clock, or undefined when it is down (the message is lost). */
  clockOf(id: NodeId): NodeClock | undefined;
  /** Delivers into the receiver (its core's step()). */
  deliver(m: Message): void;
  /** Tells the sender how a snapshot it sent went (the transport's reportSnapshot). */
  snapshotStatus(from: NodeId, to: NodeId, ok: boolean): void;
}

export interface NetworkStats {
  sent: number;
  delivered: number;
  dropped: number;
  duplicated: number;
  snapshotsSent: number;
}

/**
 * A simulated network in virtual milliseconds: every message gets a random
 * delay (so messages are reordered), may be dropped or duplicated, and is lost
 * when a partition blocks its link at send or at delivery time, or when the
 * receiver is down. A message to a paused process waits for it (the kernel
 * buffers it). Snapshot messages report back to the sender whether they
 * arrived, as the HTTP transport does after streaming one.
 */
export class SimNetwork {
  dropRate = 0;
  duplicateRate = 0;
  minDelayMs = 1;
  maxDelayMs = 10;
  /** Directed links that lose every message: "from>to". */
  private readonly blocked = new Set<string>();
  readonly stats: NetworkStats = {
    sent: 0,
    delivered: 0,
    dropped: 0,
    duplicated: 0,
    snapshotsSent: 0,
  };

  constructor(
    private readonly scheduler: SimScheduler,
    private readonly rng: SeededRandom,
    private readonly endpoints: NetworkEndpoints,
  ) {}

  send(message: Message): void {
    this.stats.sent++;
    if (message.type === 'snap') this.stats.snapshotsSent++;
    if (this.isBlocked(message.from, message.to)) {
      this.lost(message);
      return;
    }
    if (this.dropRate > 0 && this.rng.nextFloat() < this.dropRate) {
      this.lost(message);
      return;
    }
    // Receivers must not share objects with the sender, as over a real wire.
    this.enqueue(structuredClone(message));
    if (
      message.type !== 'snap' &&
      this.duplicateRate > 0 &&
      this.rng.nextFloat() < this.duplicateRate
    ) {
      this.stats.duplicated++;
      this.enqueue(structuredClone(message));
    }
  }

  private lost(m: Message): void {
    this.stats.dropped++;
    if (m.type === 'snap') this.report(m, false);
  }

  private report(m: Message, ok: boolean): void {
    const sender = this.endpoints.clockOf(m.from);
    if (!sender) return;
    // The sender learns after a round trip's worth of time.
    sender.afterTrue(this.delay(), () => this.endpoints.snapshotStatus(m.from, m.to, ok));
  }

  private delay(): number {
    return this.minDelayMs + this.rng.nextFloat() * Math.max(0, this.maxDelayMs - this.minDelayMs);
  }

  private enqueue(m: Message): void {
    const receiver = this.endpoints.clockOf(m.to);
    if (!receiver) {
      this.lost(m);
      return;
    }
    this.scheduler.after(this.delay(), () => {
      // Lost to a partition, or to a receiver that died (or restarted: a new clock) meanwhile.
      if (
        this.isBlocked(m.from, m.to) ||
        receiver.killed ||
        this.endpoints.clockOf(m.to) !== receiver
      )
        return this.lost(m);
      if (m.type === 'snap') this.report(m, true);
      // In the receiver's process: a paused one takes it when resumed.
      receiver.afterTrue(
        0,
        () => {
          this.stats.delivered++;
          this.endpoints.deliver(m);
        },
        `peer:${m.from}`,
      );
    });
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

  /** Scheduler events still queued (deliveries and timers). */
  pending(): number {
    return this.scheduler.pendingEvents();
  }
}
