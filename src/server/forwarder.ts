import { Buffer } from 'node:buffer';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { type buildConnector, Pool } from 'undici';
import type { Command } from '../kv/commands.js';
import type { CommandResult } from '../kv/results.js';
import type { FaultFilter } from '../transport/fault-filter.js';
import { ServerError, type ServerErrorCode } from './errors.js';
import type { TransferResult } from './leader-transfer.js';
import type { Member } from './members.js';
import type { MemberChange, MemberView } from './membership.js';
import type { ServerCommand } from './server-commands.js';

export const PATH_PROPOSE = '/raft/propose';
export const PATH_LEASES = '/raft/leases';
export const PATH_TRANSFER_LEADER = '/raft/transfer-leader';
export const PATH_MEMBER_CHANGE = '/raft/member-change';
/** What a member joining with --join learns first: the cluster id and the members. */
export const PATH_CLUSTER_INFO = '/raft/cluster-info';

/** Stream frame kinds (transport/frames.ts: FRAME_APP_MIN and up are ours). */
export const FRAME_FORWARD_WRITES = 16;
export const FRAME_FORWARD_REPLIES = 17;

/**
 * The transport as forwarding uses it: frames on the peer streams. A write
 * goes this way when the stream to the leader is open, else by POST.
 */
export interface ForwardChannel {
  hasStream(to: string): boolean;
  sendFrame(to: string, kind: number, payload: Uint8Array): boolean;
}

/** FRAME_FORWARD_WRITES: the follower's writes, each with an id the reply names. */
interface WritesFrame {
  from: string;
  writes: Array<ForwardedWrite & { id: number }>;
}

/** FRAME_FORWARD_REPLIES: answers to some of the follower's writes, as they are applied. */
interface RepliesFrame {
  replies: Array<ForwardReply & { id: number }>;
}

export interface LeaseViewWire {
  id: string;
  owner?: string;
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
  requestDigest?: string;
  /** The user the follower authenticated (API.md "Security"). */
  user?: string;
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
  settled?: boolean;
}

/** Settles `w` once: the first of its answer, its failure and its deadline wins. */
function settle(w: QueuedWrite, fn: () => void): void {
  if (w.settled) return;
  w.settled = true;
  if (w.onAbort) w.signal.removeEventListener('abort', w.onAbort);
  fn();
}

/** From here on `w` ends at its deadline as "unknown" if nothing else ends it first. */
function watchDeadline(w: QueuedWrite, onAbort?: () => void): void {
  w.onAbort = () => {
    onAbort?.();
    settle(w, () => w.reject(unknownOutcome(w.signal.reason)));
  };
  w.signal.addEventListener('abort', w.onAbort, { once: true });
}

function settleWithReply(w: QueuedWrite, r: ForwardReply | undefined): void {
  if (r && 'result' in r) settle(w, () => w.resolve(r.result));
  else if (r && 'error' in r)
    settle(w, () => w.reject(new ServerError(r.error.code, r.error.message)));
  else settle(w, () => w.reject(unknownOutcome(new Error('malformed reply from the leader'))));
}

interface LeaderQueue {
  leader: LeaderPeer;
  queued: QueuedWrite[];
  inFlight: number;
  flushScheduled: boolean;
}

/** Batches in flight per leader; more writes wait and go in the next batch (group commit across the hop). */
const MAX_BATCHES_IN_FLIGHT = 4;
const MAX_WRITES_PER_BATCH = 1024;

/**
 * Forwards writes from a follower to the leader over the peer port, so any
 * node serves any request. Writes are batched: all those of one turn of the
 * event loop travel together. They go as one frame on the stream to the
 * leader (the leader answers each write on its own stream as soon as it is
 * applied), or, while no stream is open, as one POST whose answer waits for
 * the whole batch. The outcome rules of API.md hold across the hop, per
 * write: a failure before the batch left is "not applied" (503), a failure
 * after it left is "unknown" (504).
 */
export class Forwarder {
  private readonly pools = new Map<string, Pool>();
  private readonly queues = new Map<string, LeaderQueue>();
  /** Writes sent on a stream, by request id, until their reply comes. */
  private readonly awaiting = new Map<number, { w: QueuedWrite; leaderId: string }>();
  private nextRequestId = 1;

  constructor(
    private readonly clusterId: string,
    private readonly selfId: string,
    private readonly channel?: ForwardChannel,
    /** Tests: the transport's fault filter, so a partition cuts forwarded writes too. */
    private readonly faults?: { self: string; filter: FaultFilter },
    /** Counts each batch as it leaves (metrics). */
    private readonly onBatch: (channel: 'stream' | 'post') => void = () => {},
    /** With peer TLS: dials https:// leaders with the node's certificate (transport/tls undiciConnect). */
    private readonly connect?: buildConnector.connector,
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
    const result = await this.enqueue(to, write, signal);
    if (back?.action === 'drop') throw unknownOutcome(new Error('the answer was lost'));
    if (back?.action === 'delay') await sleep(back.delayMs);
    return result;
  }

  private enqueue(
    leader: LeaderPeer,
    write: ForwardedWrite,
    signal: AbortSignal,
  ): Promise<CommandResult> {
    if (signal.aborted) return Promise.reject(unknownOutcome(signal.reason));
    const key = `${leader.id} ${leader.url}`;
    let queue = this.queues.get(key);
    if (!queue) {
      queue = { leader, queued: [], inFlight: 0, flushScheduled: false };
      this.queues.set(key, queue);
    }
    const q = queue;
    return new Promise<CommandResult>((resolve, reject) => {
      q.queued.push({ write, signal, resolve, reject });
      this.scheduleFlush(q);
    });
  }

  private scheduleFlush(q: LeaderQueue): void {
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
      if (batch.length > 0 && this.channel?.hasStream(q.leader.id)) {
        this.onBatch('stream');
        this.sendFrame(q.leader.id, batch);
      } else if (batch.length > 0) {
        this.onBatch('post');
        q.inFlight++;
        void this.sendBatch(q.leader.url, batch).finally(() => {
          q.inFlight--;
          this.scheduleFlush(q);
        });
      }
      this.scheduleFlush(q);
    });
  }

  /** Sends `batch` as one frame on the stream to the leader; replies come in onRepliesFrame. */
  private sendFrame(leaderId: string, batch: QueuedWrite[]): void {
    const writes = batch.map((w) => {
      const id = this.nextRequestId++;
      this.awaiting.set(id, { w, leaderId });
      watchDeadline(w, () => this.awaiting.delete(id));
      return { ...w.write, id };
    });
    const frame: WritesFrame = { from: this.selfId, writes };
    if (this.channel!.sendFrame(leaderId, FRAME_FORWARD_WRITES, Buffer.from(JSON.stringify(frame))))
      return;
    const failure = new ServerError('unavailable', 'the leader could not be reached', {
      retryAfterSeconds: 1,
    });
    for (const { id } of writes) {
      const entry = this.awaiting.get(id);
      this.awaiting.delete(id);
      if (entry) settle(entry.w, () => entry.w.reject(failure));
    }
  }

  /** The leader's answers to writes sent on the stream (FRAME_FORWARD_REPLIES). */
  onRepliesFrame(payload: Uint8Array): void {
    const frame = JSON.parse(Buffer.from(payload).toString('utf8')) as Partial<RepliesFrame>;
    if (!Array.isArray(frame.replies)) throw new Error('forward replies frame without replies');
    for (const r of frame.replies) {
      const entry = this.awaiting.get(r.id);
      if (!entry) continue; // already given up on (deadline) or not ours
      this.awaiting.delete(r.id);
      settleWithReply(entry.w, r);
    }
  }

  /**
   * The stream to `peerId` broke or its messages were dropped: writes sent to
   * it may or may not have arrived, so they end now as "unknown" (504).
   */
  peerLost(peerId: string): void {
    for (const [id, entry] of this.awaiting) {
      if (entry.leaderId !== peerId) continue;
      this.awaiting.delete(id);
      settle(entry.w, () =>
        entry.w.reject(unknownOutcome(new Error('the stream to the leader broke'))),
      );
    }
  }

  private async sendBatch(url: string, batch: QueuedWrite[]): Promise<void> {
    // Each caller gives up at its own deadline; the batch itself waits for the slowest.
    for (const w of batch) watchDeadline(w);
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
        settleWithReply(
          w,
          reply.replies?.[i] ?? (reply.error ? { error: reply.error } : undefined),
        );
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
  leases(to: LeaderPeer, id: string | undefined, signal: AbortSignal): Promise<LeaseViewWire[]> {
    return this.askLeader(
      to,
      PATH_LEASES,
      id === undefined ? {} : { id },
      signal,
      'about leases',
      (reply) => (reply as { leases?: LeaseViewWire[] }).leases,
    );
  }

  /** Asks the leader to hand leadership over (only it can). */
  transferLeader(
    to: LeaderPeer,
    target: string | undefined,
    signal: AbortSignal,
  ): Promise<TransferResult> {
    return this.askLeader(
      to,
      PATH_TRANSFER_LEADER,
      target === undefined ? {} : { to: target },
      signal,
      'to hand over leadership',
      (reply) => {
        const r = reply as Partial<TransferResult>;
        return typeof r.leader === 'string' && typeof r.term === 'number'
          ? { leader: r.leader, term: r.term }
          : undefined;
      },
    );
  }

  /** Asks the leader to change the membership (only it can). */
  changeMembers(
    to: LeaderPeer,
    change: MemberChange,
    signal: AbortSignal,
  ): Promise<MemberView | { removed: string }> {
    return this.askLeader(
      to,
      PATH_MEMBER_CHANGE,
      change,
      signal,
      'to change the membership',
      (reply) => {
        const r = reply as { member?: MemberView; removed?: string };
        if (r.member) return r.member;
        return typeof r.removed === 'string' ? { removed: r.removed } : undefined;
      },
    );
  }

  /**
   * One POST to the leader's peer port; `pick` finds the answer in its reply,
   * which otherwise carries the leader's error. Unreachable: 503.
   */
  private async askLeader<T>(
    to: LeaderPeer,
    path: string,
    body: object,
    signal: AbortSignal,
    what: string,
    pick: (reply: object) => T | undefined,
  ): Promise<T> {
    const unreachable = (cause?: unknown) =>
      new ServerError('unavailable', `the leader could not be asked ${what}`, {
        retryAfterSeconds: 1,
        ...(cause === undefined ? {} : { cause }),
      });
    const f = this.faults;
    const cut =
      f !== undefined &&
      (f.filter.decide(f.self, to.id).action === 'drop' ||
        f.filter.decide(to.id, f.self).action === 'drop');
    if (cut) throw unreachable();
    try {
      const res = await this.poolFor(to.url).request({
        method: 'POST',
        path,
        headers: { 'content-type': 'application/json', 'x-raftkv-cluster-id': this.clusterId },
        body: JSON.stringify(body),
        signal,
      });
      const reply = (await res.body.json()) as object;
      const answer = pick(reply);
      if (answer !== undefined) return answer;
      const error = (reply as { error?: { code?: ServerErrorCode; message?: string } }).error;
      if (typeof error?.code !== 'string') throw unreachable(new Error(`reply without an answer`));
      throw new ServerError(error.code, error.message ?? error.code, { retryAfterSeconds: 1 });
    } catch (err) {
      if (err instanceof ServerError) throw err;
      throw unreachable(err);
    }
  }

  private poolFor(url: string): Pool {
    let pool = this.pools.get(url);
    if (!pool) {
      pool = new Pool(url, {
        connections: 8,
        keepAliveTimeout: 30_000,
        ...(this.connect && url.startsWith('https:') ? { connect: this.connect } : {}),
      });
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

/** A forwarded write as the leader answers it; `not_leader` becomes 503 (never proposed here). */
function proposeForReply(
  propose: (write: ForwardedWrite) => Promise<CommandResult>,
  w: ForwardedWrite,
): Promise<ForwardReply> {
  return propose(w).then(
    (result): ForwardReply => ({ result }),
    (err): ForwardReply => {
      if (!(err instanceof ServerError)) throw err;
      const code = err.code === 'not_leader' ? 'unavailable' : err.code;
      return { error: { code, message: err.message } };
    },
  );
}

/**
 * The leader's side of FRAME_FORWARD_WRITES: proposes each write and answers
 * it on the stream back to its follower when it is applied; the answers of
 * one batch of applied entries travel in one frame (gathered in a microtask,
 * so they join the Raft messages of the same Ready in the transport's next
 * flush). An answer that cannot be sent is lost, and the follower ends that
 * write as "unknown" (504).
 */
export class ForwardedWriteReceiver {
  private readonly pending = new Map<string, Array<ForwardReply & { id: number }>>();
  private flushScheduled = false;

  constructor(
    private readonly channel: ForwardChannel,
    private readonly propose: (write: ForwardedWrite) => Promise<CommandResult>,
    private readonly onError: (err: unknown) => void,
  ) {}

  /** Throws on a malformed frame (the transport then closes the stream). */
  onWritesFrame(payload: Uint8Array): void {
    const frame = JSON.parse(Buffer.from(payload).toString('utf8')) as Partial<WritesFrame>;
    const { from, writes } = frame;
    if (typeof from !== 'string' || !Array.isArray(writes))
      throw new Error('forward writes frame without from or writes');
    for (const w of writes) {
      if (typeof w?.id !== 'number') throw new Error('forwarded write without an id');
      // Proposed in this same turn of the event loop: one log append for the whole frame.
      proposeForReply(this.propose, w).then(
        (reply) => this.answer(from, { ...reply, id: w.id }),
        this.onError,
      );
    }
  }

  private answer(to: string, reply: ForwardReply & { id: number }): void {
    let replies = this.pending.get(to);
    if (!replies) {
      replies = [];
      this.pending.set(to, replies);
    }
    replies.push(reply);
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    queueMicrotask(() => {
      this.flushScheduled = false;
      for (const [follower, list] of this.pending) {
        const frame: RepliesFrame = { replies: list };
        this.channel.sendFrame(follower, FRAME_FORWARD_REPLIES, Buffer.from(JSON.stringify(frame)));
      }
      this.pending.clear();
    });
  }
}

/** The leader's side: the route on the peer port that proposes a forwarded write. */
/** What the leader answers on its peer port (see Forwarder for the asking side). */
export interface LeaderHandlers {
  propose: (write: ForwardedWrite) => Promise<CommandResult>;
  leases: (id: string | undefined) => Promise<LeaseViewWire[]>;
  transferLeader: (to: string | undefined) => Promise<TransferResult>;
  changeMembers: (change: MemberChange) => Promise<MemberView | { removed: string }>;
  clusterInfo: () => { clusterId: string; members: Member[] };
}

export function forwardRoutes(
  clusterId: string,
  { propose, leases, transferLeader, changeMembers, clusterInfo }: LeaderHandlers,
): (app: FastifyInstance) => Promise<void> {
  /** A question to the leader: its answer, or its error as `{ error }` (see Forwarder.askLeader). */
  const ask =
    <T extends object>(answer: (body: Record<string, unknown>) => Promise<T>) =>
    async (req: FastifyRequest, reply: FastifyReply) => {
      if (req.headers['x-raftkv-cluster-id'] !== clusterId) {
        return reply
          .code(403)
          .send({ error: { code: 'permission_denied', message: 'wrong cluster' } });
      }
      try {
        return await answer((req.body ?? {}) as Record<string, unknown>);
      } catch (err) {
        if (err instanceof ServerError) return { error: { code: err.code, message: err.message } };
        throw err;
      }
    };
  const text = (v: unknown) => (typeof v === 'string' ? v : undefined);
  return async (app) => {
    app.post(
      PATH_LEASES,
      ask(async (body) => ({ leases: await leases(text(body.id)) })),
    );
    app.post(
      PATH_MEMBER_CHANGE,
      ask(async (body) => {
        const r = await changeMembers(body as unknown as MemberChange);
        return 'removed' in r ? r : { member: r };
      }),
    );
    // Read by a member joining with --join before it knows the cluster id (hence
    // no cluster-id check): it tells only member ids, names and URLs.
    app.get(PATH_CLUSTER_INFO, async () => clusterInfo());
    app.post(
      PATH_TRANSFER_LEADER,
      ask((body) => transferLeader(text(body.to))),
    );
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
      const replies = await Promise.all(writes.map((w) => proposeForReply(propose, w)));
      return { replies };
    });
  };
}
