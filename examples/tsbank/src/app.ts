/**
 * TSBank's HTTP API (fastify). Routes translate HTTP to the modules beside
 * this one and nothing else; every failure is a BankError answered through
 * one table (errors.ts).
 *
 *   POST /accounts            {"id", "initialCents"}            → 201 account
 *   GET  /accounts            → {"accounts": [...], "revision"}
 *   GET  /accounts/:id        → {"id", "balanceCents", "revision"}
 *   GET  /accounts/:id/live   → Server-Sent Events of its balance
 *   POST /transfers           Idempotency-Key: <transfer id>
 *                             {"from", "to", "amountCents"}     → 200 {"transfer", "revision", "replayed"}
 *   GET  /transfers/:id       → {"transfer", "revision"}
 *   GET  /instances           → who is up (registry) and who pays interest (election)
 *   GET  /audit               → do the books balance?
 *   GET  /health
 */
import Fastify, { type FastifyInstance } from 'fastify';
import { checkAccountId, listAccounts, openAccount, readAccount } from './accounts.js';
import { audit } from './audit.js';
import { BankError, fromRaftkv } from './errors.js';
import type { InterestJob } from './interest.js';
import { INTEREST_ELECTION, isValidId } from './keys.js';
import { LiveBalances } from './live.js';
import type { Membership } from './membership.js';
import { parseCents } from './money.js';
import { type Client, isRaftkvError } from './raftkv.js';
import { readTransfer, transfer } from './transfers.js';

export interface BankAppDeps {
  client: Client;
  instance: string;
  membership: Membership;
  interest: InterestJob;
}

export function buildBankApp(deps: BankAppDeps): FastifyInstance {
  const { client, instance, membership, interest } = deps;
  const app = Fastify({ logger: false });
  const live = new LiveBalances(client);

  app.setErrorHandler((err, _req, reply) => {
    const bankErr =
      err instanceof BankError
        ? err
        : (err as { validation?: unknown }).validation !== undefined ||
            (err as { statusCode?: number }).statusCode === 400
          ? new BankError('invalid_request', String((err as Error).message))
          : undefined;
    if (bankErr)
      return reply
        .status(bankErr.status)
        .send({ error: { code: bankErr.code, message: bankErr.message } });
    return reply.status(500).send({ error: { code: 'internal', message: String(err) } });
  });

  app.get('/health', async () => ({ status: 'ok', instance }));

  app.post('/accounts', async (req, reply) => {
    const body = objectBody(req.body);
    const id = checkAccountId(body.id, 'id');
    const initialCents = parseCents(body.initialCents, 'initialCents', 0);
    const opened = await openAccount(client, id, initialCents);
    return reply.status(201).send({ ...opened.account, revision: opened.revision });
  });

  app.get('/accounts', async () => listAccounts(client));

  app.get<{ Params: { id: string } }>('/accounts/:id', async (req) => {
    const { account, revision } = await readAccount(client, checkAccountId(req.params.id));
    return { ...account, revision };
  });

  app.get<{ Params: { id: string } }>('/accounts/:id/live', async (req, reply) =>
    live.serve(checkAccountId(req.params.id), req, reply),
  );

  app.post('/transfers', async (req) => {
    const id = req.headers['idempotency-key'];
    if (typeof id !== 'string' || !isValidId(id))
      throw new BankError(
        'invalid_request',
        'the Idempotency-Key header names the transfer: 1 to 64 of A-Z a-z 0-9 . _ -',
      );
    const body = objectBody(req.body);
    return transfer(
      client,
      {
        id,
        from: checkAccountId(body.from, 'from'),
        to: checkAccountId(body.to, 'to'),
        amountCents: parseCents(body.amountCents, 'amountCents', 1),
      },
      instance,
    );
  });

  app.get<{ Params: { id: string } }>('/transfers/:id', async (req) => {
    if (!isValidId(req.params.id)) throw new BankError('invalid_request', 'not a transfer id');
    const found = await readTransfer(client, req.params.id);
    if (!found) throw new BankError('transfer_not_found', `no transfer ${req.params.id}`);
    return found;
  });

  app.get('/instances', async () => {
    try {
      const peers = await membership.peers();
      const leader = await client.leader(INTEREST_ELECTION).catch((err: unknown) => {
        if (isRaftkvError(err, 'no_leader_elected')) return undefined;
        throw err;
      });
      return {
        ...peers,
        interestLeader: leader?.value ?? null,
        self: { instance, leadingInterest: interest.leading, nightsPaid: interest.paidNights },
        liveStreams: live.streams,
      };
    } catch (err) {
      throw fromRaftkv(err, false);
    }
  });

  app.get('/audit', async () => audit(client));

  return app;
}

function objectBody(body: unknown): Record<string, unknown> {
  if (typeof body !== 'object' || body === null || Array.isArray(body))
    throw new BankError('invalid_request', 'the body must be a JSON object');
  return body as Record<string, unknown>;
}
