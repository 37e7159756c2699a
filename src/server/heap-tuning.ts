import { setFlagsFromString } from 'node:v8';

/**
 * The default of `raftkv --heap-growing-percent`. Measured with
 * `npm run bench:memory` (one node, 100k keys of 256 B, live heap 70–100 MB),
 * RSS after the load / node CPU per write:
 *   V8's own factor   355–420 MB   ~140 µs
 *   100 %             290–300 MB   ~145 µs
 *    75 %             270–275 MB   ~146 µs
 *    50 %             205–270 MB   ~160 µs (more frequent major GCs)
 * Later, with a cheaper write path (~100 µs per write, 10k writes/s), 100 %
 * peaked at 284–306 MB over 60 s of overwrites and 75 % at 271 MB for the same
 * CPU per write; on a 3-node cluster at 256 puts in flight 75 % and 100 % did
 * the same within noise (5,950–6,190 vs 5,700–6,080 puts/s), while 50 % cost
 * 8 %. So 75 %. Raise it when CPU matters more than memory.
 */
export const DEFAULT_HEAP_GROWING_PERCENT = 75;

const V8_FLAG = /--heap[-_]growing[-_]percent/;

/**
 * Sets how far V8 lets the old generation grow past the live heap before the
 * next major GC: limit = live × (1 + percent / 100). V8 picks a factor of up
 * to 4 when the program allocates fast, which for a server whose live heap is
 * its data set makes the garbage headroom most of its RSS. Process-wide, so
 * only the raftkv command calls it, not startNode() (an embedding service
 * owns its own heap). Does nothing for 0, or when node was started with its
 * own --heap-growing-percent (command line or NODE_OPTIONS), which wins.
 * Returns whether it set the flag.
 */
export function setHeapGrowingPercent(percent: number): boolean {
  if (!Number.isSafeInteger(percent) || percent < 0) {
    throw new Error(`heap growing percent must be a non-negative integer, got ${percent}`);
  }
  if (percent === 0) return false;
  const given = [...process.execArgv, process.env.NODE_OPTIONS ?? ''];
  if (given.some((arg) => V8_FLAG.test(arg))) return false;
  setFlagsFromString(`--heap-growing-percent=${percent}`);
  return true;
}

const UNITS: Readonly<Record<string, number>> = {
  '': 1,
  b: 1,
  k: 2 ** 10,
  kb: 2 ** 10,
  kib: 2 ** 10,
  ki: 2 ** 10,
  m: 2 ** 20,
  mb: 2 ** 20,
  mib: 2 ** 20,
  mi: 2 ** 20,
  g: 2 ** 30,
  gb: 2 ** 30,
  gib: 2 ** 30,
  gi: 2 ** 30,
  t: 2 ** 40,
  tb: 2 ** 40,
  tib: 2 ** 40,
  ti: 2 ** 40,
};

/**
 * A size flag's value: bytes, or a number with a unit suffix, all powers of
 * 1024 (`512MiB`, `512M`, `512Mi`, `2G`, `1.5GiB`); case does not matter.
 * Throws with a message naming the flag.
 */
export function parseByteSize(value: string, flag: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(value);
  const unit = m ? UNITS[m[2]!.toLowerCase()] : undefined;
  const bytes = m && unit !== undefined ? Math.floor(Number(m[1]) * unit) : Number.NaN;
  if (!Number.isSafeInteger(bytes) || bytes < 0)
    throw new Error(
      `${flag} must be a number of bytes, optionally with a unit (KiB, MiB, GiB; K, M, G are the same), got "${value}"`,
    );
  return bytes;
}

/** V8's young generation on top of --max-old-space-size (heap_size_limit = old + this on 64-bit Node 20). */
const YOUNG_GENERATION_BYTES = 48 * 2 ** 20;
/** The heap's share of the memory limit; the rest is off-heap: buffers (a snapshot's bytes), LevelDB, code. */
export const HEAP_MEMORY_FRACTION = 0.75;
/** Re-executing is worth it only when V8's limit is off by more than this share. */
const HEAP_MARGIN = 0.1;
/** The smallest old space raftkv asks for. */
const MIN_OLD_SPACE_MIB = 64;

const OLD_SPACE_FLAG = /--max[-_]old[-_]space[-_]size/;

export interface HeapPlan {
  /** The memory the heap is sized from, and where that figure came from. */
  readonly memoryBytes: number;
  readonly source: '--memory-limit' | 'cgroup' | 'machine';
  /** The old-space limit to run with (--max-old-space-size, MiB). */
  readonly oldSpaceMiB: number;
  /** Whether the process must re-execute itself with it (V8's limit is fixed at startup). */
  readonly reexec: boolean;
  /** Why not, when it will not. */
  readonly reason: string;
}

/** The cgroup v2 memory limit of this process, or undefined (no cgroup, or "max"). */
export function cgroupMemoryLimit(read: (path: string) => string | undefined): number | undefined {
  const text = read('/sys/fs/cgroup/memory.max')?.trim();
  if (text === undefined || text === 'max') return undefined;
  const n = Number(text);
  return Number.isSafeInteger(n) && n > 0 ? n : undefined;
}

/**
 * The old-space limit raftkv runs with (README "Space quota"): 75 % of the
 * memory limit as heap (old space + V8's 48 MiB young generation). The memory
 * limit is --memory-limit; without it, the cgroup's memory.max or else the
 * machine's memory — and then only a LOWER limit is applied (V8 sizes its
 * default heap from the machine already, so raftkv never grows it unasked: it
 * shrinks it when a container's limit is smaller than the heap V8 picked).
 * Nothing is done when node was given --max-old-space-size (command line or
 * NODE_OPTIONS), which wins, or when V8's limit is within 10 % of the wanted one.
 */
export function planHeap(input: {
  memoryLimitBytes: number | undefined;
  cgroupLimitBytes: number | undefined;
  totalMemoryBytes: number;
  heapSizeLimitBytes: number;
  execArgv: readonly string[];
  nodeOptions: string | undefined;
}): HeapPlan {
  const source =
    input.memoryLimitBytes !== undefined
      ? '--memory-limit'
      : input.cgroupLimitBytes !== undefined && input.cgroupLimitBytes < input.totalMemoryBytes
        ? 'cgroup'
        : 'machine';
  const memoryBytes =
    source === '--memory-limit'
      ? input.memoryLimitBytes!
      : source === 'cgroup'
        ? input.cgroupLimitBytes!
        : input.totalMemoryBytes;
  const oldSpaceMiB = Math.max(
    MIN_OLD_SPACE_MIB,
    Math.floor((memoryBytes * HEAP_MEMORY_FRACTION - YOUNG_GENERATION_BYTES) / 2 ** 20),
  );
  const wantedHeap = oldSpaceMiB * 2 ** 20 + YOUNG_GENERATION_BYTES;
  const plan = { memoryBytes, source, oldSpaceMiB } as const;
  if ([...input.execArgv, input.nodeOptions ?? ''].some((arg) => OLD_SPACE_FLAG.test(arg)))
    return { ...plan, reexec: false, reason: 'node was given --max-old-space-size, which wins' };
  const current = input.heapSizeLimitBytes;
  const off = Math.abs(current - wantedHeap) / wantedHeap;
  if (off <= HEAP_MARGIN)
    return { ...plan, reexec: false, reason: "V8's heap limit is already within 10 % of it" };
  if (source !== '--memory-limit' && current < wantedHeap)
    return {
      ...plan,
      reexec: false,
      reason: "V8's default heap is smaller than the memory allows; only --memory-limit raises it",
    };
  return { ...plan, reexec: true, reason: '' };
}
