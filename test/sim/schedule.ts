import fc from 'fast-check';
import { MAX_CLOCK_RATE, MIN_CLOCK_RATE } from './clock.js';

/**
 * A fault schedule as plain data, so fast-check can generate and shrink it.
 * Node references are small integers resolved against the current members
 * (modulo their count), so a shrunk schedule stays meaningful. Each event is
 * followed by `afterMs` of virtual time.
 */
export type SimEvent = (
  | { kind: 'partition'; shape: PartitionShape; node: number; mask: number }
  | { kind: 'heal' }
  /** Leader churn: isolate whoever leads, again and again (stale uncommitted tails, Figure 8). */
  | { kind: 'flap'; times: number; gapMs: number }
  | { kind: 'loss'; dropRate: number; duplicateRate: number }
  /** SIGKILL: the page cache survives. */
  | { kind: 'crash'; node: number; leader: boolean }
  /** The machine loses power: unsynced batches may be lost, the last one torn. */
  | { kind: 'powerLoss'; node: number; leader: boolean }
  | { kind: 'restart'; node: number }
  /** Every machine loses power at once, then all come back. */
  | { kind: 'powerLossAll' }
  /** A frozen process (SIGSTOP, a long GC pause) for `ms`. */
  | { kind: 'pause'; node: number; leader: boolean; ms: number }
  /** The next write (or fsync) of a node fails: it must stop without acknowledging what depended on it. */
  | { kind: 'diskFault'; node: number; leader: boolean; fault: 'write' | 'sync' }
  /** A stored log entry is damaged: found at the next open, or when the running node reads it. */
  | { kind: 'corrupt'; node: number; whenRead: boolean; pick: number }
  | { kind: 'transfer'; node: number }
  | { kind: 'addLearner' }
  | { kind: 'promote'; node: number }
  | { kind: 'remove'; node: number }
  /** A burst of client traffic. */
  | { kind: 'burst'; count: number }
  | { kind: 'wait' }
) & { afterMs: number };

export type PartitionShape = 'isolate' | 'isolateLeader' | 'split' | 'oneWay' | 'bridge';

/** The world of one run, drawn whole (swarm testing): each run stresses different things. */
export interface World {
  seed: number;
  dropRate: number;
  duplicateRate: number;
  minDelayMs: number;
  maxDelayMs: number;
  /** Disk latency: a write takes [0, diskMaxMs], an fsync diskSyncMs more. */
  diskMaxMs: number;
  diskSyncMs: number;
  /** Each node's clock rate, within the stated bound (index by node number). */
  clockRates: number[];
  heartbeatTicks: number;
  maxInflightMsgs: number;
  maxSizePerMsgBytes: number;
  snapshotCount: number;
  catchUpEntries: number;
  /** Client operations per virtual second. */
  opsPerSecond: number;
  /** Lease TTLs drawn from [minTtlMs, 3 × minTtlMs]. */
  minTtlMs: number;
  /**
   * Each boot's wall clock is off true time by up to ± this: NTP's usual ±1 s,
   * or a member whose NTP failed (±30 s, far more than any TTL). Wall clocks
   * stamp entries (the state machine clock); lease expiry must not depend on them.
   */
  wallSkewMaxMs: number;
  /** Share of leases whose client renews late (near or at the expiry) instead of at TTL / 3: keepalives racing the revoke. */
  lateRenewalShare: number;
}

export interface Schedule {
  world: World;
  events: SimEvent[];
}

/** Swarm-length schedules: hundreds of events per run. */
export const SCHEDULE_MIN_EVENTS = 200;
export const SCHEDULE_MAX_EVENTS = 600;

const rate = (max: number) =>
  fc.oneof(
    fc.constant(0),
    fc.integer({ min: 1, max: Math.round(max * 100) }).map((n) => n / 100),
  );

const clockRate = fc
  .integer({ min: Math.round(MIN_CLOCK_RATE * 10_000), max: Math.round(MAX_CLOCK_RATE * 10_000) })
  .map((n) => n / 10_000);

export const worldArbitrary: fc.Arbitrary<World> = fc.record({
  seed: fc.integer({ min: 0, max: 0x7fffffff }),
  dropRate: rate(0.15),
  duplicateRate: rate(0.1),
  minDelayMs: fc.integer({ min: 0, max: 3 }),
  // Mostly well under the election timeout (500 ms), sometimes close to it.
  maxDelayMs: fc.oneof(fc.integer({ min: 4, max: 40 }), fc.integer({ min: 41, max: 300 })),
  diskMaxMs: fc.oneof(fc.constant(1), fc.integer({ min: 2, max: 40 })),
  diskSyncMs: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 30 })),
  clockRates: fc.array(clockRate, { minLength: 7, maxLength: 7 }),
  heartbeatTicks: fc.integer({ min: 1, max: 3 }),
  maxInflightMsgs: fc.integer({ min: 1, max: 16 }),
  // 1 byte = one entry per append: replication entry by entry (Figure 8's setting).
  maxSizePerMsgBytes: fc.constantFrom(1, 1, 512, 64 * 1024),
  snapshotCount: fc.integer({ min: 10, max: 200 }),
  catchUpEntries: fc.integer({ min: 0, max: 20 }),
  opsPerSecond: fc.constantFrom(20, 50, 100, 200),
  minTtlMs: fc.constantFrom(1000, 2000, 4000),
  wallSkewMaxMs: fc.constantFrom(1000, 30_000),
  lateRenewalShare: fc.constantFrom(0, 0.25, 0.5),
});

const node = fc.integer({ min: 0, max: 7 });
const afterMs = fc.oneof(fc.integer({ min: 0, max: 300 }), fc.integer({ min: 301, max: 2000 }));

export const eventArbitrary: fc.Arbitrary<SimEvent> = fc.oneof(
  { weight: 10, arbitrary: fc.record({ kind: fc.constant('wait' as const), afterMs }) },
  {
    weight: 6,
    arbitrary: fc.record({
      kind: fc.constant('burst' as const),
      count: fc.integer({ min: 1, max: 30 }),
      afterMs,
    }),
  },
  {
    weight: 5,
    arbitrary: fc.record({
      kind: fc.constant('partition' as const),
      shape: fc.constantFrom<PartitionShape>(
        'isolate',
        'isolateLeader',
        'split',
        'oneWay',
        'bridge',
      ),
      node,
      mask: fc.integer({ min: 0, max: 255 }),
      afterMs,
    }),
  },
  { weight: 5, arbitrary: fc.record({ kind: fc.constant('heal' as const), afterMs }) },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant('flap' as const),
      times: fc.integer({ min: 2, max: 6 }),
      gapMs: fc.integer({ min: 300, max: 1500 }),
      afterMs,
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('loss' as const),
      dropRate: rate(0.3),
      duplicateRate: rate(0.1),
      afterMs,
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant('crash' as const),
      node,
      leader: fc.boolean(),
      afterMs,
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant('powerLoss' as const),
      node,
      leader: fc.boolean(),
      afterMs,
    }),
  },
  { weight: 6, arbitrary: fc.record({ kind: fc.constant('restart' as const), node, afterMs }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('powerLossAll' as const), afterMs }) },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant('pause' as const),
      node,
      leader: fc.boolean(),
      ms: fc.oneof(fc.integer({ min: 50, max: 400 }), fc.integer({ min: 401, max: 5000 })),
      afterMs,
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('diskFault' as const),
      node,
      leader: fc.boolean(),
      fault: fc.constantFrom<'write' | 'sync'>('write', 'sync'),
      afterMs,
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('corrupt' as const),
      node,
      whenRead: fc.boolean(),
      pick: fc.integer({ min: 0, max: 1 << 20 }),
      afterMs,
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('transfer' as const), node, afterMs }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('addLearner' as const), afterMs }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('promote' as const), node, afterMs }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('remove' as const), node, afterMs }) },
);

export function scheduleArbitrary(
  minEvents = SCHEDULE_MIN_EVENTS,
  maxEvents = SCHEDULE_MAX_EVENTS,
): fc.Arbitrary<Schedule> {
  return fc.record({
    world: worldArbitrary,
    // size 'max' so fast-check's default size does not cap the schedule's length.
    events: fc.array(eventArbitrary, { minLength: minEvents, maxLength: maxEvents, size: 'max' }),
  });
}
