/**
 * cmd/progress.ts: how bytes, rates and elapsed time are written, and that
 * progress reaches a terminal only (a stream with isTTY true stands for one).
 */

import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import {
  formatBytes,
  formatElapsed,
  formatRate,
  readFileWithProgress,
  stepReporter,
  TransferProgress,
  transferLine,
} from '../../cmd/progress.js';

function stream(isTTY: boolean) {
  const writes: string[] = [];
  return { isTTY, writes, write: (s: string) => writes.push(s) };
}

t.test('bytes in binary units, one decimal above a KiB', async (t) => {
  t.equal(formatBytes(0), '0 B');
  t.equal(formatBytes(1023), '1023 B');
  t.equal(formatBytes(1024), '1.0 KiB');
  t.equal(formatBytes(1536), '1.5 KiB');
  t.equal(formatBytes(10 * 1024 * 1024), '10.0 MiB');
  t.equal(formatBytes(3 * 1024 ** 3), '3.0 GiB');
  t.equal(formatBytes(2 * 1024 ** 5), '2048.0 TiB', 'TiB is the largest unit');
});

t.test('a rate is bytes per second of the elapsed time; none before time passes', async (t) => {
  t.equal(formatRate(2 * 1024 * 1024, 1000), '2.0 MiB/s');
  t.equal(formatRate(1024, 500), '2.0 KiB/s');
  t.equal(formatRate(100, 0), '-');
  t.equal(formatElapsed(250), '0.3 s');
  t.equal(formatElapsed(1500), '1.5 s');
  t.equal(formatElapsed(75_000), '1m15s');
});

t.test('the transfer line, with and without a known total', async (t) => {
  t.equal(
    transferLine('received', 3 * 1024 * 1024, 12 * 1024 * 1024, 2000),
    'received 3.0 MiB of 12.0 MiB (25%), 1.5 MiB/s',
  );
  t.equal(transferLine('received', 512, undefined, 1000), 'received 512 B, 512 B/s');
});

t.test(
  'on a TTY: one line rewritten in place, at most every interval, then a summary',
  async (t) => {
    const s = stream(true);
    let now = 0;
    const p = new TransferProgress(s, 'received', () => now, 100);
    p.update(0, 4096);
    now = 50;
    p.update(1024, 4096);
    t.equal(s.writes.length, 1, 'a second update within the interval is not written');
    now = 1000;
    p.update(4096, 4096);
    t.equal(s.writes.length, 2);
    t.equal(s.writes[1], '\rreceived 4.0 KiB of 4.0 KiB (100%), 4.0 KiB/s\x1b[K');
    now = 2000;
    p.finish();
    t.equal(
      s.writes[2],
      '\rreceived 4.0 KiB in 2.0 s, 2.0 KiB/s\x1b[K\n',
      'the summary ends the line',
    );
    t.notOk(
      s.writes.some((w) => w.includes('\n') && w !== s.writes[2]),
      'one line until the end',
    );
  },
);

t.test('not on a TTY: nothing at all', async (t) => {
  for (const isTTY of [false, undefined]) {
    const s = { writes: [] as string[], write: (x: string) => s.writes.push(x), isTTY };
    const p = new TransferProgress(s, 'received', () => 0);
    p.update(10, 100);
    p.finish();
    p.abandon();
    stepReporter(s, 'raftkv restore')('reading b.snap');
    t.same(s.writes, [], `isTTY ${isTTY}`);
  }
});

t.test('a failed transfer ends its line so the error starts on its own', async (t) => {
  const s = stream(true);
  const p = new TransferProgress(s, 'received', () => 0);
  p.abandon();
  t.same(s.writes, [], 'nothing was written: nothing to end');
  p.update(10);
  p.abandon();
  t.equal(s.writes.at(-1), '\n');
});

t.test('steps on a TTY: one line each, after the prefix', async (t) => {
  const s = stream(true);
  const step = stepReporter(s, 'raftkv restore');
  step('reading b.snap');
  step('done');
  t.same(s.writes, ['raftkv restore: reading b.snap\n', 'raftkv restore: done\n']);
});

t.test('a file read whole, with its progress on a TTY and none elsewhere', async (t) => {
  const dir = t.testdir();
  const file = join(dir, 'backup.snap');
  const content = randomBytes(3 * 1024 * 1024 + 17);
  writeFileSync(file, content);
  const tty = stream(true);
  let now = 0;
  const read = await readFileWithProgress(file, tty, () => (now += 200));
  t.ok(read.equals(content), 'every byte, in order');
  t.match(tty.writes[0], /^\rread 1\.0 MiB of 3\.0 MiB \(33%\), /);
  t.ok(tty.writes.at(-1)?.endsWith('\x1b[K\n'), 'the summary ends the line');
  t.match(tty.writes.at(-1), /^\rread 3\.0 MiB in [\d.]+ s, [\d.]+ MiB\/s/, 'a summary');
  const pipe = stream(false);
  t.ok((await readFileWithProgress(file, pipe)).equals(content));
  t.same(pipe.writes, [], 'nothing when not a terminal');
  await t.rejects(readFileWithProgress(join(dir, 'missing'), tty), { code: 'ENOENT' });
});
