/**
 * Rough latency of a synced persistReady (one fsync'd LevelDB batch) on this
 * machine. Not a test: run `npx tsx test/storage/persist-timing.ts [dir]`.
 * The data dir defaults to the OS temp dir; pass one on the disk you deploy to.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Entry } from '../../src/raft/index.js';
import { LevelRaftStorage } from '../../src/storage/index.js';

const ROUNDS = 200;
const ENTRY_DATA_BYTES = 128;

const parent = process.argv[2] ?? os.tmpdir();
const dir = await mkdtemp(path.join(parent, 'raftkv-timing-'));
const storage = await LevelRaftStorage.open(dir);
await storage.initialize({ clusterId: 'timing', nodeId: 'n1', nodeName: 'timing' }, ['n1']);

const data = new Uint8Array(ENTRY_DATA_BYTES).fill(120);
let next = 2;
function batch(count: number): Entry[] {
  const out: Entry[] = [];
  for (let i = 0; i < count; i++) out.push({ index: next++, term: 1, type: 'normal', data });
  return out;
}

function percentile(sortedMs: number[], p: number): number {
  return sortedMs[Math.min(sortedMs.length - 1, Math.floor((p / 100) * sortedMs.length))]!;
}

for (const sync of [true, false]) {
  for (const count of [1, 100]) {
    const ms: number[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      const entries = batch(count);
      const hardState = { term: 1, vote: 'n1', commit: 1 };
      const start = process.hrtime.bigint();
      await storage.persistReady({ entries, hardState }, sync);
      ms.push(Number(process.hrtime.bigint() - start) / 1e6);
    }
    ms.sort((a, b) => a - b);
    console.log(
      `${sync ? 'synced  ' : 'unsynced'} ${String(count).padStart(3)} entries x ${ENTRY_DATA_BYTES} B: ` +
        `median ${percentile(ms, 50).toFixed(3)} ms, p99 ${percentile(ms, 99).toFixed(3)} ms`,
    );
  }
}
await storage.close();
await rm(dir, { recursive: true, force: true });
