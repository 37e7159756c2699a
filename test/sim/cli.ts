/**
 * npm run sim -- --seed S --runs N --nodes 3|5 [--path P] [--no-shrink]
 *
 * Runs N seeded fault schedules through the simulator. On the first violation
 * it prints the seed, the (shrunk) schedule, the violated property and a replay
 * command, and exits 1. Otherwise its last line is exactly "N runs, 0 violations".
 */
import fc from 'fast-check';
import { Violation } from './invariants.js';
import { runSchedule } from './run.js';
import { scheduleArbitrary } from './schedule.js';

function parseArgs(argv: string[]): {
  seed: number;
  runs: number;
  nodes: number;
  path?: string;
  shrink: boolean;
} {
  const args = new Map<string, string>();
  let shrink = true;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--no-shrink') shrink = false;
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
  const runs = int('runs', 100);
  if (runs < 1) usage('--runs must be positive');
  const path = args.get('path');
  return {
    seed: int('seed', Date.now() & 0x7fffffff),
    runs,
    nodes,
    shrink,
    ...(path ? { path } : {}),
  };
}

function usage(problem: string): never {
  console.error(
    `sim: ${problem}\nusage: npm run sim -- --seed S --runs N --nodes 3|5 [--path P] [--no-shrink]`,
  );
  process.exit(2);
}

const opts = parseArgs(process.argv.slice(2));
console.log(`simulating ${opts.runs} schedules on ${opts.nodes} nodes, seed ${opts.seed}`);
const started = Date.now();
const totals: Record<string, number> = {};
const result = fc.check(
  fc.property(scheduleArbitrary, (schedule) => {
    const { stats } = runSchedule(schedule, { nodes: opts.nodes });
    for (const [k, v] of Object.entries(stats)) totals[k] = (totals[k] ?? 0) + v;
  }),
  {
    seed: opts.seed,
    numRuns: opts.runs,
    ...(opts.path ? { path: opts.path } : {}),
    endOnFailure: !opts.shrink,
  },
);

if (result.failed) {
  const err = result.errorInstance;
  const property = err instanceof Violation ? err.property : 'exception';
  console.log(`VIOLATION of ${property} after ${result.numRuns} run(s)`);
  console.log(`seed: ${result.seed}  path: ${result.counterexamplePath}`);
  console.log(`schedule: ${JSON.stringify(result.counterexample?.[0])}`);
  console.log(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  console.log(
    `replay: npm run sim -- --seed ${result.seed} --path ${result.counterexamplePath} --nodes ${opts.nodes} --runs 1`,
  );
  process.exit(1);
}
console.log(
  `took ${((Date.now() - started) / 1000).toFixed(1)} s; totals: ${JSON.stringify(totals)}`,
);
console.log(`${result.numRuns} runs, 0 violations`);
