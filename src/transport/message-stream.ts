/**
 * The message stream: one long-lived connection per ordered pair of nodes,
 * opened by the sender with an HTTP upgrade on the peer port and then used
 * one way, for frames (frames.ts). Replaces a POST and its 204 per batch: on
 * this kind of machine every socket write wakes another process and costs
 * about 0.1 ms, and Raft needs no per-batch answer (its answers are messages
 * of their own, which travel on the other node's stream).
 * ```
 * GET /raft/stream HTTP/1.1
 * connection: upgrade
 * upgrade: raftkv-raft/1
 * x-raftkv-cluster-id: <cluster id>
 * ```
 * The receiver answers 101 and only reads from then on; a foreign cluster id
 * gets 403, another path 404, another protocol 400, as a JSON error body like
 * the other peer routes. A sender that gets 404 talks to a node that predates
 * streams and falls back to POST /raft/messages (rolling upgrades).
 */
import { Buffer } from 'node:buffer';
import http, { type IncomingMessage, type Server, STATUS_CODES } from 'node:http';
import https from 'node:https';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type tls from 'node:tls';
import { TransportError } from './errors.js';
import { type Frame, FrameReader } from './frames.js';

export const PATH_STREAM = '/raft/stream';
export const STREAM_PROTOCOL = 'raftkv-raft/1';

/** How a dial ended: an open stream, or the peer's HTTP answer when it refused. */
export type DialOutcome =
  | { readonly socket: Socket }
  | { readonly refusedStatus: number; readonly body: string };

/**
 * Opens a stream to the peer port at `baseUrl` (http or https; an https one
 * with `tlsOptions`: the certificate to present and the CA to verify the
 * peer with). Rejects with TransportError `unreachable` on a connection error,
 * a TLS handshake that fails, or after `connectTimeoutMs`.
 */
export function dialMessageStream(
  baseUrl: string,
  clusterIdHeader: Readonly<Record<string, string>>,
  connectTimeoutMs: number,
  tlsOptions?: tls.ConnectionOptions,
): Promise<DialOutcome> {
  const url = new URL(baseUrl);
  const basePath = url.pathname.replace(/\/+$/, '');
  const client = url.protocol === 'https:' ? https : http;
  return new Promise((resolve, reject) => {
    const req = client.request({
      ...(url.protocol === 'https:' ? tlsOptions : undefined),
      host: url.hostname.replace(/^\[(.*)\]$/, '$1'),
      port: url.port || (url.protocol === 'https:' ? 443 : 80),
      path: basePath + PATH_STREAM,
      method: 'GET',
      agent: false,
      headers: { connection: 'Upgrade', upgrade: STREAM_PROTOCOL, ...clusterIdHeader },
    });
    const timer = setTimeout(() => {
      req.destroy(new TransportError('unreachable', `no stream after ${connectTimeoutMs} ms`));
    }, connectTimeoutMs);
    req.on('upgrade', (_res: IncomingMessage, socket: Socket) => {
      clearTimeout(timer);
      resolve({ socket });
    });
    req.on('response', (res: IncomingMessage) => {
      clearTimeout(timer);
      const parts: Buffer[] = [];
      let size = 0;
      res.on('data', (chunk: Buffer) => {
        if (size < 1024) parts.push(chunk);
        size += chunk.byteLength;
      });
      const done = () =>
        resolve({
          refusedStatus: res.statusCode ?? 0,
          body: Buffer.concat(parts).toString('utf8', 0, 1024),
        });
      res.on('end', done);
      res.on('error', done);
    });
    req.on('error', (err) => {
      clearTimeout(timer);
      reject(
        err instanceof TransportError
          ? err
          : new TransportError('unreachable', `stream not opened: ${err.message}`, { cause: err }),
      );
    });
    req.end();
  });
}

export interface AcceptStreamsOptions {
  clusterId: string;
  /** The header that carries the cluster id. */
  clusterIdHeader: string;
  maxFrameBytes: number;
  /** Each complete frame, in order. Throwing closes that stream. */
  onFrame: (frame: Frame) => void;
  /** A stream was closed because of what it sent. */
  onBadStream: (err: unknown) => void;
  /** A reason to refuse this sender's stream, after the cluster id check. */
  refuse?: (req: IncomingMessage) => { status: number; code: string; message: string } | undefined;
}

export interface StreamAcceptor {
  /** Streams open now. */
  readonly openStreams: number;
  /** Stops accepting and destroys the open streams. */
  close(): void;
}

/** Answers upgrade requests on `server`: message streams are accepted, anything else refused. */
export function acceptMessageStreams(server: Server, opts: AcceptStreamsOptions): StreamAcceptor {
  const open = new Set<Duplex>();

  const refuse = (socket: Duplex, status: number, code: string, message: string): void => {
    const body = JSON.stringify({ code, message });
    socket.end(
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nconnection: close\r\n` +
        `content-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    );
  };

  const onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    socket.on('error', () => {}); // a peer that vanishes is Raft's business, not a crash
    const path = (req.url ?? '').split('?')[0]!.replace(/\/+$/, '');
    if (!path.endsWith(PATH_STREAM)) {
      refuse(socket, 404, 'not_found', `no upgrade at ${path}`);
      return;
    }
    if (String(req.headers.upgrade ?? '').toLowerCase() !== STREAM_PROTOCOL) {
      refuse(socket, 400, 'bad_message', `upgrade protocol must be ${STREAM_PROTOCOL}`);
      return;
    }
    if (req.headers[opts.clusterIdHeader] !== opts.clusterId) {
      refuse(socket, 403, 'wrong_cluster', `not a member of cluster ${opts.clusterId}`);
      return;
    }
    const refusal = opts.refuse?.(req);
    if (refusal) {
      refuse(socket, refusal.status, refusal.code, refusal.message);
      return;
    }
    socket.write(
      `HTTP/1.1 101 Switching Protocols\r\nconnection: Upgrade\r\nupgrade: ${STREAM_PROTOCOL}\r\n\r\n`,
    );
    (socket as Socket).setNoDelay?.(true);
    open.add(socket);
    socket.on('close', () => open.delete(socket));
    const reader = new FrameReader(opts.maxFrameBytes);
    const onData = (chunk: Buffer): void => {
      try {
        reader.push(chunk, opts.onFrame);
      } catch (err) {
        opts.onBadStream(err);
        socket.off('data', onData);
        socket.destroy();
      }
    };
    socket.on('data', onData);
    if (head.byteLength > 0) onData(head);
  };

  server.on('upgrade', onUpgrade);
  return {
    get openStreams() {
      return open.size;
    },
    close() {
      server.off('upgrade', onUpgrade);
      for (const socket of open) socket.destroy();
      open.clear();
    },
  };
}
