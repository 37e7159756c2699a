import {
  type KeyFilter,
  matchesFilter,
  type RevisionChange,
  type WatchEvent,
} from './mvcc/key-value.js';

/** A watcher registered by the server (one per SSE stream). */
export interface WatchListener extends KeyFilter {
  /**
   * Called synchronously after each applied revision that touched the filter,
   * with only the matching events: one call per revision, never split, in
   * revision order. Events carry prevKv when there was one; the server drops
   * it if the client did not ask. Must not throw and must not apply commands.
   */
  onChange(change: RevisionChange): void;
}

export interface WatchHubOptions {
  /**
   * Called when a listener throws; that listener is unregistered first, since
   * after a missed revision it can no longer promise "no gaps".
   */
  readonly onListenerError?: (error: unknown, listener: WatchListener) => void;
}

/**
 * Fans applied revisions out to watchers. Exact-key watchers are indexed by
 * key, so a revision costs one Map lookup per event however many watch other
 * keys; prefix watchers are scanned (few, in practice).
 *
 * To replay history without a gap: register, then (synchronously, before the
 * next apply) read store.changes(fromRevision, filter) up to the current
 * revision; every later revision arrives through onChange.
 */
export class WatchHub {
  private readonly byKey = new Map<string, Set<WatchListener>>();
  private readonly prefixed = new Set<WatchListener>();
  private count = 0;

  constructor(private readonly options: WatchHubOptions = {}) {}

  get size(): number {
    return this.count;
  }

  /** Returns the function that unregisters the listener (idempotent). */
  register(listener: WatchListener): () => void {
    if (listener.prefix) {
      this.prefixed.add(listener);
    } else {
      let listeners = this.byKey.get(listener.key);
      if (listeners === undefined) {
        listeners = new Set();
        this.byKey.set(listener.key, listeners);
      }
      listeners.add(listener);
    }
    this.count++;
    return () => this.unregister(listener);
  }

  unregister(listener: WatchListener): void {
    let removed: boolean;
    if (listener.prefix) {
      removed = this.prefixed.delete(listener);
    } else {
      const listeners = this.byKey.get(listener.key);
      removed = listeners?.delete(listener) ?? false;
      if (listeners?.size === 0) this.byKey.delete(listener.key);
    }
    if (removed) this.count--;
  }

  isRegistered(listener: WatchListener): boolean {
    return listener.prefix
      ? this.prefixed.has(listener)
      : (this.byKey.get(listener.key)?.has(listener) ?? false);
  }

  /** Delivers one applied revision. Called by the state machine only. */
  notify(change: RevisionChange): void {
    if (this.count === 0) return;
    // Listeners collected first: a listener may (un)register others while being called.
    const matched = new Map<WatchListener, WatchEvent[]>();
    const add = (listener: WatchListener, event: WatchEvent) => {
      const events = matched.get(listener);
      if (events === undefined) matched.set(listener, [event]);
      else events.push(event);
    };
    for (const event of change.events) {
      const listeners = this.byKey.get(event.kv.key);
      if (listeners !== undefined) for (const listener of listeners) add(listener, event);
    }
    for (const listener of this.prefixed) {
      for (const event of change.events)
        if (matchesFilter(listener, event.kv.key)) add(listener, event);
    }
    for (const [listener, events] of matched) {
      if (!this.isRegistered(listener)) continue; // unregistered by an earlier listener
      try {
        listener.onChange(
          events.length === change.events.length ? change : { revision: change.revision, events },
        );
      } catch (error) {
        this.unregister(listener);
        this.options.onListenerError?.(error, listener);
      }
    }
  }
}
