/**
 * The watch iterator against scripted SSE servers: reconnection with
 * Last-Event-ID after a drop or `event: closed`, no duplicate and no gap,
 * progress, compaction, and ending it.
 */
import type { ServerResponse } from 'node:http';
import t from 'tap';
import { Client, RaftkvError, type WatchResponse } from '../../src/client/index.js';
import { fakeServer, type SeenRequest, sendJson } from './helpers.js';

const change = (revision: number, key = 'w/a') => ({
  revision,
  events: [
    {
      type: 'put',
      kv: {
        key,
        value: `v${revision}`,
        createRevision: 1,
        modRevision: revision,
        version: revision,
        lease: null,
      },
    },
  ],
});

function sse(res: ServerResponse, event: string, data: unknown, id?: number): void {
  res.write(
    `event: ${event}\n${id !== undefined ? `id: ${id}\n` : ''}data: ${JSON.stringify(data)}\n\n`,
  );
}

function openStream(res: ServerResponse): void {
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
  res.flushHeaders();
}

/** Collects up to `n` items (or until the iterator ends or throws). */
async function take(
  it: AsyncIterable<WatchResponse>,
  n: number,
): Promise<{ items: WatchResponse[]; error?: unknown }> {
  const items: WatchResponse[] = [];
  try {
    for await (const item of it) {
      items.push(item);
      if (items.length >= n) break;
    }
  } catch (error) {
    return { items, error };
  }
  return { items };
}

t.test(
  'reconnects after a drop and after event: closed, with no duplicate and no gap',
  async (t) => {
    // Endpoint A: 1, 2, progress 4, then the connection dies mid-event.
    const a = await fakeServer((req, res) => {
      openStream(res);
      sse(res, 'change', change(1), 1);
      sse(res, 'change', change(2), 2);
      sse(res, 'progress', { revision: 4 });
      res.write('event: change\nid: 5\ndata: {"revi'); // never completed
      setTimeout(() => res.socket?.destroy(), 20);
      void req;
    });
    // Endpoint B: resumed after 4; replays 2 (a duplicate to drop), sends 6, then closes at 8.
    const b = await fakeServer((_req, res) => {
      openStream(res);
      sse(res, 'change', change(2), 2);
      sse(res, 'change', change(6), 6);
      sse(res, 'closed', { reason: 'shutdown', revision: 8 });
      res.end();
    });
    // Back to A's address? No: endpoint C, which says the resume point is compacted.
    const c = await fakeServer((_req, res) => {
      openStream(res);
      sse(res, 'compacted', { compactRevision: 12 });
      res.end();
    });
    t.teardown(() => Promise.all([a.close(), b.close(), c.close()]));
    const client = new Client({ endpoints: [a.url, b.url, c.url], backoffMs: 1 });
    t.teardown(() => client.close());

    const w = client.watch('w/', { prefix: true, prevKv: true, fromRevision: 1, progress: true });
    const { items, error } = await take(w, 100);
    t.strictSame(
      items.map((i) => [i.revision, i.events.length, i.progress ?? false]),
      [
        [1, 1, false],
        [2, 1, false],
        [4, 0, true],
        [6, 1, false],
      ],
      'each revision once, progress exposed as an empty response',
    );
    t.ok(error instanceof RaftkvError);
    t.match(error, { code: 'compacted', compactRevision: 12 });
    t.equal(w.connections, 3);

    const first = a.requests[0] as SeenRequest;
    t.equal(first.url, '/v1/watch/w/?prefix=true&prevKv=true&fromRevision=1');
    t.equal(first.headers['last-event-id'], undefined);
    t.equal(first.headers.accept, 'text/event-stream');
    t.equal(b.requests[0]!.url, '/v1/watch/w/?prefix=true&prevKv=true', 'resume via the header');
    t.equal(b.requests[0]!.headers['last-event-id'], '4', 'after the progress revision');
    t.equal(c.requests[0]!.headers['last-event-id'], '8', 'after the closed revision');
  },
);

t.test('without fromRevision: starts after a linearizable read’s revision', async (t) => {
  const srv = await fakeServer((req, res) => {
    if (req.url.startsWith('/v1/kv'))
      return sendJson(res, 200, { kvs: [], more: false, revision: 41 });
    openStream(res);
    sse(res, 'change', change(42, 'cfg'), 42);
  });
  t.teardown(() => srv.close());
  const client = new Client({ endpoints: [srv.url] });
  t.teardown(() => client.close());
  const { items } = await take(client.watch('cfg'), 1);
  t.equal(items[0]!.revision, 42);
  t.strictSame(
    srv.requests.map((r) => r.url),
    ['/v1/kv?prefix=cfg&limit=1&keysOnly=true', '/v1/watch/cfg?fromRevision=42'],
  );
});

t.test('progress is skipped unless asked for; 503 at connect fails over', async (t) => {
  const down = await fakeServer((_req, res) =>
    sendJson(
      res,
      503,
      { error: { code: 'unavailable', message: 'no leader' } },
      { 'retry-after': '1' },
    ),
  );
  const up = await fakeServer((_req, res) => {
    openStream(res);
    sse(res, 'progress', { revision: 3 });
    sse(res, 'change', change(5), 5);
  });
  t.teardown(() => Promise.all([down.close(), up.close()]));
  const client = new Client({ endpoints: [down.url, up.url] });
  t.teardown(() => client.close());
  const w = client.watch('w/a', { fromRevision: 2 });
  const { items } = await take(w, 1);
  t.strictSame(items, [change(5)]);
  t.equal(w.endpoint, up.url);
  t.equal(w.revision, 5);
});

t.test('a definite error at connect is thrown, not retried', async (t) => {
  const srv = await fakeServer((_req, res) =>
    sendJson(res, 400, { error: { code: 'invalid_request', message: 'watch a key' } }),
  );
  t.teardown(() => srv.close());
  const client = new Client({ endpoints: [srv.url] });
  t.teardown(() => client.close());
  const { error } = await take(client.watch('', { fromRevision: 1 }), 1);
  t.match(error, { code: 'invalid_request', status: 400 });
  t.equal(srv.requests.length, 1);
  t.equal(srv.requests[0]!.url, '/v1/watch?fromRevision=1');
});

t.test('close(), the signal, and client.close() end a waiting watch quietly', async (t) => {
  const srv = await fakeServer((_req, res) => {
    openStream(res);
    sse(res, 'change', change(1), 1);
    // then silence
  });
  t.teardown(() => srv.close());
  const client = new Client({ endpoints: [srv.url] });

  const w1 = client.watch('w/a', { fromRevision: 1 });
  t.equal((await w1.next()).value?.revision, 1);
  const pending = w1.next();
  setTimeout(() => w1.close(), 50);
  t.strictSame(await pending, { value: undefined, done: true }, 'close() ends next()');
  t.ok(w1.closed);

  const controller = new AbortController();
  const w2 = client.watch('w/a', { fromRevision: 1, signal: controller.signal });
  setTimeout(() => controller.abort(), 100);
  const got = await take(w2, 100);
  t.equal(got.items.length, 1);
  t.equal(got.error, undefined, 'an abort is not an error');

  const w3 = client.watch('w/a', { fromRevision: 1 });
  await w3.next();
  const waiting = w3.next();
  await client.close();
  t.strictSame(await waiting, { value: undefined, done: true }, 'client.close() ends watches');
});

t.test('gives up with unavailable when no endpoint accepts the stream', async (t) => {
  const srv = await fakeServer((_req, res) => {
    res.socket?.destroy();
  });
  t.teardown(() => srv.close());
  const client = new Client({ endpoints: [srv.url], retries: 2, backoffMs: 1 });
  t.teardown(() => client.close());
  const { error } = await take(client.watch('k', { fromRevision: 1 }), 1);
  t.match(error, { code: 'unavailable' });
  t.equal(srv.requests.length, 3);
});

t.test('a stream silent for longer than the idle timeout is reconnected', async (t) => {
  let n = 0;
  const srv = await fakeServer((_req, res) => {
    n++;
    openStream(res);
    if (n === 1)
      sse(res, 'change', change(1), 1); // then silence: the client must give up on it
    else sse(res, 'change', change(2), 2);
  });
  t.teardown(() => srv.close());
  const client = new Client({ endpoints: [srv.url], watchIdleTimeoutMs: 200 });
  t.teardown(() => client.close());
  const { items } = await take(client.watch('k', { fromRevision: 1 }), 2);
  t.strictSame(
    items.map((i) => i.revision),
    [1, 2],
  );
  t.equal(srv.requests[1]!.headers['last-event-id'], '1');
});
