import { BANK_PREFIX } from '../src/keys.js';
import type { Client } from '../src/raftkv.js';

export interface Change {
  revision: number;
  events: { type: 'put' | 'delete'; kv: { key: string; value: string; version: number } }[];
}

/**
 * Every change to TSBank's keys from revision 1 through `endRevision`, read
 * back from raftkv's history with a watch that replays it (the chaos cluster
 * keeps all history: --auto-compaction-revisions 0). `endRevision` must be a
 * revision that changed a bank key, or the replay would wait for it forever;
 * it is bounded by `timeoutMs` anyway.
 */
export async function readHistory(
  client: Client,
  endRevision: number,
  timeoutMs: number,
): Promise<Change[]> {
  const changes: Change[] = [];
  const watch = client.watch(BANK_PREFIX, {
    prefix: true,
    fromRevision: 1,
    signal: AbortSignal.timeout(timeoutMs),
  });
  try {
    for await (const change of watch) {
      changes.push(change);
      if (change.revision >= endRevision) return changes;
    }
  } finally {
    watch.close();
  }
  throw new Error(
    `history replay stopped at revision ${changes.at(-1)?.revision ?? 0} of ${endRevision} (${timeoutMs} ms)`,
  );
}
