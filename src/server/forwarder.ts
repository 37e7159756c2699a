import type { FastifyInstance } from 'fastify';
import { Pool } from 'undici';
import type { Command } from '../kv/commands.js';
import type { CommandResult } from '../kv/results.js';
import type { FaultFilter } from '../transport/fault-filter.js';
import { ServerError, type ServerErrorCode } from './errors.js';
import type { ServerCommand } from './server-commands.js';

export const PATH_PROPOSE = '/raft/propose';
export const PATH_LEASES = '/raft/leases';

export interface LeaseViewWire {
  id: string;
  ttl: number;
  remaining: number;
  keys: string[];
}

function unknownOutcome(cause: unknown): ServerError {
  return new ServerError(
    'timeout',
    'the leader did not answer in time: the write may or may not have been applied',
    { cause },
  );
}

/** The leader as the forwarder reaches it: its member id and peer URL. */
export interface LeaderPeer {
  id: string;
  url: string;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** What a follower sends the leader: the command, as the leader should propose it. */
export interface ForwardedWrite {
  cmd?: Command;
  /** Instead of a KV command: a server command (member attributes). */
  serverCmd?: ServerCommand;
  idempotencyKey?: string;
  timeoutMs: number;
}

type ForwardReply =
  | { result: CommandResult }
  | { error: { code: ServerErrorCode; message: string } };

/** One POST carries every write queued for the leader since the last one left. */
interface ForwardBatchBody {
  writes: ForwardedWrite[];
}

interface QueuedWrite {
  write: ForwardedWrite;
  signal: AbortSignal;
  resolve: (r: CommandResult) => void;
  reject: (e: unknown) => void;
  onAbort?: () => void;
}

interface LeaderQueue {
  queued: QueuedWrite[];
  inFlight: number;
  flushScheduled: boolean;
}

/** Batches in flight per leader; more writes wait and go in the next batch (group commit across the hop). */
const MAX_BATCHES_IN_FLIGHT = 4;
const MAX_WRITES_PER_BATCH = 1024;

/**
 * Forwards writes from a follower to the leader over the peer port, so any
 * node serves any request. Writes are batched: one HTTP exchange per batch,
 * not per write, which is what a loaded follower's CPU goes to otherwise.
 * The outcome rules of API.md hold across the hop, per write: a failure
 * before the batch left is "not applied" (503), a failure after it left is
 * "unknown" (504).
 */
export class Forwarder {
  private readonly pools = new Map<string, Pool>();
  private readonly queues = new Map<string, LeaderQueue>();

  constructor(
    private readonly clusterId: string,
    /** Tests: the transport's fault filter, so a partition cuts forwarded writes too. */
    private readonly faults?: { self: string; filter: FaultFilter },
  ) {}

  /** Forwards `write` to the leader `to`, unless the fault filter cuts the way there or back. */
  async forward(
    to: LeaderPeer,
    write: ForwardedWrite,
    signal: AbortSignal,
  ): Promise<CommandResult> {
    const there = this.faults?.filter.decide(this.faults.self, to.id);
    const back = this.faults?.filter.decide(to.id, this.faults.self);
    if (there?.action === 'drop')
      throw new ServerError('unavailable', 'the leader could not be reached', {
        retryAfterSeconds: 1,
      });
    if (there?.action === 'delay') await sleep(there.delayMs);
    const result = await this.enqueue(to.url, write, signal);
    if (back?.action === 'drop') throw unknownOutcome(new Error('the answer was lost'));
    if (back?.action === 'delay') await sleep(back.delayMs);
    return result;
  }

  private enqueue(
    leaderPeerUrl: string,
    write: ForwardedWrite,
    signal: AbortSignal,
  ): Promise<CommandResult> {
    if (signal.aborted) return Promise.reject(unknownOutcome(signal.reason));
    let queue = this.queues.get(leaderPeerUrl);
    if (!queue) {
      queue = { queued: [], inFlight: 0, flushScheduled: false };
      this.queues.set(leaderPeerUrl, queue);
    }
    const q = queue;
    return new Promise<CommandResult>((resolve, reject) => {
      q.queued.push({ write, signal, resolve, reject });
      this.scheduleFlush(leaderPeerUrl, q);
    });
  }

  private scheduleFlush(url: string, q: LeaderQueue): void {
    if (q.flushScheduled || q.inFlight >= MAX_BATCHES_IN_FLIGHT || q.queued.length === 0) return;
    q.flushScheduled = true;
    // After this turn of the event loop, so every request parsed in it joins the batch.
    setImmediate(() => {
      q.flushScheduled = false;
      if (q.inFlight >= MAX_BATCHES_IN_FLIGHT) return;
      const batch = q.queued.splice(0, MAX_WRITES_PER_BATCH).filter((w) => {
        if (!w.signal.aborted) return true;
        w.reject(unknownOutcome(w.signal.reason));
        return false;
      });
      if (batch.length > 0) {
        q.inFlight++;
        void this.sendBatch(url, batch).finally(() => {
          q.inFlight--;
          this.scheduleFlush(url, q);
        });
      }
      this.scheduleFlush(url, q);
    });
  }

  private async sendBatch(url: string, batch: QueuedWrite[]): Promise<void> {
    // Each caller gives up at its own deadline; the batch itself waits for the slowest.
    const settled = new Set<QueuedWrite>();
    const settle = (w: QueuedWrite, fn: () => void) => {
      if (settled.has(w)) return;
      settled.add(w);
      w.signal.removeEventListener('abort', w.onAbort!);
      fn();
    };
    for (const w of batch) {
      w.onAbort = () => settle(w, () => w.reject(unknownOutcome(w.signal.reason)));
      w.signal.addEventListener('abort', w.onAbort, { once: true });
    }
    const timeoutMs = Math.max(...batch.map((w) => w.write.timeoutMs)) + 1000;
    let sent = false;
    try {
      const body: ForwardBatchBody = { writes: batch.map((w) => w.write) };
      const res = await this.poolFor(url).request({
        method: 'POST',
        path: PATH_PROPOSE,
        headers: { 'content-type': 'application/json', 'x-raftkv-cluster-id': this.clusterId },
        body: JSON.stringify(body),
        headersTimeout: timeoutMs,
        bodyTimeout: timeoutMs,
      });
      sent = true;
      const reply = (await res.body.json()) as {
        replies?: ForwardReply[];
        error?: { code: ServerErrorCode; message: string };
      };
      batch.forEach((w, i) => {
        const r = reply.replies?.[i] ?? (reply.error ? { error: reply.error } : undefined);
        if (r && 'result' in r) settle(w, () => w.resolve(r.result));
        else if (r && 'error' in r)
          settle(w, () => w.reject(new ServerError(r.error.code, r.error.message)));
        else
          settle(w, () => w.reject(unknownOutcome(new Error('malformed reply from the leader'))));
      });
    } catch (err) {
      const e = err as { code?: string };
      const neverLeft =
        !sent &&
        (e.code === 'ECONNREFUSED' ||
          e.code === 'UND_ERR_CONNECT_TIMEOUT' ||
          e.code === 'ENOTFOUND');
      const failure = neverLeft
        ? new ServerError('unavailable', 'the leader could not be reached', {
            retryAfterSeconds: 1,
            cause: err,
          })
        : unknownOutcome(err);
      for (const w of batch) settle(w, () => w.reject(failure));
    }
  }

  /** Asks the leader for lease views (only it knows the deadlines). */
  async leases(
    to: LeaderPeer,
    id: string | undefined,
    signal: AbortSignal,
  ): Promise<LeaseViewWire[]> {
    const f = this.faults;
    const cut =
      f !== undefined &&
      (f.filter.decide(f.self, to.id).action === 'drop' ||
        f.filter.decide(to.id, f.self).action === 'drop');
    if (cut)
      throw new ServerError('unavailable', 'the leader could not be asked about leases', {
        retryAfterSeconds: 1,
      });
    try {
      const res = await this.poolFor(to.url).request({
        method: 'POST',
        path: PATH_LEASES,
        headers: { 'content-type': 'application/json', 'x-raftkv-cluster-id': this.clusterId },
        body: JSON.stringify(id === undefined ? {} : { id }),
        signal,
      });
      const reply = (await res.body.json()) as
        | { leases: LeaseViewWire[] }
        | { error: { code: ServerErrorCode; message: string } };
      if ('leases' in reply) return reply.leases;
      throw new ServerError(reply.error.code, reply.error.message, { retryAfterSeconds: 1 });
    } catch (err) {
      if (err instanceof ServerError) throw err;
      throw new ServerError('unavailable', 'the leader could not be asked about leases', {
        retryAfterSeconds: 1,
        cause: err,
      });
    }
  }

  private poolFor(url: string): Pool {
    let pool = this.pools.get(url);
    if (!pool) {
      pool = new Pool(url, { connections: 8, keepAliveTimeout: 30_000 });
      this.pools.set(url, pool);
    }
    return pool;
  }

  async close(): Promise<void> {
    const pools = [...this.pools.values()];
    this.pools.clear();
    await Promise.allSettled(pools.map((p) => p.destroy()));
  }
}

/** The leader's side: the route on the peer port that proposes a forwarded write. */
export function forwardRoutes(
  clusterId: string,
  propose: (write: ForwardedWrite) => Promise<CommandResult>,
  leases: (id: string | undefined) => Promise<LeaseViewWire[]>,
): (app: FastifyInstance) => Promise<void> {
  return async (app) => {
    app.post(PATH_LEASES, async (req, reply) => {
      if (req.headers['x-raftkv-cluster-id'] !== clusterId) {
        return reply
          .code(403)
          .send({ error: { code: 'permission_denied', message: 'wrong cluster' } });
      }
      const { id } = (req.body ?? {}) as { id?: string };
      try {
        return { leases: await leases(typeof id === 'string' ? id : undefined) };
      } catch (err) {
        if (err instanceof ServerError) return { error: { code: err.code, message: err.message } };
        throw err;
      }
    });
    app.post(PATH_PROPOSE, async (req, reply) => {
      if (req.headers['x-raftkv-cluster-id'] !== clusterId) {
        return reply
          .code(403)
          .send({ error: { code: 'permission_denied', message: 'wrong cluster' } });
      }
      const { writes } = (req.body ?? {}) as Partial<ForwardBatchBody>;
      if (!Array.isArray(writes)) {
        return reply
          .code(400)
          .send({ error: { code: 'invalid_request', message: 'expected { writes: [...] }' } });
      }
      // Proposed in this same turn of the event loop: one log append for the whole batch.
      const replies = await Promise.all(
        writes.map((w) =>
          propose(w).then(
            (result): ForwardReply => ({ result }),
            (err): ForwardReply => {
              if (!(err instanceof ServerError)) throw err;
              // The leader changed under us: never proposed here, so not "unknown" to the caller.
              const code = err.code === 'not_leader' ? 'unavailable' : err.code;
              return { error: { code, message: err.message } };
            },
          ),
        ),
      );
      return { replies };
    });
  };
}
