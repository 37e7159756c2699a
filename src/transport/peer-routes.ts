/**
 * The peer port: what one node serves to the others.
 *
 * - `GET /raft/stream` with an upgrade: a one-way stream of frames, each an
 *   encoded batch (message-stream.ts, frames.ts). How messages normally travel.
 *   A frame that does not decode, or holds a message for another node, closes
 *   the stream; the sender opens a new one.
 * - `POST /raft/messages`: body = one encoded batch (codec.ts), content-type
 *   application/octet-stream. Every message is handed to `onMessage`, in order.
 *   204 when delivered. For senders from before streams.
 * - `POST /raft/snapshot`: one chunk of a snapshot transfer (below). 204.
 * - `GET /raft/health`: 200 `{"status": "ok", "nodeId"}`.
 *
 * Every request carries `x-raftkv-cluster-id`; a missing or foreign one gets 403,
 * so two clusters that share hosts never mix their logs. Errors answer
 * `{"code", "message"}` with the codes of errors.ts.
 *
 * Snapshot transfer. The snapshot's data goes in chunks, one request at a
 * time, in order; the Raft message that carries it (with empty data) rides in
 * the first chunk:
 * ```
 * x-raftkv-snapshot-id:         transfer id, unique per transfer (1–128 chars)
 * x-raftkv-snapshot-offset:     byte offset of this chunk's data in snapshot.data
 * x-raftkv-snapshot-total:      byte length of the whole snapshot.data
 * x-raftkv-snapshot-meta-bytes: offset 0 only: the body starts with this many
 *                               bytes of an encoded batch of exactly one 'snap'
 *                               message whose snapshot.data is empty
 * body:                         [meta] data[offset, offset + chunk length)
 * ```
 * The receiver allocates `total` bytes at offset 0, copies each chunk in, and
 * when all have arrived delivers ONE 'snap' message whose snapshot.data is the
 * whole. Incomplete transfers are bounded: one per sender (a new one replaces
 * it), `maxSnapshotBytes` each, `maxPendingSnapshotBytes` together (else 503
 * `snapshot_busy`), and dropped after `snapshotIdleTimeoutMs` without a chunk.
 * A chunk for an unknown transfer or at the wrong offset gets 409
 * `snapshot_out_of_order`; the sender then gives up and Raft sends a new snapshot.
 */
import { Buffer } from 'node:buffer';
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import type { Message, NodeId } from '../raft/messages.js';
import { decodeBatch } from './codec.js';
import { TransportError, transportErrorStatus } from './errors.js';
import type { FaultFilter } from './fault-filter.js';
import { FRAME_APP_MIN, FRAME_RAFT, type Frame } from './frames.js';
import { acceptMessageStreams } from './message-stream.js';

export const PATH_MESSAGES = '/raft/messages';
export const PATH_SNAPSHOT = '/raft/snapshot';
export const PATH_HEALTH = '/raft/health';

export const HEADER_CLUSTER_ID = 'x-raftkv-cluster-id';
/** The sender's member id, so a removed member can be told (410 member_removed). */
export const HEADER_MEMBER_ID = 'x-raftkv-member-id';
export const HEADER_SNAPSHOT_ID = 'x-raftkv-snapshot-id';
export const HEADER_SNAPSHOT_OFFSET = 'x-raftkv-snapshot-offset';
export const HEADER_SNAPSHOT_TOTAL = 'x-raftkv-snapshot-total';
export const HEADER_SNAPSHOT_META_BYTES = 'x-raftkv-snapshot-meta-bytes';

export const CONTENT_TYPE_BINARY = 'application/octet-stream';

const MIB = 1024 * 1024;

/** Receiving limits; every one has a default. */
export interface PeerReceiveLimits {
  /** Largest body of POST /raft/messages, and largest stream frame. Default 64 MiB. */
  maxBatchBytes?: number;
  /** Largest data part of one snapshot chunk. Default 16 MiB. */
  maxSnapshotChunkBytes?: number;
  /** Largest snapshot accepted. Default 1 GiB. */
  maxSnapshotBytes?: number;
  /** Memory held by all incomplete transfers together. Default 1 GiB. */
  maxPendingSnapshotBytes?: number;
  /** An incomplete transfer with no chunk for this long is dropped. Default 30 s. */
  snapshotIdleTimeoutMs?: number;
}

/** Counters the routes increment, if the caller hands them an object to count in. */
export interface PeerReceiveStats {
  batchesReceived: number;
  messagesReceived: number;
  snapshotChunksReceived: number;
  snapshotsReceived: number;
}

export interface PeerRoutesOptions extends PeerReceiveLimits {
  /** Requests whose x-raftkv-cluster-id differs are refused with 403. */
  clusterId: string;
  /** This node: a message addressed to another id is refused (421). Omit to accept any. */
  nodeId?: NodeId;
  /**
   * Receives every message, synchronously, in arrival order. Must not throw: an
   * error is logged and the rest of the batch is still delivered.
   */
  onMessage: (m: Message) => void;
  /**
   * Receives stream frames of kinds FRAME_APP_MIN..FRAME_APP_MAX, in arrival
   * order. Throwing closes the stream. Without it such frames close the stream.
   */
  onAppFrame?: (kind: number, payload: Buffer) => void;
  /** Fault injection on arrival (tests only). */
  filter?: FaultFilter;
  stats?: PeerReceiveStats;
  /**
   * Members removed from the cluster: their traffic is answered 410
   * `member_removed` (a stream from one is closed, and refused when it is
   * opened again), so that a member that missed its own removal learns it.
   */
  isRemoved?: (id: NodeId) => boolean;
}

interface IncomingSnapshot {
  readonly id: string;
  readonly from: NodeId;
  /** The 'snap' message, snapshot.data still empty. */
  readonly message: Message;
  readonly data: Uint8Array;
  /** Bytes of `data` filled so far; chunks arrive in order, so [0, received). */
  received: number;
  readonly idleTimer: NodeJS.Timeout;
}

function headerString(req: FastifyRequest, name: string): string | undefined {
  const value = req.headers[name];
  return typeof value === 'string' ? value : undefined;
}

function headerCount(req: FastifyRequest, name: string): number {
  const value = headerString(req, name);
  if (value === undefined || !/^[0-9]{1,16}$/.test(value)) {
    throw new TransportError('bad_message', `header ${name} must be a non-negative integer`);
  }
  const n = Number(value);
  if (!Number.isSafeInteger(n)) throw new TransportError('bad_message', `header ${name} too big`);
  return n;
}

function bodyBytes(req: FastifyRequest): Buffer {
  const body = req.body;
  if (body === undefined || body === null) return Buffer.alloc(0);
  if (!Buffer.isBuffer(body)) throw new TransportError('bad_message', 'body is not binary');
  return body;
}

/** The fastify plugin for the peer port. Encapsulated: its hooks apply to its routes only. */
export const peerRoutes: FastifyPluginAsync<PeerRoutesOptions> = async (app, opts) => {
  const maxBatchBytes = opts.maxBatchBytes ?? 64 * MIB;
  const maxSnapshotChunkBytes = opts.maxSnapshotChunkBytes ?? 16 * MIB;
  const maxSnapshotBytes = opts.maxSnapshotBytes ?? 1024 * MIB;
  const maxPendingSnapshotBytes = opts.maxPendingSnapshotBytes ?? 1024 * MIB;
  const snapshotIdleTimeoutMs = opts.snapshotIdleTimeoutMs ?? 30_000;
  const { clusterId, nodeId, onMessage, onAppFrame, filter, stats, isRemoved } = opts;

  function refuseRemoved(from: NodeId): void {
    if (isRemoved?.(from)) {
      throw new TransportError('member_removed', `member ${from} was removed from the cluster`);
    }
  }

  const incoming = new Map<string, IncomingSnapshot>();
  let pendingSnapshotBytes = 0;

  function deliverNow(m: Message): void {
    try {
      onMessage(m);
    } catch (err) {
      app.log.error({ err, type: m.type, from: m.from }, 'raft message handler threw');
    }
  }

  function deliver(m: Message): void {
    const decision = filter?.decide(m.from, m.to);
    if (decision === undefined || decision.action === 'deliver') deliverNow(m);
    else if (decision.action === 'delay') setTimeout(deliverNow, decision.delayMs, m).unref();
  }

  function checkAddressee(m: Message): void {
    if (nodeId !== undefined && m.to !== nodeId) {
      throw new TransportError('wrong_node', `message for ${m.to} reached ${nodeId}`);
    }
  }

  function forget(transfer: IncomingSnapshot): void {
    clearTimeout(transfer.idleTimer);
    if (incoming.get(transfer.id) === transfer) {
      incoming.delete(transfer.id);
      pendingSnapshotBytes -= transfer.data.byteLength;
    }
  }

  function startTransfer(req: FastifyRequest, id: string, total: number, body: Buffer): Buffer {
    const metaBytes = headerCount(req, HEADER_SNAPSHOT_META_BYTES);
    if (metaBytes > body.byteLength) {
      throw new TransportError('bad_message', 'snapshot metadata longer than the body');
    }
    const messages = decodeBatch(body.subarray(0, metaBytes));
    const m = messages[0];
    if (messages.length !== 1 || m === undefined || m.type !== 'snap' || m.snapshot === undefined) {
      throw new TransportError('bad_message', 'snapshot metadata must be one snap message');
    }
    if (m.snapshot.data.byteLength !== 0) {
      throw new TransportError('bad_message', 'snapshot data belongs in the chunks');
    }
    checkAddressee(m);
    if (total > maxSnapshotBytes) {
      throw new TransportError('too_large', `snapshot of ${total} bytes > ${maxSnapshotBytes}`);
    }
    // One transfer per sender: a new one means the sender gave up on the old one.
    for (const other of incoming.values()) {
      if (other.from === m.from || other.id === id) forget(other);
    }
    if (pendingSnapshotBytes + total > maxPendingSnapshotBytes) {
      throw new TransportError('snapshot_busy', 'too many incomplete snapshot transfers');
    }
    const transfer: IncomingSnapshot = {
      id,
      from: m.from,
      message: m,
      // Unpooled and uninitialized: every byte is written before delivery.
      data: new Uint8Array(Buffer.allocUnsafeSlow(total).buffer, 0, total),
      received: 0,
      idleTimer: setTimeout(() => {
        app.log.warn({ id, from: m.from }, 'incomplete snapshot transfer timed out');
        forget(transfer);
      }, snapshotIdleTimeoutMs).unref(),
    };
    incoming.set(id, transfer);
    pendingSnapshotBytes += total;
    return body.subarray(metaBytes);
  }

  function handleChunk(req: FastifyRequest): void {
    const id = headerString(req, HEADER_SNAPSHOT_ID);
    if (id === undefined || id.length === 0 || id.length > 128) {
      throw new TransportError('bad_message', `header ${HEADER_SNAPSHOT_ID} missing or too long`);
    }
    const offset = headerCount(req, HEADER_SNAPSHOT_OFFSET);
    const total = headerCount(req, HEADER_SNAPSHOT_TOTAL);
    const body = bodyBytes(req);
    const chunk = offset === 0 ? startTransfer(req, id, total, body) : body;
    const transfer = incoming.get(id);
    if (transfer === undefined) {
      throw new TransportError('snapshot_out_of_order', `no snapshot transfer ${id} in progress`);
    }
    if (chunk.byteLength > maxSnapshotChunkBytes) {
      forget(transfer);
      throw new TransportError('too_large', `snapshot chunk of ${chunk.byteLength} bytes`);
    }
    if (offset !== transfer.received || total !== transfer.data.byteLength) {
      forget(transfer);
      throw new TransportError(
        'snapshot_out_of_order',
        `chunk at ${offset}/${total}, expected ${transfer.received}/${transfer.data.byteLength}`,
      );
    }
    if (transfer.received + chunk.byteLength > total) {
      forget(transfer);
      throw new TransportError('bad_message', 'snapshot chunk past the announced total');
    }
    transfer.data.set(chunk, transfer.received);
    transfer.received += chunk.byteLength;
    transfer.idleTimer.refresh();
    if (stats) stats.snapshotChunksReceived++;

    if (transfer.received === total) {
      forget(transfer);
      const m = transfer.message;
      if (stats) stats.snapshotsReceived++;
      deliver({ ...m, snapshot: { metadata: m.snapshot!.metadata, data: transfer.data } });
    }
  }

  // Ours, whatever the parent registered for this type: the body stays raw bytes.
  if (app.hasContentTypeParser(CONTENT_TYPE_BINARY))
    app.removeContentTypeParser(CONTENT_TYPE_BINARY);
  app.addContentTypeParser(CONTENT_TYPE_BINARY, { parseAs: 'buffer' }, (_req, body, done) => {
    done(null, body);
  });

  app.addHook('onRequest', (req, reply, done) => {
    if (req.headers[HEADER_CLUSTER_ID] !== clusterId) {
      reply
        .code(403)
        .send({ code: 'wrong_cluster', message: `not a member of cluster ${clusterId}` });
      return;
    }
    done();
  });

  app.addHook('onClose', (_instance, done) => {
    for (const transfer of [...incoming.values()]) forget(transfer);
    done();
  });

  app.setErrorHandler((err: Error & { statusCode?: number; code?: string }, _req, reply) => {
    if (err instanceof TransportError) {
      reply.code(transportErrorStatus[err.code]).send({ code: err.code, message: err.message });
      return;
    }
    const status = err.statusCode ?? 500;
    if (status >= 500) app.log.error({ err }, 'peer route failed');
    reply.code(status).send({
      code: status === 413 ? 'too_large' : (err.code ?? 'internal'),
      message: err.message,
    });
  });

  /** Decodes and delivers one batch; throws, delivering nothing, if any of it is bad. */
  function receiveBatch(bytes: Uint8Array): void {
    const messages = decodeBatch(bytes);
    for (const m of messages) {
      checkAddressee(m);
      refuseRemoved(m.from);
    }
    if (stats) {
      stats.batchesReceived++;
      stats.messagesReceived += messages.length;
    }
    for (const m of messages) deliver(m);
  }

  const streams = acceptMessageStreams(app.server, {
    clusterId,
    clusterIdHeader: HEADER_CLUSTER_ID,
    maxFrameBytes: maxBatchBytes,
    refuse: (req) => {
      const from = req.headers[HEADER_MEMBER_ID];
      if (typeof from !== 'string' || !isRemoved?.(from)) return undefined;
      return {
        status: 410,
        code: 'member_removed',
        message: `member ${from} was removed from the cluster`,
      };
    },
    onFrame: (frame: Frame) => {
      if (frame.kind === FRAME_RAFT) receiveBatch(frame.payload);
      else if (frame.kind >= FRAME_APP_MIN && onAppFrame) onAppFrame(frame.kind, frame.payload);
      else throw new TransportError('bad_message', `unknown frame kind ${frame.kind}`);
    },
    onBadStream: (err) => app.log.warn({ err }, 'closed a peer stream that sent a bad frame'),
  });
  // Before the server closes: it waits for every connection, and these never end by themselves.
  app.addHook('preClose', (done) => {
    streams.close();
    done();
  });

  app.post(
    PATH_MESSAGES,
    { bodyLimit: maxBatchBytes },
    (req: FastifyRequest, reply: FastifyReply) => {
      receiveBatch(bodyBytes(req));
      reply.code(204).send();
    },
  );

  app.post(
    PATH_SNAPSHOT,
    // The first chunk also carries the metadata message; 1 MiB covers any membership.
    { bodyLimit: maxSnapshotChunkBytes + MIB },
    (req: FastifyRequest, reply: FastifyReply) => {
      handleChunk(req);
      reply.code(204).send();
    },
  );

  app.get(PATH_HEALTH, (_req: FastifyRequest, reply: FastifyReply) => {
    reply.send({ status: 'ok', nodeId: nodeId ?? null });
  });
};
