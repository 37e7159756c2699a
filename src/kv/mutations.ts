import { utf8Encode } from './text.js';

/**
 * A record-level change of the persisted KV state (see record-keys.ts for the
 * layout). The server writes the mutations of a batch of applies together with
 * the applied index in one atomic batch.
 */
export type KvMutation =
  | { readonly type: 'put'; readonly key: string; readonly value: Uint8Array }
  | { readonly type: 'del'; readonly key: string };

/**
 * Mutations recorded since the last take(), coalesced by record key (the last
 * write of a record wins), so a batch holds each record at most once and the
 * meta record written by every apply costs one entry per batch.
 */
export class MutationLog {
  /** Record key → its new value as JSON text (encoded at take(): overwritten values are never encoded), or null for a delete. */
  private readonly pending = new Map<string, string | null>();

  constructor(private readonly enabled: boolean) {}

  put(key: string, text: string): void {
    if (this.enabled) this.pending.set(key, text);
  }

  del(key: string): void {
    if (this.enabled) this.pending.set(key, null);
  }

  get size(): number {
    return this.pending.size;
  }

  take(): KvMutation[] {
    const mutations: KvMutation[] = [];
    for (const [key, value] of this.pending) {
      mutations.push(
        value === null ? { type: 'del', key } : { type: 'put', key, value: utf8Encode(value) },
      );
    }
    this.pending.clear();
    return mutations;
  }
}
