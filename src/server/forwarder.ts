import type { FastifyInstance } from 'fastify';
import { Pool } from 'undici';
import type { Command } from '../kv/commands.js';
import type { CommandResult } from '../kv/results.js';
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

/**
 * Forwards writes from a follower to the leader over the peer port, so any
 * node serves any request. The outcome rules of API.md hold across the hop:
 * a failure before the request left is "not applied" (503), a failure after
 * it left is "unknown" (504).
 */
export class Forwarder {
  private readonly pools = new Map<string, Pool>();

  constructor(private readonly clusterId: string) {}

  async forward(
    leaderPeerUrl: string,
    write: ForwardedWrite,
    signal: AbortSignal,
  ): Promise<CommandResult> {
    const pool = this.poolFor(leaderPeerUrl);
    let sent = false;
    try {
      const res = await pool.request({
        method: 'POST',
        path: PATH_PROPOSE,
        headers: { 'content-type': 'application/json', 'x-raftkv-cluster-id': this.clusterId },
        body: JSON.stringify(write),
        signal,
        headersTimeout: write.timeoutMs + 1000,
        bodyTimeout: write.timeoutMs + 1000,
      });
      sent = true;
      const reply = (await res.body.json()) as ForwardReply;
      if ('result' in reply) return reply.result;
      throw new ServerError(reply.error.code, reply.error.message);
    } catch (err) {
      if (err instanceof ServerError) throw err;
      const e = err as { code?: string };
      const neverLeft =
        !sent &&
        (e.code === 'ECONNREFUSED' ||
          e.code === 'UND_ERR_CONNECT_TIMEOUT' ||
          e.code === 'ENOTFOUND');
      if (neverLeft) {
        throw new ServerError('unavailable', 'the leader could not be reached', {
          retryAfterSeconds: 1,
          cause: err,
        });
      }
      throw new ServerError(
        'timeout',
        'the leader did not answer in time: the write may or may not have been applied',
        {
          cause: err,
        },
      );
    }
  }

  /** Asks the leader for lease views (only it knows the deadlines). */
  async leases(
    leaderPeerUrl: string,
    id: string | undefined,
    signal: AbortSignal,
  ): Promise<LeaseViewWire[]> {
    try {
      const res = await this.poolFor(leaderPeerUrl).request({
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
      const write = req.body as ForwardedWrite;
      try {
        return { result: await propose(write) } satisfies ForwardReply;
      } catch (err) {
        if (err instanceof ServerError) {
          // The leader changed under us: the caller must not treat it as "unknown" when it was never proposed.
          const code = err.code === 'not_leader' ? 'unavailable' : err.code;
          return { error: { code, message: err.message } } satisfies ForwardReply;
        }
        throw err;
      }
    });
  };
}
