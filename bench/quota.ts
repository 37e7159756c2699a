/**
 * The space quota's figures (README "Space quota"), in one process, no server:
 * applies N puts to a KvStateMachine and compares the heap it grew by with the
 * state machine's size estimate (sizeBytes), then takes a snapshot and reports
 * the heap's peak during it. Run with --expose-gc so the heap figures are live
 * data, not garbage:
 *
 *   node --expose-gc --import tsx bench/quota.ts [--puts 200000] [--value-bytes 100] [--keys N]
 *
 * --keys: distinct keys (default = puts: every put a new key); fewer keys means
 * overwrites, i.e. history.
 */
import { getHeapStatistics } from 'node:v8';
import { encodeCommand } from '../src/kv/commands.js';
import { KvStateMachine } from '../src/kv/state-machine.js';

function argValue(name: string, fallback: number): number {
  const i = process.argv.indexOf(name);
  if (i < 0) return fallback;
  const n = Number(process.argv[i + 1]);
  if (!Number.isSafeInteger(n) || n <= 0) throw new Error(`${name} needs a positive integer`);
  return n;
}

const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with node --expose-gc');
const puts = argValue('--puts', 200_000);
const valueBytes = argValue('--value-bytes', 100);
const keys = argValue('--keys', puts);

function heapUsed(): number {
  gc!();
  gc!();
  return getHeapStatistics().used_heap_size;
}

const kv = new KvStateMachine({ trackMutations: false });
const before = heapUsed();
let payload = 0;
for (let i = 0; i < puts; i++) {
  const key = `key/${String(i % keys).padStart(12, '0')}`;
  // A fresh string per value, as values decoded from log entries are.
  const value = `${i}`.padEnd(valueBytes, 'x');
  payload += key.length + value.length;
  kv.apply(i + 1, encodeCommand({ v: 1, atMs: 1, cmd: { type: 'put', key, value } }));
}
const grown = heapUsed() - before;
const estimate = kv.sizeBytes;
console.log(
  `${puts} puts on ${keys} keys, ${valueBytes} B values: heap grew ${(grown / 2 ** 20).toFixed(1)} MiB, ` +
    `estimate ${(estimate / 2 ** 20).toFixed(1)} MiB (heap/estimate ${(grown / estimate).toFixed(2)}); ` +
    `heap per version over key+value ${((grown - payload) / puts).toFixed(0)} B`,
);

// The peak while a snapshot is encoded: sampled from an allocation-heavy point, so take the
// heap after building its record list (what encodeSnapshot holds at once) as the measure.
let peak = 0;
const sampler = setInterval(() => {
  peak = Math.max(peak, getHeapStatistics().used_heap_size);
}, 1);
const start = getHeapStatistics().used_heap_size;
const snapshotStart = performance.now();
const records = [...kv.records()];
peak = Math.max(peak, getHeapStatistics().used_heap_size);
// What encodeSnapshot holds live at once: every record's key and JSON text.
const recordsLive = heapUsed() - before - grown;
const bytes = kv.snapshot();
peak = Math.max(peak, getHeapStatistics().used_heap_size);
clearInterval(sampler);
console.log(
  `snapshot: ${(bytes.byteLength / 2 ** 20).toFixed(1)} MiB off-heap in ${(performance.now() - snapshotStart).toFixed(0)} ms; ` +
    `heap rose by at least ${((peak - start) / 2 ** 20).toFixed(1)} MiB over the state's ${(grown / 2 ** 20).toFixed(1)} MiB ` +
    `(records list: ${records.length}, live ${(recordsLive / 2 ** 20).toFixed(1)} MiB = ` +
    `${(recordsLive / grown).toFixed(2)} × the state)`,
);
