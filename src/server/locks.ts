import { electionCandidatesPrefix, lockWaitersPrefix } from '../kv/coordination-keys.js';
import type { KeyValue } from '../kv/mvcc/key-value.js';
import { ServerError } from './errors.js';
import type { RaftKvNode, WriteContext } from './node.js';

export type QueueResult =
  | { ok: true; key: string; kv: KeyValue }
  | { ok: false; code: 'lock_timeout' | 'lease_not_found'; message: string };

/**
 * A fair FIFO queue of keys under a prefix, the recipe behind locks and
 * elections (like etcd's): each participant puts one key attached to its
 * lease; the lowest createRevision is first in line; everyone else waits for
 * the deletion of the key just before its own, woken by the store's watch
 * machinery rather than by polling. A participant whose lease dies drops out
 * of line with its key.
 */
/** Who a write is made for (see WriteContext); empty for the system. */
export type Requester = Pick<WriteContext, 'user' | 'anonymous'>;

export class KeyQueue {
  constructor(private readonly node: RaftKvNode) {}

  /** Joins the line under `prefix` (or finds our place, for the same lease) and waits to be first. */
  /** `requester`: who joins (the user, or an anonymous client), so the apply checks them too. */
  async waitFirst(
    prefix: string,
    lease: string,
    value: string,
    timeoutMs: number,
    requester: Requester = {},
  ): Promise<QueueResult> {
    const key = `${prefix}${lease}`;
    const signal = AbortSignal.timeout(timeoutMs);
    const joined = await this.node.write(
      {
        type: 'txn',
        compare: [{ key, target: 'createRevision', op: '==', value: 0 }],
        success: [{ op: 'put', key, value, lease }],
        failure: [{ op: 'get', key }],
      },
      requester,
    );
    if (!joined.ok) {
      if (joined.code === 'lease_not_found')
        return { ok: false, code: 'lease_not_found', message: joined.message };
      if (joined.code === 'quota_exceeded') throw new ServerError('quota_exceeded', joined.message);
      throw new ServerError('invalid_request', joined.message);
    }
    if (joined.op !== 'txn')
      throw new ServerError('invalid_request', 'unexpected result joining the line');
    const first = joined.results[0]!;
    const mine = first.op === 'put' ? first.kv : first.op === 'get' ? first.kvs[0] : undefined;
    if (!mine)
      throw new ServerError('unavailable', 'our place in line vanished', { retryAfterSeconds: 1 });
    for (let round = 0; round < 100_000; round++) {
      try {
        await this.node.readBarrier({ consistency: 'linearizable', signal });
      } catch (err) {
        if (!signal.aborted) throw err;
        // Our wait ran out while confirming our place: give it up, as for any timeout.
        // As the system: giving up a place in line must not depend on permissions changed since.
        await this.node.write({ type: 'delete', key }).catch(() => {});
        return {
          ok: false,
          code: 'lock_timeout',
          message: `not first in line within ${timeoutMs} ms`,
        };
      }
      const line = this.node.store.range({ prefix });
      if (!line.ok) throw new ServerError('unavailable', line.message);
      const me = line.kvs.find((kv) => kv.key === key);
      if (!me || me.createRevision !== mine.createRevision) {
        return {
          ok: false,
          code: 'lease_not_found',
          message: 'our lease expired or was revoked while waiting',
        };
      }
      let predecessor: KeyValue | undefined;
      for (const kv of line.kvs) {
        if (
          kv.createRevision < me.createRevision &&
          (!predecessor || kv.createRevision > predecessor.createRevision)
        ) {
          predecessor = kv;
        }
      }
      if (!predecessor) return { ok: true, key, kv: me };
      const gone = await this.deletedOrTimeout([predecessor.key, key], signal);
      if (!gone) {
        // Give up our place in line, so those behind us are not stuck on us.
        // As the system: giving up a place in line must not depend on permissions changed since.
        await this.node.write({ type: 'delete', key }).catch(() => {});
        return {
          ok: false,
          code: 'lock_timeout',
          message: `not first in line within ${timeoutMs} ms`,
        };
      }
    }
    throw new ServerError('timeout', 'gave up waiting in line');
  }

  /**
   * Resolves true when one of `keys` is deleted, false when the signal fires first.
   * Rejects with 503 when the member starts shutting down: the wait goes on at another
   * member (asked again with the same lease, it finds its place in line).
   */
  private deletedOrTimeout(keys: string[], signal: AbortSignal): Promise<boolean> {
    if (signal.aborted) return Promise.resolve(false);
    const stopping = this.node.shutdownSignal;
    return new Promise((resolve, reject) => {
      const unregisters: (() => void)[] = [];
      const done = (result: boolean | ServerError) => {
        for (const u of unregisters) u();
        signal.removeEventListener('abort', onAbort);
        stopping.removeEventListener('abort', onStopping);
        if (result instanceof ServerError) reject(result);
        else resolve(result);
      };
      const onAbort = () => done(false);
      const onStopping = () =>
        done(
          new ServerError('unavailable', 'the member is shutting down; wait in line at another', {
            retryAfterSeconds: 1,
          }),
        );
      signal.addEventListener('abort', onAbort, { once: true });
      if (stopping.aborted) {
        onStopping();
        return;
      }
      stopping.addEventListener('abort', onStopping, { once: true });
      for (const k of keys) {
        unregisters.push(
          this.node.store.watches.register({
            key: k,
            prefix: false,
            onChange: (change) => {
              if (change.events.some((e) => e.type === 'delete')) done(true);
            },
          }),
        );
      }
      // The key may have gone between our read and the registration.
      for (const k of keys) {
        const now = this.node.store.get(k);
        if (now.ok && now.kv === null) {
          done(true);
          return;
        }
      }
    });
  }

  /** The first in line under `prefix`, or undefined. */
  async first(prefix: string, signal?: AbortSignal): Promise<KeyValue | undefined> {
    await this.node.readBarrier({ consistency: 'linearizable', ...(signal ? { signal } : {}) });
    const line = this.node.store.range({ prefix });
    if (!line.ok) throw new ServerError('unavailable', line.message);
    let first: KeyValue | undefined;
    for (const kv of line.kvs) if (!first || kv.createRevision < first.createRevision) first = kv;
    return first;
  }
}

export const lockPrefix = lockWaitersPrefix;
export const electionPrefix = electionCandidatesPrefix;
