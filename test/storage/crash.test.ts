/**
 * SIGKILL in the middle of a write stream: a child process performs a seeded
 * workload (synced Readys, unsynced applied batches, compactions) and reports
 * each write once it resolved; the test kills it at a random point, reopens,
 * and requires the dir to hold exactly the state after some op n ≥ the last
 * reported one — every resolved write is there and no batch is half applied.
 * Three rounds, each continuing from what the previous one left on disk.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { SeededRandom } from '../../src/raft/index.js';
import { LevelRaftStorage } from '../../src/storage/index.js';
import { IDENTITY, tempDir, within } from './helpers.js';
import { levelFingerprint, modelFingerprint, WORKLOAD_VOTERS, Workload } from './workload.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const WRITER = path.join(here, 'crash-writer.ts');
const REPO_ROOT = path.resolve(here, '..', '..');
const SEED = 20240611;
const ROUNDS = 3;
const MAX_OPS = 100_000;

interface Round {
  child: ChildProcess;
  /** Resolves with the last op number the child reported when it is killed. */
  lastReported: Promise<number>;
  exited: Promise<void>;
  /** Allows the kill; until then the writer keeps going whatever it reported. */
  arm(): void;
}

/** Starts the writer and SIGKILLs it once it has reported `killAfterOps` more writes. */
function runWriter(
  t: import('tap').Test,
  dir: string,
  onDisk: number,
  killAfterOps: number,
): Round {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', WRITER, dir, String(SEED), String(onDisk), String(MAX_OPS)],
    { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  // Never leave our own child behind, whatever happens to the test.
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let armed = false;
  let last = onDisk;
  let maybeKill = () => {};
  const lastReported = new Promise<number>((resolve, reject) => {
    maybeKill = () => {
      if (!armed || last < onDisk + killAfterOps || child.killed) return;
      child.kill('SIGKILL');
      resolve(last);
    };
    let buffered = '';
    child.stdout?.on('data', (d: Buffer) => {
      buffered += d.toString();
      const lines = buffered.split('\n');
      buffered = lines.pop()!;
      for (const line of lines) {
        if (/^\d+$/.test(line) && !child.killed) last = Number(line);
      }
      maybeKill();
    });
    child.once('exit', (code, signal) => {
      if (signal !== 'SIGKILL') reject(new Error(`writer exited early (${code}): ${stderr}`));
    });
  });
  const arm = () => {
    armed = true;
    maybeKill();
  };
  return { child, lastReported, exited, arm };
}

t.test('every write that resolved survives SIGKILL, and none is torn', async (t) => {
  const dir = await tempDir(t);
  const init = await LevelRaftStorage.open(dir);
  await init.initialize(IDENTITY, WORKLOAD_VOTERS);
  await init.close();

  const rng = new SeededRandom(SEED);
  let onDisk = 0;
  for (let round = 1; round <= ROUNDS; round++) {
    const killAfterOps = 30 + rng.nextInt(120);
    const r = runWriter(t, dir, onDisk, killAfterOps);

    if (round === 1) {
      // While the writer holds the database, nobody else may open it.
      await within(20_000, 'writer reports a write', waitForFirstWrite(r.child));
      await t.rejects(LevelRaftStorage.open(dir), { code: 'locked' }, 'locked by the writer');
    }
    r.arm();
    const lastReported = await within(20_000, `writer reaches ${killAfterOps} ops`, r.lastReported);
    await within(5_000, 'killed writer exits', r.exited);

    const storage = await LevelRaftStorage.open(dir);
    const onDiskState = await levelFingerprint(storage);
    await storage.close();

    // Find the op count whose model state equals what is on disk.
    const w = new Workload(SEED);
    while (w.opsDone < lastReported) w.next();
    let match: number | undefined;
    for (let extra = 0; extra <= 1000; extra++) {
      if (modelFingerprint(w) === onDiskState) {
        match = w.opsDone;
        break;
      }
      w.next();
    }
    t.ok(
      match !== undefined,
      `round ${round}: the dir holds the state after op ≥ ${lastReported} (found op ${match})`,
    );
    if (match === undefined) return;
    onDisk = match;
  }
  t.ok(onDisk > ROUNDS * 30, `${onDisk} ops survived ${ROUNDS} kills`);
});

function waitForFirstWrite(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    const onData = (d: Buffer) => {
      if (/^\d+$/m.test(d.toString())) {
        child.stdout?.off('data', onData);
        resolve();
      }
    };
    child.stdout?.on('data', onData);
  });
}
