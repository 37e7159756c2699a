import type { Command } from './commands.js';
import { utf8ByteLength } from './text.js';

/**
 * Size limits the state machine enforces itself, defensively: the API checks
 * them before proposing, but a replicated command must be judged the same way
 * by every replica whatever node proposed it. Exceeding one is `too_large`.
 * All replicas must run with the same limits.
 */
export interface KvLimits {
  readonly keyBytesMax: number;
  readonly valueBytesMax: number;
  /** Per list: compares, success ops and failure ops each. */
  readonly txnOpsMax: number;
}

export const DEFAULT_KV_LIMITS: KvLimits = {
  keyBytesMax: 4096,
  valueBytesMax: 1024 * 1024,
  txnOpsMax: 128,
};

/** The first limit the command exceeds, as a message, or undefined. */
export function exceededLimit(cmd: Command, limits: KvLimits): string | undefined {
  const keyTooLong = (key: string) =>
    // Cheap pre-check: a UTF-16 unit is at most 3 UTF-8 bytes.
    key.length * 3 > limits.keyBytesMax && utf8ByteLength(key) > limits.keyBytesMax
      ? `key is longer than ${limits.keyBytesMax} bytes`
      : undefined;
  const valueTooLong = (value: string) =>
    value.length * 3 > limits.valueBytesMax && utf8ByteLength(value) > limits.valueBytesMax
      ? `value is longer than ${limits.valueBytesMax} bytes`
      : undefined;
  switch (cmd.type) {
    case 'put':
      return (
        keyTooLong(cmd.key) ??
        valueTooLong(cmd.value) ??
        (cmd.prevValue === undefined ? undefined : valueTooLong(cmd.prevValue))
      );
    case 'delete':
      return keyTooLong(cmd.key);
    case 'txn': {
      for (const [name, list] of [
        ['compares', cmd.compare],
        ['success ops', cmd.success],
        ['failure ops', cmd.failure],
      ] as const) {
        if (list.length > limits.txnOpsMax) return `more than ${limits.txnOpsMax} ${name}`;
      }
      for (const compare of cmd.compare) {
        const exceeded =
          'lock' in compare
            ? keyTooLong(compare.lock)
            : (keyTooLong(compare.key) ??
              (typeof compare.value === 'string' ? valueTooLong(compare.value) : undefined));
        if (exceeded !== undefined) return exceeded;
      }
      for (const op of [...cmd.success, ...cmd.failure]) {
        const exceeded =
          keyTooLong(op.key) ?? (op.op === 'put' ? valueTooLong(op.value) : undefined);
        if (exceeded !== undefined) return exceeded;
      }
      return undefined;
    }
    default:
      return undefined;
  }
}
