/**
 * The node's heap plan (heap-tuning.ts): size flags with units, and when
 * raftkv re-executes itself with --max-old-space-size — with --memory-limit
 * to 75 % of it either way, without it only to lower V8's default to what the
 * cgroup or machine allows, never when node was given the flag itself.
 */
import t from 'tap';
import { cgroupMemoryLimit, parseByteSize, planHeap } from '../../src/server/heap-tuning.js';
import { DEFAULT_QUOTA_HEAP_FRACTION, defaultQuotaBytes } from '../../src/server/quota-keeper.js';

const MiB = 2 ** 20;
const GiB = 2 ** 30;

t.test('sizes: bytes or a unit, powers of 1024', async (t) => {
  t.equal(parseByteSize('1000', '--x'), 1000);
  t.equal(parseByteSize('512MiB', '--x'), 512 * MiB);
  t.equal(parseByteSize('512M', '--x'), 512 * MiB);
  t.equal(parseByteSize('512mi', '--x'), 512 * MiB);
  t.equal(parseByteSize('1.5GiB', '--x'), 1.5 * GiB);
  t.equal(parseByteSize('64k', '--x'), 64 * 1024);
  for (const bad of ['', '-1', '12 parsecs', 'MiB', '1e3', '0x10'])
    t.throws(() => parseByteSize(bad, '--memory-limit'), /--memory-limit must be/, bad);
});

const base = {
  memoryLimitBytes: undefined,
  cgroupLimitBytes: undefined,
  totalMemoryBytes: 24 * GiB,
  heapSizeLimitBytes: 4144 * MiB,
  execArgv: [],
  nodeOptions: undefined,
};

t.test('with --memory-limit: a heap of 75 % of it, re-executing when 10 % off', async (t) => {
  const plan = planHeap({ ...base, memoryLimitBytes: 160 * MiB });
  t.match(plan, { source: '--memory-limit', oldSpaceMiB: 72, reexec: true });
  const bigger = planHeap({ ...base, memoryLimitBytes: 16 * GiB });
  t.match(bigger, { reexec: true, oldSpaceMiB: 12 * 1024 - 48 }, 'raises it when asked');
  const close = planHeap({ ...base, memoryLimitBytes: Math.round((4144 * MiB) / 0.75) });
  t.equal(close.reexec, false, 'already within 10 %: no re-exec');
  const given = planHeap({
    ...base,
    memoryLimitBytes: 160 * MiB,
    nodeOptions: '--max-old-space-size=300',
  });
  t.match(given, { reexec: false, reason: /wins/ }, 'NODE_OPTIONS wins');
  t.equal(
    planHeap({ ...base, memoryLimitBytes: 160 * MiB, execArgv: ['--max_old_space_size=300'] })
      .reexec,
    false,
    'so does the command line',
  );
});

t.test('without it: the cgroup or machine only lowers the heap', async (t) => {
  t.match(planHeap(base), { source: 'machine', reexec: false }, "a 24 GB machine keeps V8's 4 GB");
  t.match(
    planHeap({ ...base, cgroupLimitBytes: 1 * GiB }),
    { source: 'cgroup', reexec: true, oldSpaceMiB: 768 - 48 },
    'a 1 GiB container lowers it',
  );
  t.match(
    planHeap({ ...base, totalMemoryBytes: 2 * GiB, heapSizeLimitBytes: 1 * GiB }),
    { source: 'machine', reexec: false },
    'a small default is never raised unasked',
  );
  t.equal(
    cgroupMemoryLimit(() => 'max\n'),
    undefined,
  );
  t.equal(
    cgroupMemoryLimit(() => '536870912\n'),
    512 * MiB,
  );
  t.equal(
    cgroupMemoryLimit(() => undefined),
    undefined,
  );
});

t.test('the default quota is a share of the heap limit', async (t) => {
  t.equal(DEFAULT_QUOTA_HEAP_FRACTION, 0.3);
  t.equal(defaultQuotaBytes(120 * MiB), Math.floor(120 * MiB * 0.3));
  t.ok(defaultQuotaBytes() > 0, 'from this process heap');
});
