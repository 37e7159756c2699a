/**
 * Raft messages to and from the other nodes, over HTTP.
 *
 * Sending: `send()` never blocks and never throws for a peer's trouble. It
 * queues each message on its peer and schedules one flush (setImmediate), so
 * everything sent in one turn of the event loop — all the messages of a Ready —
 * leaves in one frame per peer, written to the peer's message stream (one
 * upgraded connection per peer, message-stream.ts). When the socket's buffer
 * is full, messages wait for it to drain and then go in one bigger frame, so
 * a slow link gets bigger batches, not more writes. A stream that stays full
 * for `requestTimeoutMs` is cut. A peer that does not know streams (404 to
 * the upgrade) gets one POST /raft/messages per batch instead, at most one in
 * flight, and is offered a stream again every `streamRetryMs` (it may have
 * been upgraded meanwhile). Either way messages stay in order per peer (out-of-order appends
 * would only be rejected and cost a round of backtracking).
 * Each queue is bounded: beyond the bound the oldest messages are dropped
 * (Raft tolerates loss and resends) and the peer is reported unreachable.
 * A stream that breaks or cannot be opened, or a failed POST, loses what it
 * carried and reports the peer unreachable; nothing is retried here, Raft
 * does that. A peer whose stream cannot be opened is dialed again after a
 * pause (50 ms doubling to 1 s); meanwhile its messages are dropped.
 *
 * Snapshots ('snap' messages) take the chunked endpoint (peer-routes.ts), at
 * most one in flight per peer, and end in `onSnapshotStatus(to, ok)`.
 *
 * Callbacks never run inside `send()`: they come from later turns of the event
 * loop, so the caller's Ready handling is not re-entered.
 */
import { randomUUID } from 'node:crypto';
import type { AddressInfo, Socket } from 'node:net';
import type tls from 'node:tls';
import Fastify, { type FastifyInstance, type FastifyPluginAsync } from 'fastify';
import { Pool } from 'undici';
import type { Message, NodeId } from '../raft/messages.js';
import { entriesSizeBytes } from '../raft/messages.js';
import {
  httpsServerOptions,
  serveReloads,
  type TlsMaterial,
  tlsDialOptions,
  tlsFailureCode,
  undiciConnect,
} from '../tls/index.js';
import { encodeBatch } from './codec.js';
import { TransportError, transportErrorStatus } from './errors.js';
import type { FaultFilter } from './fault-filter.js';
import { encodeFrame, encodeRaftFrame, FRAME_APP_MAX, FRAME_APP_MIN } from './frames.js';
import { dialMessageStream } from './message-stream.js';
import {
  CONTENT_TYPE_BINARY,
  HEADER_CLUSTER_ID,
  HEADER_MEMBER_ID,
  HEADER_SNAPSHOT_ID,
  HEADER_SNAPSHOT_META_BYTES,
  HEADER_SNAPSHOT_OFFSET,
  HEADER_SNAPSHOT_TOTAL,
  PATH_HEALTH,
  PATH_MESSAGES,
  PATH_SNAPSHOT,
  type PeerReceiveLimits,
  type PeerReceiveStats,
  peerRoutes,
} from './peer-routes.js';

const MIB = 1024 * 1024;

/** The subset of a pino logger the transport uses. */
export interface TransportLogger {
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
  /** What the operator must see: a TLS handshake with a peer failed (once per peer and reason). */
  notice?(obj: object, msg: string): void;
}

const defaultLogger: TransportLogger = {
  warn: () => {},
  // Only bugs land here (a callback that threw, a message that cannot be encoded).
  error: (obj, msg) => console.error(`raftkv transport: ${msg}`, obj),
};

export interface HttpTransportOptions {
  nodeId: NodeId;
  clusterId: string;
  /** Every message received from a peer (see PeerRoutesOptions.onMessage). */
  onMessage: (m: Message) => void;
  /** Frames of the layer above received from a peer (see PeerRoutesOptions.onAppFrame). */
  onAppFrame?: (kind: number, payload: Buffer) => void;
  /** A snapshot transfer to `to` finished (`ok`) or failed. */
  onSnapshotStatus?: (to: NodeId, ok: boolean) => void;
  /** Messages to `to` were lost: a request failed, the queue overflowed, or `to` is unknown. */
  onUnreachable?: (to: NodeId) => void;
  /** `to` was reached: its message stream opened, or a POSTed batch was accepted. */
  onReachable?: (to: NodeId) => void;
  /** Peer `by` refused this node's traffic because this node was removed from the cluster (410). */
  onRemoved?: (by: NodeId) => void;
  /** Members removed from the cluster, whose traffic the routes refuse (PeerRoutesOptions.isRemoved). */
  isRemoved?: (id: NodeId) => boolean;
  /** Soft bound on one POST /raft/messages body; one bigger message still goes, alone. Default 4 MiB. */
  maxBatchBytes?: number;
  /** Per-peer queue bound in messages. Default 4096. */
  maxQueuedMessages?: number;
  /** Per-peer queue bound in (approximate) bytes. Default 64 MiB. */
  maxQueuedBytes?: number;
  /** Data bytes per snapshot chunk. Default 1 MiB. */
  snapshotChunkBytes?: number;
  /** Bound on waiting for a response to a batch, or for a full stream to drain. Default 5 s. */
  requestTimeoutMs?: number;
  /** Bound on waiting for a response to one snapshot chunk. Default 30 s. */
  snapshotChunkTimeoutMs?: number;
  /** Bound on opening a connection. Default 3 s. */
  connectTimeoutMs?: number;
  /** Connections per peer: one carries batches, one a snapshot. Default 2. */
  connectionsPerPeer?: number;
  /** A peer that refused streams (404) is offered one again after this long (it may have been upgraded). Default 30 s. */
  streamRetryMs?: number;
  /** Limits of the receiving side (the routes). */
  receive?: PeerReceiveLimits;
  /** Fault injection when sending (tests only). */
  filter?: FaultFilter;
  /** Fault injection on arrival (tests only). */
  receiveFilter?: FaultFilter;
  logger?: TransportLogger;
  /**
   * Mutual TLS with every peer: https:// peers are dialed presenting this
   * certificate and verified against its CA (each new connection takes the
   * material current then), and listen() serves https requiring the same.
   */
  tls?: TlsMaterial;
}

export interface TransportStats extends PeerReceiveStats {
  /** Frames written to streams, and POST /raft/messages requests sent (whatever their outcome). */
  batchesSent: number;
  /** Messages written to a stream, or in a POSTed batch that got a 2xx. */
  messagesSent: number;
  /** POSTs that failed (connection, timeout, non-2xx), and streams that broke or did not open. */
  batchesFailed: number;
  /** Message streams opened. */
  streamsOpened: number;
  /** Messages dropped: queue overflow, failed batches, unknown peer, fault filter. */
  messagesDropped: number;
  snapshotsSent: number;
  snapshotsFailed: number;
}

/** A small FIFO whose shift is O(1) amortized (a plain array's is O(n)). */
class MessageQueue {
  private items: Message[] = [];
  private head = 0;

  get length(): number {
    return this.items.length - this.head;
  }

  push(m: Message): void {
    this.items.push(m);
  }

  peek(): Message | undefined {
    return this.items[this.head];
  }

  shift(): Message | undefined {
    if (this.head >= this.items.length) return undefined;
    const m = this.items[this.head]!;
    this.items[this.head++] = undefined as unknown as Message; // let it be collected
    if (this.head === this.items.length) {
      this.items = [];
      this.head = 0;
    } else if (this.head >= 1024 && this.head * 2 >= this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return m;
  }

  clear(): void {
    this.items = [];
    this.head = 0;
  }
}

/** What a queued message counts against the byte bound; close to its encoded size. */
function approxSizeBytes(m: Message): number {
  return 48 + entriesSizeBytes(m.entries) + (m.readCtx?.length ?? 0);
}

interface PeerLink {
  readonly id: NodeId;
  readonly url: string;
  readonly pool: Pool;
  readonly messagesPath: string;
  readonly snapshotPath: string;
  readonly queue: MessageQueue;
  /** Invariant: the sum of approxSizeBytes over `queue`. */
  queuedBytes: number;
  /** Encoded frames of the layer above, written after the next Raft frame. */
  appFrames: Buffer[];
  /** The open message stream, if any. */
  stream: Socket | undefined;
  /** A stream is being opened. */
  dialing: boolean;
  /** Until then (performance.now() ms) no stream is dialed and messages are dropped. */
  redialAtMs: number;
  /** The pause after the next failed dial; 0 after a success. */
  redialDelayMs: number;
  /** Cuts a stream whose buffer stayed full too long. */
  stallTimer: NodeJS.Timeout | undefined;
  /** The peer refused streams (404): batches go by POST until `postOnlyUntilMs`. */
  postOnly: boolean;
  postOnlyUntilMs: number;
  /** A POST /raft/messages is in flight. */
  sending: boolean;
  /** A snapshot transfer is in flight. */
  sendingSnapshot: boolean;
  /** The TLS failure last reported for this peer's dials (reported again only when it changes). */
  tlsFailure: string | undefined;
}

const REDIAL_MIN_MS = 50;
const REDIAL_MAX_MS = 1000;

const EMPTY = new Uint8Array(0);

export class HttpTransport {
  readonly nodeId: NodeId;
  readonly clusterId: string;
  readonly stats: TransportStats = {
    batchesSent: 0,
    messagesSent: 0,
    batchesFailed: 0,
    messagesDropped: 0,
    streamsOpened: 0,
    snapshotsSent: 0,
    snapshotsFailed: 0,
    batchesReceived: 0,
    messagesReceived: 0,
    snapshotChunksReceived: 0,
    snapshotsReceived: 0,
  };

  private readonly opts: HttpTransportOptions;
  private readonly logger: TransportLogger;
  private readonly maxBatchBytes: number;
  private readonly maxQueuedMessages: number;
  private readonly maxQueuedBytes: number;
  private readonly snapshotChunkBytes: number;
  private readonly requestTimeoutMs: number;
  private readonly snapshotChunkTimeoutMs: number;

  private readonly peers = new Map<NodeId, PeerLink>();
  /** Peers to report unreachable at the next flush (deduplicated). */
  private readonly unreachable = new Set<NodeId>();
  /** Snapshot outcomes to report at the next flush. */
  private readonly snapshotReports: Array<[NodeId, boolean]> = [];
  /** Messages held back by a delay rule of the fault filter. */
  private readonly delayTimers = new Set<NodeJS.Timeout>();
  private flushHandle: NodeJS.Immediate | undefined;
  private server: FastifyInstance | undefined;
  private unsubscribeReloads: (() => void) | undefined;
  private closed = false;
  private closing: Promise<void> | undefined;

  constructor(opts: HttpTransportOptions) {
    this.opts = opts;
    this.nodeId = opts.nodeId;
    this.clusterId = opts.clusterId;
    this.logger = opts.logger ?? defaultLogger;
    this.maxBatchBytes = opts.maxBatchBytes ?? 4 * MIB;
    this.maxQueuedMessages = opts.maxQueuedMessages ?? 4096;
    this.maxQueuedBytes = opts.maxQueuedBytes ?? 64 * MIB;
    this.snapshotChunkBytes = opts.snapshotChunkBytes ?? MIB;
    this.requestTimeoutMs = opts.requestTimeoutMs ?? 5000;
    this.snapshotChunkTimeoutMs = opts.snapshotChunkTimeoutMs ?? 30_000;
    if (!(this.snapshotChunkBytes >= 1)) throw new RangeError('snapshotChunkBytes must be >= 1');
    if (!(this.maxQueuedMessages >= 1)) throw new RangeError('maxQueuedMessages must be >= 1');
  }

  /**
   * The fastify plugin serving this node's peer routes; register it on the
   * node's peer server: `app.register(transport.routes)`.
   */
  get routes(): FastifyPluginAsync {
    const { clusterId, nodeId, stats, opts } = this;
    return (app) =>
      peerRoutes(app, {
        ...opts.receive,
        clusterId,
        nodeId,
        onMessage: opts.onMessage,
        ...(opts.onAppFrame ? { onAppFrame: opts.onAppFrame } : {}),
        ...(opts.receiveFilter ? { filter: opts.receiveFilter } : {}),
        ...(opts.isRemoved ? { isRemoved: opts.isRemoved } : {}),
        stats,
      });
  }

  /** Serves the peer routes on a server of its own (closed by close()); returns its base URL. */
  async listen(host = '127.0.0.1', port = 0): Promise<string> {
    if (this.closed) throw new TransportError('closed', 'transport is closed');
    if (this.server) throw new Error('already listening');
    const material = this.opts.tls;
    const server = (
      material
        ? Fastify({
            logger: false,
            https: httpsServerOptions(material, { requireClientCert: true }),
          })
        : Fastify({ logger: false })
    ) as FastifyInstance;
    this.server = server;
    if (material)
      this.unsubscribeReloads = serveReloads(server.server as unknown as tls.Server, material);
    await server.register(this.routes);
    await server.listen({ host, port });
    const address = server.server.address() as AddressInfo;
    const hostPart = address.family === 'IPv6' ? `[${address.address}]` : address.address;
    return `${material ? 'https' : 'http'}://${hostPart}:${address.port}`;
  }

  /** Where to reach `id` (an http:// base URL). Replaces a different earlier address. */
  addPeer(id: NodeId, url: string): void {
    if (this.closed) return;
    const existing = this.peers.get(id);
    if (existing?.url === url) return;
    if (existing) this.removePeer(id);

    const parsed = new URL(url);
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
      throw new TypeError(`peer ${id}: not an http(s) URL: ${url}`);
    }
    const basePath = parsed.pathname.replace(/\/+$/, '');
    const connectTimeoutMs = this.opts.connectTimeoutMs ?? 3000;
    const material = this.opts.tls;
    const pool = new Pool(parsed.origin, {
      connections: this.opts.connectionsPerPeer ?? 2,
      pipelining: 1,
      keepAliveTimeout: 30_000,
      connectTimeout: connectTimeoutMs,
      headersTimeout: this.requestTimeoutMs,
      bodyTimeout: this.requestTimeoutMs,
      ...(material && parsed.protocol === 'https:'
        ? { connect: undiciConnect(material, { timeoutMs: connectTimeoutMs }) }
        : {}),
    });
    this.peers.set(id, {
      id,
      url,
      pool,
      messagesPath: basePath + PATH_MESSAGES,
      snapshotPath: basePath + PATH_SNAPSHOT,
      queue: new MessageQueue(),
      queuedBytes: 0,
      appFrames: [],
      stream: undefined,
      dialing: false,
      redialAtMs: 0,
      redialDelayMs: 0,
      stallTimer: undefined,
      postOnly: false,
      postOnlyUntilMs: 0,
      sending: false,
      sendingSnapshot: false,
      tlsFailure: undefined,
    });
  }

  /** Forgets `id`: drops its queue, aborts its requests, closes its connections. */
  removePeer(id: NodeId): void {
    const peer = this.peers.get(id);
    if (!peer) return;
    this.peers.delete(id);
    peer.queue.clear();
    peer.queuedBytes = 0;
    peer.appFrames = [];
    this.dropStream(peer);
    peer.pool.destroy().catch(() => {});
  }

  hasPeer(id: NodeId): boolean {
    return this.peers.has(id);
  }

  /**
   * Times one GET of the peer's health route on its connection pool: the round
   * trip in ms, or undefined when it failed, timed out, or a fault rule covers
   * the link (a test's partition must not be measured through). Never rejects.
   */
  async probe(id: NodeId, timeoutMs = this.requestTimeoutMs): Promise<number | undefined> {
    const peer = this.peers.get(id);
    const filter = this.opts.filter;
    if (!peer || this.closed || filter?.affects(this.opts.nodeId, id)) return undefined;
    const startMs = performance.now();
    try {
      const res = await peer.pool.request({
        method: 'GET',
        path: PATH_HEALTH,
        headers: { [HEADER_CLUSTER_ID]: this.clusterId, [HEADER_MEMBER_ID]: this.opts.nodeId },
        headersTimeout: timeoutMs,
        bodyTimeout: timeoutMs,
      });
      await res.body.dump();
      return res.statusCode === 200 ? performance.now() - startMs : undefined;
    } catch {
      return undefined;
    }
  }

  /** Queues messages for their peers; they leave at the next flush. Never throws for a peer's trouble. */
  send(messages: readonly Message[]): void {
    if (this.closed) return;
    const filter = this.opts.filter;
    for (const m of messages) {
      if (filter === undefined) {
        this.enqueue(m);
        continue;
      }
      const decision = filter.decide(m.from, m.to);
      if (decision.action === 'deliver') {
        this.enqueue(m);
      } else if (decision.action === 'drop') {
        this.stats.messagesDropped++;
        if (m.type === 'snap') this.reportSnapshot(m.to, false);
      } else {
        const timer = setTimeout(() => {
          this.delayTimers.delete(timer);
          if (!this.closed) this.enqueue(m);
        }, decision.delayMs);
        this.delayTimers.add(timer);
      }
    }
  }

  /**
   * Like send(), but what can go out on an open stream is written now rather
   * than at the next flush: a leader's appends reach its followers one event-loop
   * turn (0.1–0.3 ms on a busy machine) earlier, while its own disk write runs.
   * Everything else (dialing, POST batches, reports) still waits for the flush.
   */
  sendNow(messages: readonly Message[]): void {
    this.send(messages);
    if (this.closed) return;
    for (const peer of this.peers.values()) {
      if (peer.queue.length === 0 || peer.postOnly || !peer.stream) continue;
      if (!peer.stream.writableNeedDrain) this.writeFrames(peer, peer.stream);
    }
  }

  /** Stops everything: aborts in-flight requests, closes every connection and the server, if any. */
  close(): Promise<void> {
    if (!this.closing) this.closing = this.doClose();
    return this.closing;
  }

  private async doClose(): Promise<void> {
    this.closed = true;
    if (this.flushHandle) clearImmediate(this.flushHandle);
    this.flushHandle = undefined;
    for (const timer of this.delayTimers) clearTimeout(timer);
    this.delayTimers.clear();
    this.unreachable.clear();
    this.snapshotReports.length = 0;
    const destroyed = [...this.peers.values()].map((peer) => {
      this.dropStream(peer);
      return peer.pool.destroy().catch(() => {});
    });
    this.peers.clear();
    const server = this.server;
    this.server = undefined;
    this.unsubscribeReloads?.();
    await Promise.all([...destroyed, server?.close()]);
  }

  private enqueue(m: Message): void {
    const peer = this.peers.get(m.to);
    if (!peer) {
      this.stats.messagesDropped++;
      this.logger.warn({ to: m.to, type: m.type }, 'message for an unknown peer dropped');
      this.markUnreachable(m.to);
      if (m.type === 'snap') this.reportSnapshot(m.to, false);
      return;
    }
    if (m.type === 'snap') {
      this.startSnapshot(peer, m);
      return;
    }
    peer.queue.push(m);
    peer.queuedBytes += approxSizeBytes(m);
    let dropped = 0;
    while (
      peer.queue.length > this.maxQueuedMessages ||
      (peer.queuedBytes > this.maxQueuedBytes && peer.queue.length > 1)
    ) {
      peer.queuedBytes -= approxSizeBytes(peer.queue.shift()!);
      dropped++;
    }
    if (dropped > 0) {
      this.stats.messagesDropped += dropped;
      this.markUnreachable(peer.id);
    }
    this.scheduleFlush();
  }

  private markUnreachable(to: NodeId): void {
    this.unreachable.add(to);
    this.scheduleFlush();
  }

  private reportSnapshot(to: NodeId, ok: boolean): void {
    this.snapshotReports.push([to, ok]);
    this.scheduleFlush();
  }

  private scheduleFlush(): void {
    if (this.flushHandle === undefined && !this.closed) {
      this.flushHandle = setImmediate(() => this.flush());
    }
  }

  private flush(): void {
    this.flushHandle = undefined;
    if (this.closed) return;
    for (const peer of this.peers.values()) {
      if (peer.queue.length === 0 && peer.appFrames.length === 0) continue;
      if (peer.postOnly && !peer.sending && performance.now() >= peer.postOnlyUntilMs) {
        peer.postOnly = false; // offer a stream again: the peer may have been upgraded
      }
      if (peer.postOnly) {
        if (!peer.sending) this.sendBatch(peer);
      } else if (peer.stream) {
        if (!peer.stream.writableNeedDrain) this.writeFrames(peer, peer.stream);
      } else if (!peer.dialing) {
        if (performance.now() < peer.redialAtMs) this.dropQueue(peer);
        else this.dial(peer);
      }
    }
    if (this.unreachable.size > 0) {
      const ids = [...this.unreachable];
      this.unreachable.clear();
      for (const id of ids) this.callback('onUnreachable', () => this.opts.onUnreachable?.(id));
    }
    if (this.snapshotReports.length > 0) {
      const reports = this.snapshotReports.splice(0);
      for (const [to, ok] of reports) {
        this.callback('onSnapshotStatus', () => this.opts.onSnapshotStatus?.(to, ok));
      }
    }
  }

  /** For promise chains that cannot fail: if one does anyway, a log line, not an unhandled rejection. */
  private readonly logBug = (err: unknown): void => {
    this.logger.error({ err }, 'transport bug');
  };

  private callback(name: string, fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.logger.error({ err }, `${name} callback threw`);
    }
  }

  /** Removes up to maxBatchBytes (at least one message) from the head of the queue. */
  private takeBatch(peer: PeerLink): Message[] {
    const batch: Message[] = [];
    let batchBytes = 0;
    while (peer.queue.length > 0) {
      const sizeBytes = approxSizeBytes(peer.queue.peek()!);
      if (batch.length > 0 && batchBytes + sizeBytes > this.maxBatchBytes) break;
      batch.push(peer.queue.shift()!);
      batchBytes += sizeBytes;
      peer.queuedBytes -= sizeBytes;
    }
    return batch;
  }

  /**
   * Sends a frame of the layer above (kind FRAME_APP_MIN..FRAME_APP_MAX) on
   * `to`'s stream: now when the stream is open (the caller batches per turn of
   * the event loop), else at the next flush; after the Raft messages queued
   * before it either way. False, and nothing queued, when `to` is unknown or takes no
   * streams, or its stream cannot be opened right now: use another way then.
   * Frames queued when a stream breaks are lost with it (reported unreachable).
   */
  sendFrame(to: NodeId, kind: number, payload: Uint8Array): boolean {
    if (!(kind >= FRAME_APP_MIN && kind <= FRAME_APP_MAX))
      throw new RangeError(`frame kind ${kind}`);
    const peer = this.peers.get(to);
    if (this.closed || !peer || peer.postOnly) return false;
    if (!peer.stream && !peer.dialing && performance.now() < peer.redialAtMs) return false;
    peer.appFrames.push(encodeFrame(kind, payload));
    if (peer.stream && !peer.stream.writableNeedDrain) this.writeFrames(peer, peer.stream);
    else this.scheduleFlush();
    return true;
  }

  /** Whether `to`'s stream is open now. */
  hasStream(to: NodeId): boolean {
    return this.peers.get(to)?.stream !== undefined;
  }

  /**
   * Writes the queue as frames until it is empty or the socket's buffer is
   * full, corked so that they leave in one system call.
   */
  private writeFrames(peer: PeerLink, stream: Socket): void {
    stream.cork();
    try {
      this.writeCorked(peer, stream);
    } finally {
      stream.uncork();
    }
  }

  private writeCorked(peer: PeerLink, stream: Socket): void {
    while (peer.appFrames.length > 0 || peer.queue.length > 0) {
      if (peer.queue.length === 0) {
        const frame = peer.appFrames.shift()!;
        if (!stream.write(frame)) {
          this.watchStall(peer, stream);
          return;
        }
        continue;
      }
      const batch = this.takeBatch(peer);
      const frame = this.encodeOrSalvage(peer, batch, encodeRaftFrame);
      if (frame === undefined) continue;
      this.stats.batchesSent++;
      this.stats.messagesSent += batch.length;
      if (!stream.write(frame)) {
        this.watchStall(peer, stream);
        return;
      }
    }
  }

  /** Waits for a full stream to drain; cuts it if that takes longer than requestTimeoutMs. */
  private watchStall(peer: PeerLink, stream: Socket): void {
    if (peer.stallTimer) return;
    peer.stallTimer = setTimeout(() => {
      peer.stallTimer = undefined;
      if (peer.stream !== stream) return;
      this.logger.warn({ to: peer.id }, 'peer stream stalled; closing it');
      stream.destroy();
    }, this.requestTimeoutMs);
    stream.once('drain', () => {
      clearTimeout(peer.stallTimer);
      peer.stallTimer = undefined;
      if (peer.stream === stream && peer.queue.length > 0) this.scheduleFlush();
    });
  }

  /** Opens the peer's stream; what queues meanwhile leaves when it is open. */
  private dial(peer: PeerLink): void {
    peer.dialing = true;
    const connectTimeoutMs = this.opts.connectTimeoutMs ?? 3000;
    const material = this.opts.tls;
    dialMessageStream(
      peer.url,
      { [HEADER_CLUSTER_ID]: this.clusterId, [HEADER_MEMBER_ID]: this.opts.nodeId },
      connectTimeoutMs,
      material ? tlsDialOptions(material) : undefined,
    ).then(
      (outcome) => {
        peer.dialing = false;
        const current = !this.closed && this.peers.get(peer.id) === peer;
        if ('socket' in outcome) {
          if (!current) {
            outcome.socket.destroy();
            return;
          }
          this.attachStream(peer, outcome.socket);
        } else if (!current) {
          return;
        } else if (outcome.refusedStatus === 404) {
          this.logger.warn({ to: peer.id }, 'peer has no message streams; sending batches by POST');
          peer.postOnly = true;
          peer.postOnlyUntilMs = performance.now() + (this.opts.streamRetryMs ?? 30_000);
          if (peer.appFrames.length > 0) {
            peer.appFrames = [];
            this.markUnreachable(peer.id);
          }
        } else {
          this.logger.warn(
            { to: peer.id, status: outcome.refusedStatus, body: outcome.body.slice(0, 200) },
            'peer refused a message stream',
          );
          if (outcome.refusedStatus === transportErrorStatus.member_removed)
            this.callback('onRemoved', () => this.opts.onRemoved?.(peer.id));
          this.streamFailed(peer);
        }
        this.scheduleFlush();
      },
      (err: unknown) => {
        peer.dialing = false;
        if (this.closed || this.peers.get(peer.id) !== peer) return;
        this.logger.warn({ to: peer.id, err }, 'message stream not opened');
        this.noticeTlsFailure(peer, err);
        this.streamFailed(peer);
      },
    );
  }

  /** A dial that failed in the TLS handshake is a configuration error: say so, once per reason. */
  private noticeTlsFailure(peer: PeerLink, err: unknown): void {
    const code = tlsFailureCode(err);
    if (code === undefined || peer.tlsFailure === code) return;
    peer.tlsFailure = code;
    const reason = (err as { cause?: { message?: string } }).cause?.message ?? String(err);
    this.logger.notice?.(
      { to: peer.id, url: peer.url, code, reason },
      `TLS handshake with peer ${peer.id} at ${peer.url} failed (${code}): both nodes need ` +
        'certificates from the same --peer-ca-file CA, with SANs for the addresses in the peer URLs',
    );
  }

  private attachStream(peer: PeerLink, stream: Socket): void {
    this.stats.streamsOpened++;
    peer.tlsFailure = undefined;
    peer.stream = stream;
    peer.redialDelayMs = 0;
    stream.setNoDelay(true);
    stream.setKeepAlive(true, 10_000);
    this.callback('onReachable', () => this.opts.onReachable?.(peer.id));
    stream.on('error', (err) => {
      if (!this.closed) this.logger.warn({ to: peer.id, err }, 'message stream failed');
    });
    stream.resume(); // the receiver never writes; do not let anything pile up
    stream.on('close', () => {
      if (peer.stream !== stream) return;
      peer.stream = undefined;
      clearTimeout(peer.stallTimer);
      peer.stallTimer = undefined;
      if (this.closed || this.peers.get(peer.id) !== peer) return;
      // Frames still in the socket's buffer are lost with it.
      this.stats.batchesFailed++;
      this.markUnreachable(peer.id);
    });
  }

  /** A dial failed: drop what waits, tell Raft, and pause before the next dial. */
  private streamFailed(peer: PeerLink): void {
    this.stats.batchesFailed++;
    peer.redialDelayMs = Math.min(REDIAL_MAX_MS, Math.max(REDIAL_MIN_MS, peer.redialDelayMs * 2));
    peer.redialAtMs = performance.now() + peer.redialDelayMs;
    this.dropQueue(peer);
  }

  private dropQueue(peer: PeerLink): void {
    this.stats.messagesDropped += peer.queue.length;
    peer.queue.clear();
    peer.queuedBytes = 0;
    peer.appFrames = [];
    this.markUnreachable(peer.id);
  }

  /** Closes the peer's stream without reporting it (the peer is being forgotten). */
  private dropStream(peer: PeerLink): void {
    const stream = peer.stream;
    peer.stream = undefined;
    clearTimeout(peer.stallTimer);
    peer.stallTimer = undefined;
    stream?.destroy();
  }

  /** Takes up to maxBatchBytes from the queue and posts it. Precondition: queue not empty, not sending. */
  private sendBatch(peer: PeerLink): void {
    const batch = this.takeBatch(peer);
    const body = this.encodeOrSalvage(peer, batch, encodeBatch);
    if (body === undefined) return;

    peer.sending = true;
    this.stats.batchesSent++;
    this.post(peer, peer.messagesPath, body, {}, this.requestTimeoutMs).then((ok) => {
      peer.sending = false;
      if (this.closed || this.peers.get(peer.id) !== peer) return;
      if (ok) {
        this.stats.messagesSent += batch.length;
        this.callback('onReachable', () => this.opts.onReachable?.(peer.id));
      } else {
        this.stats.batchesFailed++;
        this.stats.messagesDropped += batch.length;
        this.unreachable.add(peer.id);
      }
      if (peer.queue.length > 0 || this.unreachable.size > 0) this.scheduleFlush();
    }, this.logBug);
  }

  /**
   * Encodes `batch`; if a message in it cannot be encoded (a bug upstream), drops
   * just that one, logged, rather than the whole batch. Removes dropped ones from `batch`.
   */
  private encodeOrSalvage(
    peer: PeerLink,
    batch: Message[],
    encode: (batch: Message[]) => Buffer,
  ): Buffer | undefined {
    try {
      return encode(batch);
    } catch (err) {
      this.logger.error({ err, to: peer.id }, 'batch not encodable, dropping the bad messages');
    }
    const good = batch.filter((m) => {
      try {
        encodeBatch([m]);
        return true;
      } catch {
        return false;
      }
    });
    this.stats.messagesDropped += batch.length - good.length;
    batch.splice(0, batch.length, ...good);
    return good.length > 0 ? encode(good) : undefined;
  }

  /** One POST; resolves whether it got a 2xx. Never rejects. */
  private async post(
    peer: PeerLink,
    path: string,
    body: Uint8Array,
    headers: Record<string, string>,
    timeoutMs: number,
  ): Promise<boolean> {
    try {
      const res = await peer.pool.request({
        method: 'POST',
        path,
        headers: {
          'content-type': CONTENT_TYPE_BINARY,
          [HEADER_CLUSTER_ID]: this.clusterId,
          [HEADER_MEMBER_ID]: this.opts.nodeId,
          ...headers,
        },
        body,
        headersTimeout: timeoutMs,
        bodyTimeout: timeoutMs,
      });
      if (res.statusCode >= 200 && res.statusCode < 300) {
        await res.body.dump();
        return true;
      }
      const text = await res.body.text().catch(() => '');
      this.logger.warn(
        { to: peer.id, path, status: res.statusCode, body: text.slice(0, 200) },
        'peer refused a request',
      );
      if (res.statusCode === transportErrorStatus.member_removed)
        this.callback('onRemoved', () => this.opts.onRemoved?.(peer.id));
      return false;
    } catch (err) {
      if (!this.closed) this.logger.warn({ to: peer.id, path, err }, 'request to peer failed');
      return false;
    }
  }

  private startSnapshot(peer: PeerLink, m: Message): void {
    if (peer.sendingSnapshot) {
      // Raft sends one snapshot at a time per follower; a second one is stale or a bug.
      this.logger.warn({ to: peer.id }, 'snapshot already in flight, new one dropped');
      this.stats.messagesDropped++;
      this.reportSnapshot(peer.id, false);
      return;
    }
    peer.sendingSnapshot = true;
    this.sendSnapshot(peer, m).then((ok) => {
      peer.sendingSnapshot = false;
      if (this.closed || this.peers.get(peer.id) !== peer) return;
      if (ok) {
        this.stats.snapshotsSent++;
      } else {
        this.stats.snapshotsFailed++;
        this.unreachable.add(peer.id);
      }
      this.reportSnapshot(peer.id, ok);
    }, this.logBug);
  }

  /** Sends the chunks in order, one request at a time; resolves whether all were accepted. Never rejects. */
  private async sendSnapshot(peer: PeerLink, m: Message): Promise<boolean> {
    const snapshot = m.snapshot;
    if (snapshot === undefined) {
      this.logger.error({ to: peer.id }, 'snap message without a snapshot');
      return false;
    }
    let meta: Uint8Array;
    try {
      meta = encodeBatch([{ ...m, snapshot: { metadata: snapshot.metadata, data: EMPTY } }]);
    } catch (err) {
      this.logger.error({ err, to: peer.id }, 'snapshot metadata not encodable');
      return false;
    }
    const data = snapshot.data;
    const total = data.byteLength;
    const transferId = `${this.nodeId}-${randomUUID()}`;
    let offset = 0;
    do {
      if (this.closed || this.peers.get(peer.id) !== peer) return false;
      const end = Math.min(total, offset + this.snapshotChunkBytes);
      const chunk = data.subarray(offset, end);
      const headers: Record<string, string> = {
        [HEADER_SNAPSHOT_ID]: transferId,
        [HEADER_SNAPSHOT_OFFSET]: String(offset),
        [HEADER_SNAPSHOT_TOTAL]: String(total),
      };
      let body: Uint8Array = chunk;
      if (offset === 0) {
        headers[HEADER_SNAPSHOT_META_BYTES] = String(meta.byteLength);
        body = new Uint8Array(meta.byteLength + chunk.byteLength);
        body.set(meta, 0);
        body.set(chunk, meta.byteLength);
      }
      const ok = await this.post(
        peer,
        peer.snapshotPath,
        body,
        headers,
        this.snapshotChunkTimeoutMs,
      );
      if (!ok) return false;
      offset = end;
    } while (offset < total);
    return true;
  }
}
