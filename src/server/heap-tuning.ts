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
