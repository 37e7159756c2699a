/**
 * npm run sim -- [--seed S] [--runs N] [--nodes 3|5] [--events MIN-MAX] [--path P] [--no-shrink]
 * npm run sim -- --long [--minutes M] [--every N] [--nodes 3|5] [--seed S]
 * --lease-from-ack: check the lease promise from the keepalive's answer, not its sending
 * --trace: print the run's trace to stderr as it happens, with role changes and
 *   membership applies (for a replay: what led to a violation, not only its last events)
 *
 * Quick mode runs N seeded fault schedules and prints the stats. Long mode
 * (a soak) runs batches of N schedules with fresh seeds until stopped (Ctrl-C)
 * or M minutes passed, printing the stats after every batch. Both stop at the
 * first violation, print the seed, the schedule, the violated property and a
 * replay command, and exit 1. Otherwise the last line is "N runs, 0 violations".
 */
import fc from 'fast-check';
import { Violation } from './invariants.js';
import { addStats, formatStats, runSchedule } from './run.js';
import { SCHEDULE_MAX_EVENTS, SCHEDULE_MIN_EVENTS, scheduleArbitrary } from './schedule.js';
import { emptyStats, type SimStats } from './world.js';

interface Options {
  seed: number;
  runs: number;
  nodes: number;
  minEvents: number;
  maxEvents: number;
  path?: string;
  shrink: boolean;
  long: boolean;
  leaseFromAck: boolean;
  trace: boolean;
  minutes: number;
  every: number;
}

function parseArgs(argv: string[]): Options {
  const args = new Map<string, string>();
  const flags = new Set<string>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (['--no-shrink', '--long', '--lease-from-ack', '--trace'].includes(a)) flags.add(a);
    else if (a.startsWith('--') && i + 1 < argv.length) args.set(a.slice(2), argv[++i]!);
    else usage(`unexpected argument ${a}`);
  }
  const int = (name: string, fallback: number) => {
    const raw = args.get(name);
    if (raw === undefined) return fallback;
    const n = Number(raw);
    if (!Number.isSafeInteger(n)) usage(`--${name} must be an integer`);
    return n;
  };
  const nodes = int('nodes', 3);
  if (nodes !== 3 && nodes !== 5) usage('--nodes must be 3 or 5');
  const long = flags.has('--long');
  const runs = int('runs', 10);
  if (runs < 1) usage('--runs must be positive');
  const [minEvents, maxEvents] = (
    args.get('events') ?? `${SCHEDULE_MIN_EVENTS}-${SCHEDULE_MAX_EVENTS}`
  )
    .split('-')
    .map(Number);
  if (
    !Number.isSafeInteger(minEvents) ||
    !Number.isSafeInteger(maxEvents) ||
    minEvents! > maxEvents!
  )
    usage('--events must be MIN-MAX');
  const path = args.get('path');
  return {
    seed: int('seed', Date.now() & 0x7fffffff),
    runs,
    nodes,
    minEvents: minEvents!,
    maxEvents: maxEvents!,
    shrink: !flags.has('--no-shrink') && !long,
    long,
    leaseFromAck: flags.has('--lease-from-ack'),
    trace: flags.has('--trace'),
    minutes: int('minutes', 0),
    every: int('every', 20),
    ...(path ? { path } : {}),
  };
}

function usage(problem: string): never {
  console.error(
    `sim: ${problem}\nusage: npm run sim -- [--seed S] [--runs N] [--nodes 3|5] [--events MIN-MAX] [--path P] [--no-shrink]\n` +
      '       npm run sim -- --long [--minutes M] [--every N] [--nodes 3|5] [--seed S]',
  );
  process.exit(2);
}

const opts = parseArgs(process.argv.slice(2));
const started = Date.now();
const totals = emptyStats();
let runsDone = 0;

/** Runs one batch; returns false after printing a violation. */
async function batch(seed: number, runs: number, path?: string): Promise<boolean> {
  const batchTotals: SimStats = emptyStats();
  const result = await fc.check(
    fc.asyncProperty(scheduleArbitrary(opts.minEvents, opts.maxEvents), async (schedule) => {
      const { stats } = await runSchedule(schedule, {
        nodes: opts.nodes,
        leaseFromAck: opts.leaseFromAck,
        ...(opts.trace ? { traceTo: (line: string) => console.error(line) } : {}),
      });
      addStats(batchTotals, stats);
    }),
    { seed, numRuns: runs, ...(path ? { path } : {}), endOnFailure: !opts.shrink },
  );
  // Shrinking reruns schedules: count only the batch's own runs.
  addStats(totals, batchTotals);
  runsDone += result.failed ? result.numRuns - 1 : result.numRuns;
  if (!result.failed) return true;
  const err = result.errorInstance;
  const property = err instanceof Violation ? err.property : 'exception';
  console.log(
    `VIOLATION of ${property} after ${runsDone + 1} run(s) (run ${result.numRuns} of seed ${result.seed})`,
  );
  console.log(`seed: ${result.seed}  path: ${result.counterexamplePath}`);
  console.log(`schedule: ${JSON.stringify(result.counterexample?.[0])}`);
  console.log(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  const events =
    opts.minEvents !== SCHEDULE_MIN_EVENTS || opts.maxEvents !== SCHEDULE_MAX_EVENTS
      ? ` --events ${opts.minEvents}-${opts.maxEvents}`
      : '';
  console.log(
    `replay: npm run sim -- --seed ${result.seed} --path ${result.counterexamplePath} --nodes ${opts.nodes}${events} --runs 1 --no-shrink${opts.leaseFromAck ? ' --lease-from-ack' : ''}`,
  );
  return false;
}

const seconds = () => (Date.now() - started) / 1000;
if (opts.long) {
  const stopAt = opts.minutes > 0 ? started + opts.minutes * 60_000 : Number.POSITIVE_INFINITY;
  console.log(
    `soaking on ${opts.nodes} nodes from seed ${opts.seed}, ${opts.every} runs per batch, ` +
      (opts.minutes > 0 ? `for ${opts.minutes} min` : 'until stopped'),
  );
  let stop = false;
  process.on('SIGINT', () => {
    stop = true;
  });
  for (let b = 0; !stop && Date.now() < stopAt; b++) {
    const ok = await batch((opts.seed + b) & 0x7fffffff, opts.every);
    console.log(
      `--- after ${runsDone} runs (batch seed ${(opts.seed + b) & 0x7fffffff})\n${formatStats(totals, seconds())}`,
    );
    if (!ok) process.exit(1);
  }
} else {
  console.log(`simulating ${opts.runs} schedules on ${opts.nodes} nodes, seed ${opts.seed}`);
  const ok = await batch(opts.seed, opts.runs, opts.path);
  console.log(formatStats(totals, seconds()));
  if (!ok) process.exit(1);
}
console.log(`${runsDone} runs, 0 violations`);
