import { setTimeout as sleep } from 'node:timers/promises';
import type { Dispatcher } from 'undici';
import { PermissionDeniedError, RaftkvError } from './errors.js';
import { encodeKey, queryString } from './paths.js';
import { SseParser } from './sse.js';
import { describeTlsFailure } from './tls.js';
import { parseRetryAfter, type Transport } from './transport.js';
import type { ListResponse, WatchOptions, WatchResponse } from './types.js';

export interface WatchSettings {
  /** Headers of a watch stream must arrive within this. */
  timeoutMs: number;
  /** No byte for this long (the server sends progress at least every 10 s): reconnect. */
  idleTimeoutMs: number;
  /** Consecutive failed connection attempts before the watch gives up with `unavailable`. */
  maxFailures: number;
}

/**
 * A watch as an async iterator of `{revision, events}`: one item per revision
 * that touched the watched range, in revision order, with no gap and no
 * duplicate, across reconnections.
 *
 * When a stream drops, times out or the server closes it (`event: closed`),
 * the watch reconnects to the next endpoint with `Last-Event-ID` set to the
 * last revision it has accounted for (the last change delivered, or a later
 * revision a progress or closed event vouched for), and drops anything at or
 * below it. If that revision has been compacted meanwhile, or the start
 * revision was, iteration throws a RaftkvError `compacted` carrying
 * `compactRevision`. close(), break, or the `signal` option end it quietly.
 *
 * With credentials, every connection sends the Authorization header (a token
 * near its expiry is renewed first); a 401 on reconnecting fetches a fresh
 * token and tries once more, a second 401 throws UnauthenticatedError, a 403
 * PermissionDeniedError. `event: closed` with reason `permission_revoked`
 * ends the watch with PermissionDeniedError instead of resuming.
 */
/**
 * Where a WatchStream's SSE stream comes from: the KV watch by default, or
 * another endpoint with the same event protocol (registry watch, election
 * observe).
 */
export interface StreamSource {
  /** Path without query, e.g. `/v1/registry`. */
  path: string;
  /** Query parameters of a connection: the first one, or a resume after `cursor`. */
  query(first: boolean, cursor: number): Record<string, string | number | boolean | undefined>;
  /** The revision before the first one to deliver. */
  start(signal: AbortSignal): Promise<number>;
}

/** One item of a stream: a revision and whatever the endpoint reports for it. */
export interface StreamItem {
  revision: number;
}

export class WatchStream<T extends StreamItem = WatchResponse> implements AsyncIterableIterator<T> {
  /** The last revision accounted for: every change at or below it has been yielded. */
  revision: number | undefined;
  /** The endpoint of the current (or last) stream. */
  endpoint: string | undefined;
  /** Streams opened so far (1 + reconnections). */
  connections = 0;
  /** Why the latest failed connection attempt failed. */
  private lastFailure: RaftkvError | undefined;
  private readonly controller = new AbortController();
  private readonly signal: AbortSignal;
  private readonly iterator: AsyncGenerator<T, void, undefined>;
  private readonly onEnd: (w: WatchStream<T>) => void;
  private readonly source: StreamSource;

  constructor(
    private readonly transport: Transport,
    private readonly key: string,
    private readonly options: WatchOptions,
    private readonly settings: WatchSettings,
    onEnd: (w: WatchStream<T>) => void,
    source?: StreamSource,
  ) {
    this.source = source ?? {
      path: key === '' ? '/v1/watch' : `/v1/watch/${encodeKey(key)}`,
      query: (first, cursor) => ({
        prefix: options.prefix === true,
        prevKv: options.prevKv === true,
        fromRevision: first ? cursor + 1 : undefined,
      }),
      start: () => this.startCursor(),
    };
    const signals = [this.controller.signal, options.signal, transport.options.signal].filter(
      (x): x is AbortSignal => x !== undefined,
    );
    this.signal = signals.length === 1 ? this.controller.signal : AbortSignal.any(signals);
    this.onEnd = onEnd;
    this.iterator = this.wrap();
  }

  /** onEnd runs however iteration finishes. */
  private async *wrap(): AsyncGenerator<T, void, undefined> {
    try {
      yield* this.run();
      // Ended by the client's signal rather than by its user: that is an error, not an end.
      if (this.cutByClient())
        throw this.transport.cutShort(this.transport.options.signal?.reason, this.lastFailure);
    } finally {
      this.onEnd(this);
    }
  }

  /** The client's signal ended this watch (not close(), return() or the watch's own signal). */
  private cutByClient(): boolean {
    return (
      this.transport.options.signal?.aborted === true &&
      !this.controller.signal.aborted &&
      this.options.signal?.aborted !== true
    );
  }

  next(): Promise<IteratorResult<T, void>> {
    return this.iterator.next();
  }

  return(): Promise<IteratorResult<T, void>> {
    this.controller.abort();
    return this.iterator.return(undefined);
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  /** Ends the watch; a pending next() resolves as done. */
  close(): void {
    this.controller.abort();
    this.onEnd(this);
  }

  get closed(): boolean {
    return this.signal.aborted;
  }

  private async *run(): AsyncGenerator<T, void, undefined> {
    const signal = this.signal;
    let cursor: number;
    try {
      cursor = await this.source.start(signal);
    } catch (err) {
      if (signal.aborted && !this.cutByClient()) return;
      throw err;
    }
    this.revision = cursor;
    // Consecutive attempts that produced no event; reset by any event.
    let failures = 0;
    let retryAfterMs: number | undefined;
    let firstConnect = true;
    // A fresh token was fetched after a 401 since the last stream that opened (at most once).
    let reauthenticated = false;
    // Consecutive certificate failures: once every endpoint failed so, retrying cannot help.
    let tlsFailures = 0;
    const n = this.transport.endpoints.length;
    while (!signal.aborted) {
      if (failures > 0) {
        if (failures > this.settings.maxFailures) throw this.lastFailure;
        // Other endpoints are tried at once; after a full round, back off (or honour Retry-After).
        if (failures >= n) {
          const wait = Math.max(
            this.transport.backoff(failures - n),
            Math.min(retryAfterMs ?? 0, this.transport.options.retryAfterMaxMs),
          );
          await sleep(wait, undefined, { signal }).catch(() => {});
          if (signal.aborted) return;
        }
      }
      retryAfterMs = undefined;
      const endpoint = this.transport.current;
      this.endpoint = endpoint;
      const query = queryString(this.source.query(firstConnect, cursor));
      const headers: Record<string, string> = { accept: 'text/event-stream' };
      if (!firstConnect) headers['last-event-id'] = String(cursor);
      let res: Dispatcher.ResponseData;
      // Each (re)connection asks again: a token past 80 % of its ttl is renewed here.
      let authorization: string | undefined;
      try {
        authorization = await this.transport.authorization();
      } catch (err) {
        if (signal.aborted) return;
        throw err;
      }
      if (authorization !== undefined) headers.authorization = authorization;
      try {
        const { pool, base } = this.transport.pool(endpoint);
        res = await pool.request({
          method: 'GET',
          path: base + this.source.path + query,
          headers,
          signal,
          headersTimeout: this.settings.timeoutMs,
          bodyTimeout: this.settings.idleTimeoutMs,
        });
      } catch (err) {
        if (signal.aborted) return;
        if (err instanceof RaftkvError) throw err; // the client is closed
        failures++;
        const tlsFailure = describeTlsFailure(err, endpoint, this.transport.options.tls);
        tlsFailures = tlsFailure?.definite ? tlsFailures + 1 : 0;
        if (tlsFailure?.definite && tlsFailures >= n) throw tlsFailure.error;
        this.lastFailure =
          tlsFailure?.error ??
          new RaftkvError('unavailable', `watch: ${endpoint}: ${(err as Error).message}`, {
            endpoint,
            cause: err,
          });
        this.transport.rotateFrom(endpoint);
        continue;
      }
      tlsFailures = 0;
      if (res.statusCode !== 200) {
        const text = await res.body.text().catch(() => '');
        let body: unknown = text;
        try {
          body = JSON.parse(text);
        } catch {}
        retryAfterMs = parseRetryAfter(res.headers['retry-after']);
        const error = RaftkvError.fromResponse(res.statusCode, body, endpoint, retryAfterMs);
        if (!reauthenticated && this.transport.reauthenticate(error, authorization)) {
          // The token expired or was invalidated while we were away: a fresh one, once.
          reauthenticated = true;
          continue;
        }
        if (![429, 503, 504].includes(res.statusCode)) throw error;
        failures++;
        this.lastFailure = error;
        this.transport.rotateFrom(endpoint);
        continue;
      }

      // Connected: from now on, resume with Last-Event-ID.
      firstConnect = false;
      reauthenticated = false;
      this.connections++;
      this.transport.markGood(endpoint);
      try {
        this.options.onOpen?.(endpoint);
      } catch {
        // The user's callback must not break the watch.
      }
      let sawEvent = false;
      const parser = new SseParser();
      const decoder = new TextDecoder();
      try {
        for await (const chunk of res.body) {
          const events = parser.push(decoder.decode(chunk as Uint8Array, { stream: true }));
          for (const ev of events) {
            sawEvent = true;
            failures = 0;
            if (ev.event === 'change') {
              const change = parseData(ev.data, endpoint) as T;
              if (change.revision <= cursor) continue; // already delivered before a reconnect
              cursor = change.revision;
              this.revision = cursor;
              yield change;
            } else if (ev.event === 'progress') {
              const { revision } = parseData(ev.data, endpoint) as { revision: number };
              if (revision > cursor) {
                cursor = revision;
                this.revision = cursor;
              }
              if (this.options.progress)
                yield { revision, events: [], progress: true } as unknown as T;
            } else if (ev.event === 'compacted') {
              const body = parseData(ev.data, endpoint) as { compactRevision: number };
              throw new RaftkvError(
                'compacted',
                `watch: revision ${cursor + 1} has been compacted (compactRevision ${body.compactRevision})`,
                { status: 410, body, endpoint },
              );
            } else if (ev.event === 'closed') {
              // Everything up to `revision` was delivered (or did not match): resume after it.
              const { revision, reason } = parseData(ev.data, endpoint) as {
                revision?: number;
                reason?: string;
              };
              // The user lost the permission (roles changed, user deleted): resuming cannot help.
              if (reason === 'permission_revoked')
                throw new PermissionDeniedError(
                  `watch: ${endpoint} ended the stream: permission revoked (after revision ${cursor})`,
                  { endpoint, body: parseData(ev.data, endpoint) },
                );
              if (typeof revision === 'number' && revision > cursor) {
                cursor = revision;
                this.revision = cursor;
              }
            }
          }
        }
      } catch (err) {
        if (signal.aborted) return;
        if (err instanceof RaftkvError) throw err;
        // The stream broke (node stopped, reset, idle timeout): reconnect below.
      }
      if (signal.aborted) return;
      if (!sawEvent) {
        // A stream that ends before saying anything counts as a failed attempt (no busy loop).
        failures++;
        this.lastFailure = new RaftkvError('unavailable', `watch: ${endpoint} ended the stream`, {
          endpoint,
        });
      }
      // Resume elsewhere: a node that ended our stream is likely going away.
      this.transport.rotateFrom(endpoint);
    }
  }

  /** The revision before the first one to deliver. */
  private async startCursor(): Promise<number> {
    if (this.options.fromRevision !== undefined) {
      if (!Number.isSafeInteger(this.options.fromRevision) || this.options.fromRevision < 1)
        throw new RaftkvError('invalid_request', 'fromRevision must be an integer ≥ 1');
      return this.options.fromRevision - 1;
    }
    // Pin "now" with a linearizable read, so a reconnect before the first event cannot skip.
    const res = await this.transport.call<ListResponse>({
      method: 'GET',
      path: `/v1/kv${queryString({ prefix: this.key, limit: 1, keysOnly: true })}`,
      signal: this.signal,
    });
    return res.body.revision;
  }
}

function parseData(data: string, endpoint: string): unknown {
  try {
    return JSON.parse(data);
  } catch {
    throw new RaftkvError('internal', `watch: malformed event data from ${endpoint}`, {
      endpoint,
      body: data,
    });
  }
}
