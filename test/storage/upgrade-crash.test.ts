/**
 * SIGKILL in the middle of the format 2 → 3 upgrade: a child process opens a
 * format 2 dir with 6,000 bare kv records and reports each synced batch of
 * the re-sealing; the test kills it after a seeded number of batches. After
 * each kill the dir must be format 3 with its marker naming the last sealed
 * key, the records up to it sealed and the rest bare (batches are atomic);
 * the next round resumes from there, and a last open finishes with every
 * record as it was.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Level } from 'level';
import t from 'tap';
import { SeededRandom } from '../../src/raft/index.js';
import { decodeKvResealedThrough } from '../../src/storage/codec.js';
import { LevelRaftStorage } from '../../src/storage/index.js';
import { META_KEY, SUBLEVEL } from '../../src/storage/keys.js';
import { format2DirWith, within } from './helpers.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const WRITER = path.join(here, 'upgrade-writer.ts');
const REPO_ROOT = path.resolve(here, '..', '..');
const SEED = 20261202;
const ROUNDS = 2;
const RECORDS = 6_000;
const BATCH_MAX_BYTES = 8 * 1024;

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const keyOf = (i: number) => `k/${i.toString(16).padStart(16, '0')}/00000000`;
const recordValue = (i: number) =>
  encoder.encode(`{"key":"app/${i}","value":"${'v'.repeat(i % 90)}"}`);

/** Runs the writer until it has reported `killAfter` batches, then SIGKILLs it; the last count. */
async function upgradeUntilKilled(t: import('tap').Test, dir: string, killAfter: number) {
  const child = spawn(process.execPath, ['--import', 'tsx', WRITER, dir, String(BATCH_MAX_BYTES)], {
    cwd: REPO_ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const reported = new Promise<{ batches: number; resealed: number }>((resolve, reject) => {
    let batches = 0;
    let resealed = 0;
    let buffered = '';
    child.stdout.on('data', (d: Buffer) => {
      buffered += d.toString();
      const lines = buffered.split('\n');
      buffered = lines.pop()!;
      for (const line of lines) {
        if (!/^\d+$/.test(line) || child.killed) continue;
        batches++;
        resealed = Number(line);
        if (batches >= killAfter) {
          child.kill('SIGKILL');
          resolve({ batches, resealed });
        }
      }
    });
    child.once('exit', (code, signal) => {
      if (signal !== 'SIGKILL')
        reject(new Error(`writer exited before the kill (${code}): ${stderr}`));
    });
  });
  const last = await within(60_000, `${killAfter} batches re-sealed`, reported);
  await within(5_000, 'the killed writer exits', exited);
  return last;
}

/** The dir as stored: format, marker, and which kv records are sealed (version byte 2). */
async function inspect(dir: string) {
  const db = new Level<Uint8Array, Uint8Array>(dir, { keyEncoding: 'view', valueEncoding: 'view' });
  await db.open();
  try {
    const text = { keyEncoding: 'utf8', valueEncoding: 'view' } as const;
    const meta = db.sublevel<string, Uint8Array>(SUBLEVEL.meta, text);
    const marker = await meta.get(META_KEY.kvResealedThrough);
    const sealed: boolean[] = [];
    const kv = db.sublevel<string, Uint8Array>(SUBLEVEL.kv, text);
    for await (const v of kv.values()) sealed.push(v[0] === 2);
    return {
      format: decoder.decode(await meta.get(META_KEY.formatVersion)),
      through: marker && decodeKvResealedThrough(marker),
      sealed,
    };
  } finally {
    await db.close();
  }
}

t.test('an upgrade killed half way resumes, and no record is lost or sealed twice', async (t) => {
  const dir = await format2DirWith(
    t,
    Array.from({ length: RECORDS }, (_, i) => [keyOf(i), recordValue(i)] as const),
  );
  const rng = new SeededRandom(SEED);
  let sealedBefore = 0;
  for (let round = 1; round <= ROUNDS; round++) {
    const killAfter = 3 + rng.nextInt(12);
    const { resealed } = await upgradeUntilKilled(t, dir, killAfter);
    const d = await inspect(dir);
    const sealedCount = d.sealed.indexOf(false) === -1 ? RECORDS : d.sealed.indexOf(false);
    t.equal(d.format, '3', `round ${round}: format 3 from the first batch`);
    t.ok(
      d.sealed.slice(sealedCount).every((s) => !s),
      `round ${round}: the sealed records are a prefix (${sealedCount} of ${RECORDS})`,
    );
    t.equal(d.through, keyOf(sealedCount - 1), `round ${round}: the marker names the last sealed`);
    t.ok(
      sealedCount >= sealedBefore + resealed && sealedCount < RECORDS,
      `round ${round}: killed after ${resealed} more reported, ${sealedCount} sealed in all`,
    );
    sealedBefore = sealedCount;
  }
  t.ok(sealedBefore >= ROUNDS * 3, `${sealedBefore} records sealed across ${ROUNDS} kills`);

  const s = await LevelRaftStorage.open(dir);
  t.teardown(() => s.close());
  t.same(await inspect(dir).catch(() => 'locked'), 'locked', 'held by the storage');
  let same = 0;
  let count = 0;
  for await (const [k, v] of s.kvRecords()) {
    const i = count++;
    if (k === keyOf(i) && decoder.decode(v) === decoder.decode(recordValue(i))) same++;
  }
  t.equal(count, RECORDS, 'every record is there');
  t.equal(same, RECORDS, 'each as it was: none sealed twice, none lost');
  await s.close();
  const done = await inspect(dir);
  t.same(
    { format: done.format, through: done.through, allSealed: done.sealed.every(Boolean) },
    { format: '3', through: undefined, allSealed: true },
    'finished: all sealed, marker removed',
  );
});
