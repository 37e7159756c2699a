import fc from 'fast-check';

/**
 * A fault schedule as plain data, so fast-check can generate and shrink it.
 * Node references are small integers resolved against the current members
 * (modulo their count), so a shrunk schedule stays meaningful.
 */
export type SimEvent = (
  | { kind: 'propose'; node: number; key: number; count: number }
  | { kind: 'read'; node: number; key: number }
  | { kind: 'partition'; shape: PartitionShape; node: number; mask: number }
  | { kind: 'heal' }
  | { kind: 'crash'; node: number }
  | { kind: 'restart'; node: number }
  | { kind: 'crashAll' }
  | { kind: 'crashLeader' }
  /** SIGKILL during the next synced write: its eager messages left, nothing reached the disk. */
  | { kind: 'crashMidWrite'; node: number; leader: boolean }
  | { kind: 'bounce'; node: number }
  | { kind: 'flap'; times: number; gapTicks: number }
  | { kind: 'transfer'; node: number }
  | { kind: 'addLearner' }
  | { kind: 'promote'; node: number }
  | { kind: 'remove'; node: number }
  | { kind: 'loss'; dropRate: number; duplicateRate: number }
  | { kind: 'wait' }
) & {
  /** Ticks to run after the event. */
  ticks: number;
};

export type PartitionShape = 'isolate' | 'isolateLeader' | 'split' | 'oneWay' | 'bridge';

export interface World {
  seed: number;
  dropRate: number;
  duplicateRate: number;
  maxDelayRounds: number;
  /** Rounds a synced write takes; the node steps messages meanwhile (4 rounds = 1 tick). */
  diskRounds: number;
  heartbeatTicks: number;
  maxInflightMsgs: number;
  maxSizePerMsgBytes: number;
  snapshotInterval: number;
  keepEntries: number;
  /** Background client load: proposals per tick to whichever nodes believe they lead (stale ones too). */
  writesPerTick: number;
  /** Background linearizable reads per tick, on random nodes. */
  readsPerTick: number;
}

export interface Schedule {
  world: World;
  events: SimEvent[];
}

const rate = (max: number) =>
  fc.oneof(
    fc.constant(0),
    fc.integer({ min: 1, max: Math.round(max * 100) }).map((n) => n / 100),
  );

/** Swarm testing: each run also draws its world (loss, delays, snapshot pressure, pipelining). */
export const worldArbitrary: fc.Arbitrary<World> = fc.record({
  seed: fc.integer({ min: 0, max: 0x7fffffff }),
  dropRate: rate(0.2),
  duplicateRate: rate(0.1),
  // Mostly well under the election timeout (40 rounds), sometimes close to it.
  maxDelayRounds: fc.oneof(fc.integer({ min: 1, max: 12 }), fc.integer({ min: 13, max: 36 })),
  diskRounds: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 8 })),
  heartbeatTicks: fc.integer({ min: 1, max: 3 }),
  maxInflightMsgs: fc.integer({ min: 1, max: 8 }),
  // 1 byte = one entry per append: replication happens entry by entry (Figure 8's setting).
  maxSizePerMsgBytes: fc.constantFrom(1, 1, 1, 200, 4096),
  snapshotInterval: fc.integer({ min: 3, max: 40 }),
  keepEntries: fc.integer({ min: 0, max: 5 }),
  writesPerTick: fc.constantFrom(0, 0.2, 0.2, 0.5, 1, 2),
  readsPerTick: fc.constantFrom(0, 0.2, 0.5, 1),
});

const node = fc.integer({ min: 0, max: 7 });
const ticks = fc.integer({ min: 0, max: 15 });

export const eventArbitrary: fc.Arbitrary<SimEvent> = fc.oneof(
  {
    weight: 8,
    arbitrary: fc.record({
      kind: fc.constant('propose' as const),
      node,
      key: fc.integer({ min: 0, max: 2 }),
      count: fc.integer({ min: 1, max: 4 }),
      ticks,
    }),
  },
  {
    weight: 6,
    arbitrary: fc.record({
      kind: fc.constant('read' as const),
      node,
      key: fc.integer({ min: 0, max: 2 }),
      ticks,
    }),
  },
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant('wait' as const),
      ticks: fc.integer({ min: 1, max: 40 }),
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
      ticks,
    }),
  },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('heal' as const), ticks }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('crash' as const), node, ticks }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('restart' as const), node, ticks }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('crashAll' as const), ticks }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('crashLeader' as const), ticks }) },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant('crashMidWrite' as const),
      node,
      leader: fc.boolean(),
      ticks,
    }),
  },
  // A process that dies and is restarted at once (a supervisor restart): volatile state is gone.
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('bounce' as const), node, ticks }) },
  {
    // Leader churn: isolate whoever leads, again and again, leaving stale uncommitted tails behind.
    weight: 5,
    arbitrary: fc.record({
      kind: fc.constant('flap' as const),
      times: fc.integer({ min: 2, max: 6 }),
      gapTicks: fc.integer({ min: 5, max: 30 }),
      ticks,
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('transfer' as const), node, ticks }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('addLearner' as const), ticks }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('promote' as const), node, ticks }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('remove' as const), node, ticks }) },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('loss' as const),
      dropRate: rate(0.3),
      duplicateRate: rate(0.1),
      ticks,
    }),
  },
);

export const scheduleArbitrary: fc.Arbitrary<Schedule> = fc.record({
  world: worldArbitrary,
  events: fc.array(eventArbitrary, { minLength: 10, maxLength: 120 }),
});
