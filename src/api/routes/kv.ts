import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { ErrorResult } from '../../kv/results.js';
import type { Need } from '../access.js';
import { ApiError, sendError } from '../errors.js';
import {
  boolParam,
  consistencyParam,
  intParam,
  keyParam,
  type Query,
  rejectUnknown,
  stringParam,
  timedWriteOptionsOf,
  writeOptionsOf,
} from '../params.js';
import { routeDoc } from '../route-docs.js';
import {
  compactBody,
  deleteReply,
  getReply,
  putBody,
  putReply,
  rangeReply,
  txnBody,
  txnReply,
} from '../schemas.js';
import type { ApiService, ReadOptions, TxnRequest } from '../service.js';

function isError<T extends object>(result: T | ErrorResult): result is ErrorResult {
  return (result as { ok?: unknown }).ok === false;
}

/** A KV ErrorResult as API.md's body: the code's status, plus revision and kv where it carries them. */
function sendResultError(reply: FastifyReply, r: ErrorResult): FastifyReply {
  const extra: Record<string, unknown> = { revision: r.revision };
  if (r.kv !== undefined) extra.kv = r.kv;
  if (r.compactRevision !== undefined) extra.compactRevision = r.compactRevision;
  if (r.code === 'future_revision') return sendError(reply, 'invalid_request', r.message, extra);
  return sendError(reply, r.code, r.message, extra);
}

const writeOptions = writeOptionsOf;

/** A key path's key, or with `prefix=true` the prefix it names ('' = every user key). */
function keyOrPrefix(req: FastifyRequest): string {
  return boolParam(req.query as Query, 'prefix')
    ? userPrefix((req.params as { '*'?: string })['*'] ?? '')
    : keyParam(req.params);
}

/** API.md: a txn needs read for its compares and gets, write for its puts and deletes, read on a fenced lock. */
function txnNeeds(req: FastifyRequest): Need[] {
  const body = (req.body ?? {}) as Partial<TxnRequest>;
  const needs: Need[] = [];
  for (const c of body.compare ?? [])
    needs.push(
      'lock' in c
        ? { resource: 'locks', key: c.lock, access: 'read' }
        : { resource: 'kv', key: c.key, access: 'read' },
    );
  for (const op of [...(body.success ?? []), ...(body.failure ?? [])]) {
    needs.push({ resource: 'kv', key: op.key, access: op.op === 'get' ? 'read' : 'write' });
    if (op.op === 'put' && op.lease !== undefined) needs.push({ lease: op.lease });
  }
  return needs;
}

function readOptions(query: Query, service: ApiService): ReadOptions {
  // Parsed in this order so that the first bad parameter named in a 400 stays the same.
  const revision = intParam(query, 'revision', 1);
  const minRevision = intParam(query, 'minRevision', 0);
  const opts: ReadOptions = {
    consistency: consistencyParam(query),
    signal: service.requestDeadline(),
  };
  if (revision !== undefined) opts.revision = revision;
  if (minRevision !== undefined) opts.minRevision = minRevision;
  return opts;
}

/** Keys starting with U+0000 belong to the registry, locks and elections: not reachable through /v1/kv or /v1/txn. */
function userPrefix(prefix: string): string {
  if (prefix.startsWith('\u0000'))
    throw new ApiError('invalid_request', 'keys starting with U+0000 are reserved');
  return prefix;
}

function rejectReservedTxnKeys(body: Partial<TxnRequest>): void {
  const keys = [
    ...(body.compare ?? []).map((c) => ('key' in c ? c.key : '')),
    ...(body.success ?? []).map((o) => o.key),
    ...(body.failure ?? []).map((o) => o.key),
  ];
  for (const key of keys) userPrefix(key);
}

export function kvRoutes(service: ApiService) {
  return async function routes(app: FastifyInstance): Promise<void> {
    app.get(
      '/v1/kv/*',
      {
        schema: {
          ...routeDoc('kv', 'Read one key', {
            description: 'A missing key is 404 `key_not_found`, with `revision` in the body too.',
            queryParams: ['revision', 'consistency', 'minRevision'],
          }),
          response: { 200: getReply },
        },
        config: {
          access: (req) => [{ resource: 'kv', key: keyParam(req.params), access: 'read' }],
        },
      },
      async (req, reply) => {
        const query = req.query as Query;
        rejectUnknown(query, ['revision', 'consistency', 'minRevision']);
        const key = keyParam(req.params);
        const result = await service.get(key, readOptions(query, service));
        if (isError(result)) return sendResultError(reply, result);
        if (result.kv === null)
          return sendError(reply, 'key_not_found', `key "${key}" not found`, {
            revision: result.revision,
          });
        return { kv: result.kv, revision: result.revision };
      },
    );

    app.get(
      '/v1/kv',
      {
        schema: {
          ...routeDoc('kv', 'List keys by prefix, sorted by key', {
            queryParams: [
              'prefix',
              'limit',
              'after',
              'keysOnly',
              'revision',
              'consistency',
              'minRevision',
            ],
          }),
          response: { 200: rangeReply },
        },
        config: {
          access: (req) => [
            {
              resource: 'kv',
              key: userPrefix(stringParam(req.query as Query, 'prefix') ?? ''),
              access: 'read',
            },
          ],
        },
      },
      async (req, reply) => {
        const query = req.query as Query;
        rejectUnknown(query, [
          'prefix',
          'limit',
          'after',
          'keysOnly',
          'revision',
          'consistency',
          'minRevision',
        ]);
        const limit = intParam(query, 'limit', 1);
        const after = stringParam(query, 'after');
        const revision = intParam(query, 'revision', 1);
        const result = await service.range(
          {
            prefix: userPrefix(stringParam(query, 'prefix') ?? ''),
            keysOnly: boolParam(query, 'keysOnly'),
            ...(limit !== undefined ? { limit } : {}),
            ...(after !== undefined ? { after } : {}),
            ...(revision !== undefined ? { revision } : {}),
          },
          readOptions(query, service),
        );
        if (isError(result)) return sendResultError(reply, result);
        return result;
      },
    );

    app.put(
      '/v1/kv/*',
      {
        schema: {
          ...routeDoc('kv', 'Write one key', {
            description:
              '`prevRevision` (0: the key must not exist) and `prevValue` are compare-and-swap guards: a false one is 409 `compare_failed` with the current `kv` and `revision`. An `Idempotency-Key` header makes retries safe.',
          }),
          body: putBody,
          response: { 200: putReply },
        },
        config: {
          access: (req) => {
            const body = req.body as { lease?: string; prevRevision?: number; prevValue?: string };
            const key = keyParam(req.params);
            const guarded = body.prevRevision !== undefined || body.prevValue !== undefined;
            return [
              { resource: 'kv', key, access: 'write' },
              // A guard is a compare, and compares need read: a false one answers with the value.
              ...(guarded ? [{ resource: 'kv' as const, key, access: 'read' as const }] : []),
              ...(body.lease !== undefined ? [{ lease: body.lease }] : []),
            ];
          },
        },
      },
      async (req, reply) => {
        rejectUnknown(req.query as Query, []);
        const key = keyParam(req.params);
        const body = req.body as {
          value: string;
          lease?: string;
          prevRevision?: number;
          prevValue?: string;
        };
        const result = await service.put({ key, ...body }, timedWriteOptionsOf(req, service));
        if (isError(result)) return sendResultError(reply, result);
        return { revision: result.revision, kv: result.kv, prevKv: result.prevKv };
      },
    );

    app.delete(
      '/v1/kv/*',
      {
        schema: {
          ...routeDoc('kv', 'Delete a key, or with prefix=true every key under a prefix', {
            queryParams: ['prefixFlag', 'prevRevision'],
          }),
          response: { 200: deleteReply },
        },
        config: {
          access: (req) => {
            const key = keyOrPrefix(req);
            // A guard is a compare, and compares need read: a false one answers with the value.
            const guarded = (req.query as Query).prevRevision !== undefined;
            return [
              { resource: 'kv', key, access: 'write' },
              ...(guarded ? [{ resource: 'kv' as const, key, access: 'read' as const }] : []),
            ];
          },
        },
      },
      async (req, reply) => {
        const query = req.query as Query;
        rejectUnknown(query, ['prefix', 'prevRevision']);
        const prefix = boolParam(query, 'prefix');
        const prevRevision = intParam(query, 'prevRevision', 0);
        // A guard names one key's modRevision: it means nothing for a range (the state machine
        // would reject it too, but only after a round through the Raft log).
        if (prefix && prevRevision !== undefined)
          throw new ApiError('invalid_request', 'prevRevision cannot be combined with prefix=true');
        const key = prefix
          ? userPrefix((req.params as { '*'?: string })['*'] ?? '')
          : keyParam(req.params);
        const result = await service.delete(
          { key, prefix, ...(prevRevision !== undefined ? { prevRevision } : {}) },
          timedWriteOptionsOf(req, service),
        );
        if (isError(result)) return sendResultError(reply, result);
        return { deleted: result.deleted, revision: result.revision, prevKvs: result.prevKvs };
      },
    );

    app.post(
      '/v1/txn',
      {
        schema: {
          ...routeDoc('kv', 'Atomic transaction: compares, then the success or failure ops', {
            description:
              'All compares and ops see one revision and all ops land in one revision. A compare may be a fence `{"lock", "token"}`: true only while that lock holder holds the lock.',
          }),
          body: txnBody,
          response: { 200: txnReply },
        },
        config: { access: txnNeeds },
      },
      async (req, reply) => {
        rejectUnknown(req.query as Query, []);
        const body = (req.body ?? {}) as Partial<TxnRequest>;
        rejectReservedTxnKeys(body);
        const result = await service.txn(
          { compare: body.compare ?? [], success: body.success ?? [], failure: body.failure ?? [] },
          timedWriteOptionsOf(req, service),
        );
        if (isError(result)) return sendResultError(reply, result);
        return { succeeded: result.succeeded, revision: result.revision, results: result.results };
      },
    );

    app.post(
      '/v1/compact',
      {
        schema: { ...routeDoc('kv', 'Drop the history before a revision'), body: compactBody },
        config: { access: 'root' },
      },
      async (req, reply) => {
        rejectUnknown(req.query as Query, []);
        const { revision } = req.body as { revision: number };
        const result = await service.compact(revision, writeOptions(req, service));
        if (isError(result)) return sendResultError(reply, result);
        return { revision: result.revision, compactRevision: result.compactRevision };
      },
    );
  };
}
