/** Helpers for the kv tests: build envelopes and feed them to a state machine as Raft would. */
import {
  type ApplyResult,
  type Command,
  type CommandResult,
  encodeCommand,
  isSkipped,
  type KvMutation,
  KvStateMachine,
  type KvStateMachineOptions,
} from '../../src/kv/index.js';

export function entry(cmd: Command, atMs = 0, idempotencyKey?: string): Uint8Array {
  return encodeCommand(
    idempotencyKey === undefined ? { v: 1, atMs, cmd } : { v: 1, atMs, idempotencyKey, cmd },
  );
}

/** A state machine with the next Raft index and a clock that tests move by hand. */
export class Feeder {
  readonly sm: KvStateMachine;
  index = 0;
  nowMs = 1_000;

  constructor(options?: KvStateMachineOptions | KvStateMachine) {
    this.sm = options instanceof KvStateMachine ? options : new KvStateMachine(options);
    this.index = this.sm.appliedIndex;
  }

  apply(cmd: Command, options: { atMs?: number; idempotencyKey?: string } = {}): CommandResult {
    return this.applyBytes(entry(cmd, options.atMs ?? this.nowMs, options.idempotencyKey));
  }

  applyBytes(data: Uint8Array): CommandResult {
    const result = this.sm.apply(++this.index, data);
    if (isSkipped(result)) throw new Error(`entry ${this.index} unexpectedly skipped`);
    return result;
  }

  put(key: string, value: string, extra: { lease?: string } = {}): CommandResult {
    return this.apply({ type: 'put', key, value, ...extra });
  }
}

/** Narrows a result to a successful one of the given op, or throws with the result. */
export function expectOk<Op extends Exclude<CommandResult, { ok: false }>['op']>(
  result: ApplyResult,
  op: Op,
): Extract<CommandResult, { op: Op }> {
  if (isSkipped(result) || !result.ok || result.op !== op) {
    throw new Error(`expected ok ${op}, got ${JSON.stringify(result)}`);
  }
  return result as Extract<CommandResult, { op: Op }>;
}

/** A fake of the server's persisted KV sublevel: applies mutation batches. */
export class RecordStore {
  readonly records = new Map<string, Uint8Array>();

  write(mutations: readonly KvMutation[]): void {
    for (const mutation of mutations) {
      if (mutation.type === 'put') this.records.set(mutation.key, mutation.value);
      else this.records.delete(mutation.key);
    }
  }
}

export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
