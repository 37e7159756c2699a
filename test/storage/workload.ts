/**
 * A deterministic stream of storage writes shaped like a follower's Ready
 * loop (appends of 1..100 entries, conflicting-suffix overwrites, hard state,
 * applied batches with kv mutations, compaction), generated from a seed
 * against an in-memory model. The crash test replays it to know the state
 * after every write; the child process replays it to know where to continue.
 */
import {
  type ConfState,
  type Entry,
  MemoryRaftStorage,
  SeededRandom,
} from '../../src/raft/index.js';
import type { KvMutation, LevelRaftStorage, PersistableReady } from '../../src/storage/index.js';
import { observe } from './helpers.js';

export type WorkloadOp =
  | { kind: 'ready'; rd: PersistableReady }
  | { kind: 'applied'; appliedIndex: number; confState?: ConfState; mutations: KvMutation[] }
  | { kind: 'compact'; index: number; term: number; confState: ConfState; keepEntries: number };

export const WORKLOAD_VOTERS = ['n1', 'n2', 'n3'];

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export class Workload {
  readonly model = MemoryRaftStorage.bootstrap(WORKLOAD_VOTERS);
  appliedIndex = 1;
  readonly kv = new Map<string, string>();
  opsDone = 0;
  private readonly rng: SeededRandom;
  private term = 1;

  constructor(seed: number) {
    this.rng = new SeededRandom(seed);
  }

  /** The next write, already applied to the model. */
  next(): WorkloadOp {
    const op = this.generate();
    this.applyToModel(op);
    this.opsDone++;
    return op;
  }

  private generate(): WorkloadOp {
    const m = this.model;
    const commit = m.hardState.commit;
    const roll = this.rng.nextInt(100);
    if (roll < 25 && this.appliedIndex < commit) {
      const appliedIndex = this.appliedIndex + 1 + this.rng.nextInt(commit - this.appliedIndex);
      const mutations: KvMutation[] = [];
      for (let i = this.appliedIndex + 1; i <= appliedIndex; i++) {
        const key = `k${i % 37}`;
        if (i % 11 === 0) mutations.push({ type: 'del', key });
        else mutations.push({ type: 'put', key, value: encoder.encode(`v${i}`) });
      }
      const op: WorkloadOp = { kind: 'applied', appliedIndex, mutations };
      if (this.rng.nextInt(10) === 0) {
        op.confState = { voters: WORKLOAD_VOTERS, learners: [`l${appliedIndex}`] };
      }
      return op;
    }
    const snapIndex = m.snapshot().metadata.index;
    if (roll < 32 && this.appliedIndex > snapIndex) {
      const index = this.appliedIndex;
      return {
        kind: 'compact',
        index,
        term: m.term(index),
        confState: m.confState,
        keepEntries: this.rng.nextInt(30),
      };
    }
    // A Ready: usually appends at the end, sometimes overwrites an uncommitted suffix with a new term.
    const last = m.lastIndex();
    let start = last + 1;
    if (last > commit && this.rng.nextInt(6) === 0) {
      start = commit + 1 + this.rng.nextInt(last - commit);
      this.term++;
    }
    const count = this.rng.nextInt(4) === 0 ? 1 + this.rng.nextInt(100) : 1 + this.rng.nextInt(5);
    const entries: Entry[] = [];
    for (let i = start; i < start + count; i++) {
      const pad = 'x'.repeat(this.rng.nextInt(200));
      entries.push({
        index: i,
        term: this.term,
        type: 'normal',
        data: encoder.encode(`${this.term}:${i}:${pad}`),
      });
    }
    const newLast = start + count - 1;
    const newCommit = commit + this.rng.nextInt(newLast - commit + 1);
    return {
      kind: 'ready',
      rd: { entries, hardState: { term: this.term, vote: 'n1', commit: newCommit } },
    };
  }

  private applyToModel(op: WorkloadOp): void {
    const m = this.model;
    switch (op.kind) {
      case 'ready':
        m.append(op.rd.entries);
        if (op.rd.hardState) m.setHardState(op.rd.hardState);
        return;
      case 'applied':
        for (const mu of op.mutations) {
          if (mu.type === 'put') this.kv.set(mu.key, decoder.decode(mu.value));
          else this.kv.delete(mu.key);
        }
        this.appliedIndex = op.appliedIndex;
        if (op.confState) m.setConfState(op.confState);
        return;
      case 'compact':
        m.createSnapshot(op.index, op.confState, new Uint8Array());
        m.compact(op.index - op.keepEntries);
        return;
    }
  }
}

/** Performs one workload write; Ready writes are synced, as mustSync would ask. */
export async function applyOp(storage: LevelRaftStorage, op: WorkloadOp): Promise<void> {
  switch (op.kind) {
    case 'ready':
      return storage.persistReady(op.rd, true);
    case 'applied':
      return storage.persistApplied(op.appliedIndex, op.confState, op.mutations);
    case 'compact':
      await storage.compact(op.index, op.term, op.confState, op.keepEntries);
      return;
  }
}

/** A comparable summary of everything durable: the Raft view, applied index and kv state. */
export function fingerprint(
  raft: MemoryRaftStorage | LevelRaftStorage,
  appliedIndex: number,
  kv: Iterable<[string, string]>,
): string {
  const o = observe(raft);
  return JSON.stringify({
    ...o,
    entries: o.entries.map((e) => `${e.index}/${e.term}/${e.type}/${decoder.decode(e.data)}`),
    appliedIndex,
    kv: [...kv].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)),
  });
}

export async function levelFingerprint(storage: LevelRaftStorage): Promise<string> {
  const kv: [string, string][] = [];
  for await (const [k, v] of storage.kvRecords()) kv.push([k, decoder.decode(v)]);
  return fingerprint(storage, storage.appliedIndex(), kv);
}

export function modelFingerprint(w: Workload): string {
  return fingerprint(w.model, w.appliedIndex, w.kv);
}
