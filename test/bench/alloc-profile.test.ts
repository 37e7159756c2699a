/**
 * The bench's allocation profiles (bench/alloc-profile.ts): a profile's
 * summary per operation, and the sampler against a real node process that
 * allocates, reached through its inspector as the bench reaches a member.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, openSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { AllocationSampler, inspectorUrl, summarize } from '../../bench/alloc-profile.js';

const frame = (functionName: string, url: string, lineNumber: number) => ({
  functionName,
  url,
  lineNumber,
  scriptId: '0',
  columnNumber: 0,
});

t.test('a summary gives bytes per operation and the largest allocating functions first', (t) => {
  const profile = {
    head: {
      callFrame: frame('(root)', '', -1),
      selfSize: 0,
      children: [
        {
          callFrame: frame('encode', 'file:///x/dist/src/kv/commands.js', 9),
          selfSize: 3 * 1024 * 1000,
          children: [{ callFrame: frame('', 'node:buffer', 4), selfSize: 1024 * 1000 }],
        },
        // The same function reached by another path counts once, summed.
        {
          callFrame: frame('encode', 'file:///x/dist/src/kv/commands.js', 9),
          selfSize: 1024 * 1000,
        },
      ],
    },
  };
  const s = summarize(profile, 1000, 2);
  t.equal(s.kbPerOp, 5, '5,120,000 bytes over 1,000 operations');
  t.equal(s.mbPerSecond, 2.56, 'over 2 seconds');
  t.same(
    s.top.map((x) => [x.site, x.kbPerOp, Math.round(x.sharePct)]),
    [
      ['encode dist/src/kv/commands.js:10', 4, 80],
      ['(anonymous) node:buffer:5', 1, 20],
    ],
  );
  t.equal(summarize(profile, 0, 0).kbPerOp, 0, 'no operations: 0, not Infinity');
  t.end();
});

t.test(
  'the sampler finds what a running process allocates, collected objects included',
  async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'alloc-prof-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    const log = join(dir, 'child.log');
    const fd = openSync(log, 'w');
    // Short-lived garbage only: what a live-heap profile would not show. Exits by itself after 20 s.
    const script = `
    const end = Date.now() + 20000;
    function allocateGarbage() { let kept = 0; for (let i = 0; i < 2000; i++) kept += new Array(64).fill(i).length; return kept; }
    (function loop() { allocateGarbage(); if (Date.now() < end) setTimeout(loop, 1); })();
  `;
    const child = spawn(process.execPath, ['--inspect=127.0.0.1:0', '-e', script], {
      stdio: ['ignore', fd, fd],
    });
    t.teardown(() => {
      if (child.exitCode === null) child.kill('SIGKILL');
    });
    const sampler = await AllocationSampler.connect([await inspectorUrl(log)]);
    t.teardown(() => sampler.close());
    await sampler.start();
    await new Promise((r) => setTimeout(r, 1000));
    const [summary] = await sampler.stop(join(dir, 'cell'), 100, 1);
    t.ok(summary, 'one summary for the one process');
    t.ok(summary!.mbPerSecond > 1, `it allocated (${summary!.mbPerSecond.toFixed(1)} MB/s)`);
    t.match(summary!.top[0]?.site, /allocateGarbage|fill|Array/, 'the allocating function leads');
    t.match(summary!.file, /cell-n1\.heapprofile$/, 'the profile is written for DevTools');
  },
);
