/**
 * npm run sim:mutants -- [--runs R] [--seed S] [--nodes 3,5] [--timeout-s T] [--only id,id] [--list]
 *
 * The mutation table: plants each bug below, one at a time, in a copy of the
 * project (src/ and test/, package.json, tsconfig.json, node_modules linked),
 * runs the simulator there (`tsx test/sim/cli.ts --nodes N --runs R --seed S
 * --no-shrink`) and records the run of the first violation at each cluster
 * size. Then it runs the unmutated simulator on the same seed for as many runs
 * as the slowest catch took, so a table is only printed if the correct code
 * passes the very schedules that caught the mutants. Prints a markdown table;
 * exits 1 if any mutant survives (or the baseline fails), 2 if a mutant's
 * `find` text does not occur exactly once (a refactor must not silently neuter
 * a mutant).
 */
import { spawn } from 'node:child_process';
import {
  cpSync,
  existsSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface Mutant {
  id: string;
  /** The planted bug, as the table shows it. */
  what: string;
  /** Path from the project root. */
  file: string;
  /** Text that must occur exactly once in `file`. */
  find: string;
  replace: string;
  /**
   * Why this mutant cannot break a checked promise (an equivalent mutant): it
   * is still run and shown, but its surviving does not fail the table.
   */
  equivalent?: string;
}

export const MUTANTS: Mutant[] = [
  {
    id: 'follower-commit-past-new',
    what: "a follower commits up to the leader's commit index, not min(leaderCommit, lastNewIndex)",
    file: 'src/raft/log.ts',
    find: 'this.commitTo(Math.min(committed, lastNewIndex));',
    replace: 'this.commitTo(committed);',
  },
  {
    id: 'leader-self-ack-before-fsync',
    what: 'the leader counts its own copy of an entry towards the quorum when it appends it, before its fsync',
    file: 'src/raft/raft.ts',
    find: "    this.log.append(ents);\n    // The leader's own copy counts towards the quorum only once it is on disk",
    replace:
      "    this.log.append(ents);\n    this.progress.get(this.id)?.maybeUpdate(this.log.lastIndex());\n    // The leader's own copy counts towards the quorum only once it is on disk",
  },
  {
    id: 'two-conf-changes-pending',
    what: 'a second membership change is accepted while one is still pending (the pending-conf-change guard removed)',
    file: 'src/raft/raft.ts',
    find: '    if (this.pendingConfIndex > this.log.applied) {',
    replace: '    if (false) {',
  },
  {
    id: 'vote-without-log-check',
    what: "a vote is granted without the candidate's log being at least as up to date (§5.4.1)",
    file: 'src/raft/raft.ts',
    find: 'if (canVote && this.log.isUpToDate(m.index, m.logTerm)) {',
    replace: 'if (canVote) {',
  },
  {
    id: 'vote-not-persisted',
    what: 'a vote is not part of the persisted hard state, so a member that restarts may vote twice in one term',
    file: 'src/raft/raft.ts',
    find: 'return { term: this.term, vote: this.vote, commit: this.log.committed };',
    replace: 'return { term: this.term, vote: NONE, commit: this.log.committed };',
  },
  {
    id: 'follower-keeps-conflicting',
    what: "a follower keeps its own entries where the leader's conflict, appending only past its last index",
    file: 'src/raft/log.ts',
    find: 'this.append(ents.slice(conflictIndex - (index + 1)));',
    replace:
      'this.append(ents.slice(Math.max(conflictIndex, this.lastIndex() + 1) - (index + 1)));',
  },
  {
    id: 'commit-previous-term-by-count',
    what: "the leader commits a previous term's entry by counting replicas (Figure 8)",
    file: 'src/raft/log.ts',
    find: 'if (maxIndex > this.committed && this.term(maxIndex) === term) {',
    replace: 'if (maxIndex > this.committed) {',
  },
  {
    id: 'read-index-without-quorum',
    what: 'ReadIndex is served at once, without a heartbeat round confirming leadership (stale reads)',
    file: 'src/raft/raft.ts',
    find: 'if (this.voters.length === 1 && this.isVoter(this.id)) {',
    replace: 'if (true) {',
  },
  {
    id: 'core-send-before-persist',
    what: "the node core sends a Ready's messages (votes, append acknowledgements) before its hard state and entries are synced",
    file: 'src/server/node-core.ts',
    find: '    if (written) await written;\n    // 2. Send what promises our write is durable.\n    if (rd.messages.length > 0)\n      this.transport.sendNow(rd.messages.map((m) => this.withSnapshotData(m)));\n',
    replace:
      '    // 2. Send what promises our write is durable.\n    if (rd.messages.length > 0)\n      this.transport.sendNow(rd.messages.map((m) => this.withSnapshotData(m)));\n    if (written) await written;\n',
  },
  {
    id: 'core-read-before-apply',
    what: 'the node core serves a read once its read index is confirmed, without waiting until the state machine applied up to it',
    file: 'src/server/node-core.ts',
    find: '      (index) => this.appliedWaits.waitFor(index),',
    replace: '      () => Promise.resolve(),',
  },
  {
    id: 'core-compact-unapplied',
    what: 'compaction records its snapshot at the commit index, dropping entries the state machine has not applied yet',
    file: 'src/server/node-core.ts',
    find: '    const index = this.kvState.appliedIndex;\n    const term = this.raw.raft.log.term(index);',
    replace:
      '    const index = this.raw.raft.log.committed;\n    const term = this.raw.raft.log.term(index);',
  },
  {
    id: 'lease-revoke-unconditional',
    what: 'the lease keeper revokes an expired lease unconditionally, so a keepalive committed just before the revoke loses',
    file: 'src/server/lease-keeper.ts',
    find: '            ...(renewedAtIndex !== undefined ? { ifRenewedAtIndex: renewedAtIndex } : {}),\n',
    replace: '',
  },
  {
    id: 'lease-renewal-by-time',
    what: 'a lease renewal is named by its time, not its log index: keepalives stamped while the state machine clock stands still look alike, so an expiry decided before one of them still revokes',
    file: 'src/kv/leases.ts',
    find: '      renewedAtIndex: index,\n      remainingMs: null,\n      checkpointedAtMs: null,\n    });',
    replace:
      '      renewedAtIndex: nowMs,\n      remainingMs: null,\n      checkpointedAtMs: null,\n    });',
  },
  {
    id: 'lease-revoke-unconfirmed',
    what: 'the lease keeper revokes without first confirming with a quorum that it still leads',
    file: 'src/server/lease-keeper.ts',
    find: '      await this.deps.confirmLeadership();\n',
    replace: '',
    equivalent:
      "an expiry revoke is conditional on the lease's last renewal (its log index) and Raft commits it only in the term of the leader that proposed it, or in a later term of that same member with its log intact; a deposed leader's revoke therefore either never commits or commits with no keepalive committed since the renewal its deadline came from, and that deadline (TTL × 1.02 on its own clock after it applied the renewal) is one the lease promise allows. The confirmation spares the cluster futile proposals; it is defence in depth, not what keeps the promise",
  },
];

interface Options {
  runs: number;
  seed: number;
  nodes: number[];
  timeoutS: number;
  only?: Set<string>;
  list: boolean;
}

function parseArgs(argv: string[]): Options {
  const opts: Options = { runs: 300, seed: 1, nodes: [3, 5], timeoutS: 600, list: false };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const value = () => {
      const v = argv[++i];
      if (v === undefined) usage(`${arg} needs a value`);
      return v;
    };
    const int = () => {
      const n = Number(value());
      if (!Number.isSafeInteger(n) || n < 1) usage(`${arg} must be a positive integer`);
      return n;
    };
    if (arg === '--runs') opts.runs = int();
    else if (arg === '--seed') opts.seed = int();
    else if (arg === '--timeout-s') opts.timeoutS = int();
    else if (arg === '--nodes') opts.nodes = value().split(',').map(Number);
    else if (arg === '--only') opts.only = new Set(value().split(','));
    else if (arg === '--list') opts.list = true;
    else usage(`unexpected argument ${arg}`);
  }
  if (opts.nodes.some((n) => n !== 3 && n !== 5)) usage('--nodes takes 3, 5 or 3,5');
  return opts;
}

function usage(problem: string): never {
  console.error(
    `sim:mutants: ${problem}\nusage: npm run sim:mutants -- [--runs R] [--seed S] [--nodes 3,5] [--timeout-s T] [--only id,id] [--list]`,
  );
  process.exit(2);
}

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

/** How often `needle` occurs in `haystack` (non-overlapping). */
export function occurrences(haystack: string, needle: string): number {
  if (needle.length === 0) return Number.POSITIVE_INFINITY;
  let count = 0;
  for (
    let at = haystack.indexOf(needle);
    at !== -1;
    at = haystack.indexOf(needle, at + needle.length)
  )
    count++;
  return count;
}

/** Every mutant whose find text does not occur exactly once in its file, with why. */
export function brokenMutants(mutants: readonly Mutant[], projectRoot: string): string[] {
  const problems: string[] = [];
  const ids = new Set<string>();
  for (const m of mutants) {
    if (ids.has(m.id)) problems.push(`${m.id}: duplicate id`);
    ids.add(m.id);
    const path = join(projectRoot, m.file);
    if (!existsSync(path)) {
      problems.push(`${m.id}: ${m.file} does not exist`);
      continue;
    }
    const n = occurrences(readFileSync(path, 'utf8'), m.find);
    if (n !== 1)
      problems.push(`${m.id}: find text occurs ${n} times in ${m.file} (must be exactly once)`);
    if (m.find === m.replace) problems.push(`${m.id}: replace equals find`);
  }
  return problems;
}

/** A copy of what the simulator needs, with `mutant` applied (none: the baseline). */
function makeCopy(mutant: Mutant | undefined): string {
  const dir = mkdtempSync(join(tmpdir(), `raftkv-mutant-${mutant?.id ?? 'baseline'}-`));
  for (const entry of ['src', 'test'])
    cpSync(join(root, entry), join(dir, entry), { recursive: true });
  for (const file of ['package.json', 'tsconfig.json']) cpSync(join(root, file), join(dir, file));
  symlinkSync(join(root, 'node_modules'), join(dir, 'node_modules'), 'dir');
  if (mutant) {
    const path = join(dir, mutant.file);
    const text = readFileSync(path, 'utf8');
    writeFileSync(
      path,
      text.replace(mutant.find, () => mutant.replace),
    );
  }
  return dir;
}

export interface SimResult {
  kind: 'caught' | 'survived' | 'timeout' | 'error';
  /** Run number of the first violation. */
  runs?: number;
  property?: string;
  seconds: number;
  /** Last lines of output, for errors. */
  tail: string;
  /** The violation's message (first line), when there is one. */
  detail?: string;
}

/** Reads the cli's verdict from its output and exit code. */
export function parseSimOutput(
  output: string,
  code: number | null,
  runs: number,
): Omit<SimResult, 'seconds'> {
  const lines = output.trim().split('\n');
  const tail = lines.slice(-12).join('\n');
  // The cli prints the schedule, then the error's message.
  const at = lines.findIndex((line) => line.startsWith('schedule:'));
  const detail = at >= 0 ? lines[at + 1]?.slice(0, 400) : undefined;
  const violation = /VIOLATION of (\S+) after (\d+) run/.exec(output);
  if (code === 1 && violation) {
    return {
      kind: 'caught',
      property: violation[1]!,
      runs: Number(violation[2]),
      tail,
      ...(detail ? { detail } : {}),
    };
  }
  if (code === 0 && new RegExp(`^${runs} runs, 0 violations`, 'm').test(output)) {
    return { kind: 'survived', runs, tail };
  }
  return { kind: 'error', tail };
}

function runSim(
  dir: string,
  nodes: number,
  runs: number,
  seed: number,
  timeoutS: number,
): Promise<SimResult> {
  const started = Date.now();
  const args = [
    'test/sim/cli.ts',
    '--nodes',
    String(nodes),
    '--runs',
    String(runs),
    '--seed',
    String(seed),
    '--no-shrink',
  ];
  return new Promise((resolvePromise) => {
    // Its own process group, so a timeout stops tsx and the node process it runs.
    const child = spawn(join(dir, 'node_modules/.bin/tsx'), args, {
      cwd: dir,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString();
    });
    child.stderr.on('data', (chunk: Buffer) => {
      output += chunk.toString();
    });
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
    }, timeoutS * 1000);
    child.on('close', (code) => {
      clearTimeout(timer);
      const seconds = (Date.now() - started) / 1000;
      if (timedOut) {
        resolvePromise({
          kind: 'timeout',
          seconds,
          tail: output.trim().split('\n').slice(-5).join('\n'),
        });
        return;
      }
      resolvePromise({ ...parseSimOutput(output, code, runs), seconds });
    });
  });
}

function cell(result: SimResult | undefined, equivalent = false): string {
  if (!result) return '—';
  if (equivalent && result.kind === 'survived') return `not caught in ${result.runs} (equivalent)`;
  switch (result.kind) {
    case 'caught':
      return `${result.runs} (${result.property})`;
    case 'survived':
      return `**not caught** in ${result.runs}`;
    case 'timeout':
      return `**not caught** (timeout ${result.seconds.toFixed(0)} s)`;
    case 'error':
      return '**error**';
  }
}

async function main(): Promise<void> {
  const opts = parseArgs(process.argv.slice(2));
  const mutants = opts.only ? MUTANTS.filter((m) => opts.only!.has(m.id)) : MUTANTS;
  if (opts.only) {
    for (const id of opts.only) if (!MUTANTS.some((m) => m.id === id)) usage(`no mutant ${id}`);
  }
  const problems = brokenMutants(MUTANTS, root);
  if (problems.length > 0) {
    console.error(
      `sim:mutants: ${problems.length} mutant(s) no longer apply:\n  ${problems.join('\n  ')}`,
    );
    process.exit(2);
  }
  if (opts.list) {
    for (const m of MUTANTS) console.log(`${m.id}\t${m.file}\t${m.what}`);
    return;
  }
  console.log(
    `sim:mutants: ${mutants.length} mutants × ${opts.nodes.join(',')} nodes, up to ${opts.runs} runs each, seed ${opts.seed}`,
  );
  // First the unmutated code: a catch only counts on a schedule the correct code passes.
  // Schedules are generated from the seed alone, so run k is the same schedule for every copy.
  const started = Date.now();
  const limit = new Map<number, number>();
  const baseDir = makeCopy(undefined);
  try {
    for (const nodes of opts.nodes) {
      const r = await runSim(baseDir, nodes, opts.runs, opts.seed, opts.timeoutS);
      if (r.kind === 'survived') {
        limit.set(nodes, opts.runs);
        console.log(
          `  baseline (no mutant) @${nodes}: passes ${opts.runs} runs in ${r.seconds.toFixed(1)} s`,
        );
      } else if (r.kind === 'caught' && r.runs! > 1) {
        limit.set(nodes, r.runs! - 1);
        console.log(
          `  WARNING baseline (no mutant) @${nodes}: the correct code fails at run ${r.runs} (${r.property}); ` +
            `mutants run on the ${r.runs! - 1} schedules before it\n    ${r.detail ?? ''}`,
        );
      } else {
        console.log(
          `sim:mutants: the unmutated simulator cannot be measured at ${nodes} nodes: ${cell(r)}\n${r.detail ?? r.tail}`,
        );
        process.exit(1);
      }
    }
  } finally {
    rmSync(baseDir, { recursive: true, force: true });
  }

  const results = new Map<string, Map<number, SimResult>>();
  for (const m of mutants) {
    const dir = makeCopy(m);
    const byNodes = new Map<number, SimResult>();
    results.set(m.id, byNodes);
    try {
      for (const nodes of opts.nodes) {
        const r = await runSim(dir, nodes, limit.get(nodes)!, opts.seed, opts.timeoutS);
        byNodes.set(nodes, r);
        console.log(
          `  ${m.id} @${nodes}: ${cell(r, m.equivalent !== undefined)} in ${r.seconds.toFixed(1)} s`,
        );
        if (r.detail) console.log(`    ${r.detail}`);
        if (r.kind === 'error') console.log(`    ${r.tail.replaceAll('\n', '\n    ')}`);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }

  const date = new Date().toISOString().slice(0, 10);
  const lines = [
    '',
    `Mutation table (${date}, seed ${opts.seed}; runs to catch, then the property that caught it; ` +
      `schedules the unmutated code passes: ${opts.nodes.map((n) => `${limit.get(n)} at ${n} nodes`).join(', ')}):`,
    '',
    `| mutant | planted bug | file | ${opts.nodes.map((n) => `${n} nodes`).join(' | ')} | time |`,
    `|---|---|---|${opts.nodes.map(() => '---|').join('')}---|`,
  ];
  for (const m of mutants) {
    const byNodes = results.get(m.id)!;
    const seconds = [...byNodes.values()].reduce((s, r) => s + r.seconds, 0);
    lines.push(
      `| ${m.id} | ${m.what} | \`${m.file}\` | ${opts.nodes.map((n) => cell(byNodes.get(n), m.equivalent !== undefined)).join(' | ')} | ${seconds.toFixed(0)} s |`,
    );
  }
  for (const m of mutants)
    if (m.equivalent !== undefined) lines.push('', `Equivalent: ${m.id}: ${m.equivalent}.`);
  console.log(lines.join('\n'));
  console.log(`\ntook ${((Date.now() - started) / 1000).toFixed(0)} s`);

  const survivors = mutants.filter((m) =>
    [...results.get(m.id)!.values()].some(
      (r) => r.kind !== 'caught' && !(r.kind === 'survived' && m.equivalent !== undefined),
    ),
  );
  if (survivors.length > 0)
    console.log(
      `FAIL: ${survivors.length} mutant(s) not caught: ${survivors.map((m) => m.id).join(', ')}`,
    );
  if (survivors.length > 0) process.exit(1);
  const equivalents = mutants.filter((m) => m.equivalent !== undefined).length;
  console.log(
    `all ${mutants.length - equivalents} mutants caught at ${opts.nodes.join(' and ')} nodes` +
      (equivalents > 0 ? ` (${equivalents} equivalent, not counted)` : ''),
  );
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) await main();
