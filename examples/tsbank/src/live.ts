/**
 * GET /accounts/:id/live: an account's balance as Server-Sent Events, fed by
 * a raftkv watch rather than by polling. The first event is the balance now
 * (a linearizable read at revision R); the watch starts at R + 1, so no
 * change is missed between the read and the watch and none is told twice.
 * The client library's watch resumes with Last-Event-ID when a raftkv member
 * goes away, so the stream rides out failovers. Each event's id is the
 * revision it describes; a reconnecting EventSource sends it back as
 * Last-Event-ID and gets the balance again, then changes after it.
 *
 *   event: balance
 *   id: 1234
 *   data: {"id": "alice", "balanceCents": 10000, "revision": 1234}
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import { readAccount } from './accounts.js';
import { BankError } from './errors.js';
import { accountKey } from './keys.js';
import { decodeCents } from './money.js';
import type { Client } from './raftkv.js';

/** Each watch is a connection to raftkv: bound how many an instance serves. */
export const LIVE_STREAMS_MAX = 64;

export class LiveBalances {
  private open = 0;

  constructor(private readonly client: Client) {}

  get streams(): number {
    return this.open;
  }

  async serve(id: string, req: FastifyRequest, reply: FastifyReply): Promise<void> {
    if (this.open >= LIVE_STREAMS_MAX)
      throw new BankError('busy', `at most ${LIVE_STREAMS_MAX} live streams per instance`);
    const { account, revision } = await readAccount(this.client, id);
    this.open += 1;
    const res = reply.raw;
    const watch = this.client.watch(accountKey(id), { fromRevision: revision + 1 });
    const end = () => {
      watch.close();
      if (!res.writableEnded) res.end();
    };
    reply.hijack();
    res.writeHead(200, {
      'content-type': 'text/event-stream',
      'cache-control': 'no-cache',
      connection: 'keep-alive',
    });
    const send = (balanceCents: number, at: number) =>
      res.write(
        `event: balance\nid: ${at}\ndata: ${JSON.stringify({ id, balanceCents, revision: at })}\n\n`,
      );
    send(account.balanceCents, revision);
    req.raw.on('close', end);
    try {
      for await (const change of watch) {
        for (const event of change.events) {
          if (event.type === 'put')
            send(decodeCents(event.kv.value, event.kv.key), change.revision);
        }
      }
    } catch (err) {
      res.write(`event: error\ndata: ${JSON.stringify({ message: String(err) })}\n\n`);
    } finally {
      this.open -= 1;
      end();
    }
  }
}
