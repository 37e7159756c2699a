import type { Logger } from 'pino';
import { isReservedKey } from '../kv/coordination-keys.js';
import type { RevisionChange } from '../kv/mvcc/key-value.js';
import type { KvStateMachine } from '../kv/state-machine.js';

export interface WatchSink {
  change(change: RevisionChange): void;
  progress(revision: number): void;
  compacted(compactRevision: number): void;
  closed(reason: string, revision: number): void;
  bufferedBytes(): number;
}

/** What the metrics count: events sent, streams closed for not reading. */
export interface WatchCounts {
  sent(events: number): void;
  slowConsumerClosed(): void;
}

export interface WatchParams {
  key: string;
  prefix: boolean;
  fromRevision?: number;
  prevKv: boolean;
}

/** A watcher whose client has this many bytes unread is cut off (it resumes from history with Last-Event-ID). */
const MAX_BUFFERED_BYTES = 8 * 1024 * 1024;
/** API.md: a progress event at least every 10 s while idle. */
const PROGRESS_EVERY_MS = 5_000;

interface Stream {
  sink: WatchSink;
  params: WatchParams;
  /** The last revision delivered (or skipped as not matching before the watch started). */
  lastRevision: number;
  idleMs: number;
  unregister: () => void;
  done: boolean;
}

/**
 * Watch streams over the KV state machine's WatchHub: history is replayed
 * first, then live changes follow with no gap and no duplicate (the listener
 * is registered before history is read, in the same synchronous step, and
 * anything at or below the last delivered revision is dropped). A slow client
 * is closed with a reason instead of holding memory or writes back.
 */
export class Watches {
  private readonly streams = new Set<Stream>();

  constructor(
    private readonly kv: () => KvStateMachine,
    private readonly log: Logger,
    private readonly counts: WatchCounts = { sent: () => {}, slowConsumerClosed: () => {} },
  ) {}

  open(params: WatchParams, sink: WatchSink): { cancel(): void } {
    const kv = this.kv();
    const start = params.fromRevision ?? kv.revision + 1;
    const stream: Stream = {
      sink,
      params,
      lastRevision: start - 1,
      idleMs: 0,
      unregister: () => {},
      done: false,
    };
    const cancel = () => this.finish(stream);
    if (start < kv.compactRevision) {
      queueMicrotask(() => {
        sink.compacted(kv.compactRevision);
        this.finish(stream);
      });
      return { cancel };
    }
    // Register first, then read history, in one synchronous step: nothing can be applied in between.
    stream.unregister = kv.watches.register({
      key: params.key,
      prefix: params.prefix,
      onChange: (change) => this.deliver(stream, change),
    });
    this.streams.add(stream);
    const history = kv.changes(start, { key: params.key, prefix: params.prefix });
    if (!history.ok) {
      queueMicrotask(() => {
        sink.compacted(kv.compactRevision);
        this.finish(stream);
      });
      return { cancel };
    }
    // Deliver the replay after the caller has set up its stream.
    const replay = history.changes;
    queueMicrotask(() => {
      for (const change of replay) this.deliver(stream, change);
    });
    return { cancel };
  }

  private deliver(stream: Stream, change: RevisionChange): void {
    if (stream.done || change.revision <= stream.lastRevision) return;
    if (stream.params.prefix && stream.params.key === '') {
      // A watch of every user key does not see the coordination recipes' reserved keys (U+0000…).
      const events = change.events.filter((e) => !isReservedKey(e.kv.key));
      if (events.length === 0) return;
      if (events.length !== change.events.length) change = { revision: change.revision, events };
    }
    if (stream.sink.bufferedBytes() > MAX_BUFFERED_BYTES) {
      this.log.warn({ key: stream.params.key }, 'closing a watch whose client is not reading');
      stream.sink.closed('slow_consumer', stream.lastRevision);
      this.finish(stream);
      this.counts.slowConsumerClosed();
      return;
    }
    stream.lastRevision = change.revision;
    stream.idleMs = 0;
    stream.sink.change(stream.params.prevKv ? change : withoutPrevKv(change));
    this.counts.sent(change.events.length);
  }

  /** Called every tick: progress events for idle streams. */
  onTick(tickMs: number): void {
    const revision = this.kv().revision;
    for (const s of this.streams) {
      s.idleMs += tickMs;
      if (s.idleMs >= PROGRESS_EVERY_MS) {
        s.idleMs = 0;
        // Nothing matched up to the current revision: the client may resume from here.
        s.sink.progress(Math.max(revision, s.lastRevision));
      }
    }
  }

  /** After a snapshot install, streams cannot tell what they missed: close them so clients resume from history. */
  resyncAll(revision: number): void {
    for (const s of [...this.streams]) {
      s.sink.closed('resync', Math.min(s.lastRevision, revision));
      this.finish(s);
    }
  }

  closeAll(reason: string): void {
    for (const s of [...this.streams]) {
      s.sink.closed(reason, s.lastRevision);
      this.finish(s);
    }
  }

  get size(): number {
    return this.streams.size;
  }

  private finish(stream: Stream): void {
    if (stream.done) return;
    stream.done = true;
    stream.unregister();
    this.streams.delete(stream);
  }
}

function withoutPrevKv(change: RevisionChange): RevisionChange {
  if (!change.events.some((e) => e.prevKv)) return change;
  return {
    revision: change.revision,
    events: change.events.map((e) => ({ type: e.type, kv: e.kv })),
  };
}
