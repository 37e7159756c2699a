import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { RevisionChange } from '../../kv/mvcc/key-value.js';
import { type Need, stillPermitted } from '../access.js';
import { ApiError } from '../errors.js';
import { boolParam, intParam, type Query, rejectUnknown } from '../params.js';
import { routeDoc } from '../route-docs.js';
import type { ApiService, WatchRequest } from '../service.js';

/** `Last-Event-ID: R` resumes after R. */
function resumeFrom(req: FastifyRequest): number | undefined {
  const raw = req.headers['last-event-id'];
  if (raw === undefined) return undefined;
  if (Array.isArray(raw) || !/^\d+$/.test(raw))
    throw new ApiError('invalid_request', 'Last-Event-ID must be a revision');
  return Number(raw) + 1;
}

/** Streams API.md's Server-Sent Events for one watch until the client or the server ends it. */
export async function streamWatch(
  service: ApiService,
  req: FastifyRequest,
  reply: FastifyReply,
  watch: WatchRequest,
  /** What a change event carries; undefined skips the change (e.g. an election whose leader did not change). */
  render: (change: RevisionChange) => unknown = (c) => c,
  /** An event sent first, before any change (e.g. the current election leader). */
  first?: { event: string; data: unknown; id?: number },
): Promise<void> {
  const res = reply.raw;
  let handle: { cancel(): void } | undefined;
  // Events may come before the headers are out (history replay): hold them until then.
  let pending: string[] | undefined = [];
  let ended = false;
  let stopAuthWatch: (() => void) | undefined;
  const end = () => {
    if (ended) return;
    ended = true;
    handle?.cancel();
    stopAuthWatch?.();
    if (pending) return; // headers not sent yet: finished below
    res.end();
  };
  const write = (event: string, data: unknown, id?: number) => {
    if (ended) return;
    const chunk = `event: ${event}\n${id !== undefined ? `id: ${id}\n` : ''}data: ${JSON.stringify(data)}\n\n`;
    if (pending) pending.push(chunk);
    else res.write(chunk);
  };
  // Open the stream only once the server accepted the watch, so errors still get a JSON body.
  if (first) write(first.event, first.data, first.id);
  // API.md: a stream whose user loses the permission ends, and says why.
  stopAuthWatch = service.onAuthChange(() => {
    if (ended || stillPermitted(service, req)) return;
    write('closed', { reason: 'permission_revoked', revision: service.currentRevision() });
    end();
  });
  try {
    handle = await service.watch(watch, {
      change: (change) => {
        const data = render(change);
        if (data !== undefined) write('change', data, change.revision);
      },
      progress: (revision) => write('progress', { revision }),
      compacted: (compactRevision) => {
        write('compacted', { compactRevision });
        end();
      },
      closed: (reason, revision) => {
        write('closed', { reason, revision });
        end();
      },
      bufferedBytes: () => res.writableLength + (pending?.length ?? 0) * 256,
    });
  } catch (err) {
    stopAuthWatch();
    throw err;
  }
  reply.hijack();
  res.writeHead(200, {
    'content-type': 'text/event-stream',
    'cache-control': 'no-cache',
    connection: 'keep-alive',
    'x-accel-buffering': 'no',
  });
  for (const chunk of pending ?? []) res.write(chunk);
  pending = undefined;
  if (ended) {
    res.end();
    return;
  }
  res.flushHeaders();
  req.raw.on('close', end);
  res.on('error', end);
}

export function watchRoutes(service: ApiService) {
  return async function routes(app: FastifyInstance): Promise<void> {
    const handler = async (req: FastifyRequest, reply: FastifyReply) => {
      const query = req.query as Query;
      rejectUnknown(query, ['prefix', 'fromRevision', 'prevKv']);
      const key = (req.params as { '*'?: string })['*'] ?? '';
      const prefix = boolParam(query, 'prefix');
      if (key === '' && !prefix)
        throw new ApiError('invalid_request', 'watch a key, or use prefix=true');
      if (key.startsWith('\u0000'))
        throw new ApiError('invalid_request', 'keys starting with U+0000 are reserved');
      // Both are validated; Last-Event-ID (a reconnecting EventSource) wins over fromRevision.
      const fromParam = intParam(query, 'fromRevision', 1);
      const fromRevision = resumeFrom(req) ?? fromParam;
      await streamWatch(service, req, reply, {
        key,
        prefix,
        prevKv: boolParam(query, 'prevKv'),
        ...(fromRevision !== undefined ? { fromRevision } : {}),
      });
    };
    // API.md: a watch needs read on every key it can return (for a prefix, on the prefix).
    const access = (req: FastifyRequest): Need[] => {
      const key = (req.params as { '*'?: string })['*'] ?? '';
      return [{ resource: 'kv', key, access: 'read' }];
    };
    const schema = routeDoc('watch', 'Watch a key or prefix (Server-Sent Events)', {
      description:
        'One `change` event per revision that touches the range, in order, without gaps; `progress` at least every 10 s while idle; `compacted` or `closed` before the server ends the stream. `Last-Event-ID: R` resumes after R.',
      produces: ['text/event-stream'],
      queryParams: ['prefixFlag', 'fromRevision', 'prevKv'],
    });
    app.get('/v1/watch/*', { schema, config: { access } }, handler);
    app.get(
      '/v1/watch',
      {
        schema: { ...schema, summary: 'Watch every key (prefix=true, Server-Sent Events)' },
        config: { access },
      },
      handler,
    );
  };
}
