/**
 * ClientOptions.signal, the deadline over everything a Client does: it cuts
 * a call short across all its retries and failovers, and the error says what
 * the last attempt met and whether a write may have been applied; it ends a
 * watch with that error instead of quietly; a watch reports each open stream
 * through onOpen. Against fake servers on 127.0.0.1.
 */
import t from 'tap';
import { Client, RaftkvError } from '../../src/client/index.js';
import { apiError, fakeServer } from './helpers.js';

/** A signal that aborts after `ms` with a `timeout` RaftkvError, like kvctl's deadline. */
function deadline(ms: number): AbortSignal {
  const controller = new AbortController();
  const timer = setTimeout(
    () => controller.abort(new RaftkvError('timeout', 'deadline reached')),
    ms,
  );
  timer.unref();
  controller.signal.addEventListener('abort', () => clearTimeout(timer));
  return controller.signal;
}

t.test('a write refused with 503, cut short while waiting to retry: "not applied"', async (t) => {
  // Retry-After 3 s: the deadline (1 s) falls in the wait after the first refusal.
  const server = await fakeServer((_req, res) =>
    apiError(res, 503, 'unavailable', {}, { 'retry-after': '3' }),
  );
  t.teardown(() => server.close());
  // Without the signal, these retries would go on for hours.
  const client = new Client({
    endpoints: [server.url],
    retries: 10_000,
    retryAfterMaxMs: 10_000,
    signal: deadline(1_000),
  });
  t.teardown(() => client.close());
  const err = await client.put('k', 'v').catch((e: unknown) => e);
  t.ok(err instanceof RaftkvError);
  t.match(err, {
    code: 'timeout',
    message:
      'deadline reached; last attempt: unavailable: fake unavailable (the write was not applied)',
  });
  t.equal(server.requests.length, 1, 'cut in the wait before the second attempt');
});

t.test('a write with no answer: cut short in flight, outcome unknown', async (t) => {
  const server = await fakeServer(() => {
    /* never answers */
  });
  t.teardown(() => server.close());
  const client = new Client({ endpoints: [server.url], signal: deadline(300) });
  t.teardown(() => client.close());
  const [write, read] = await Promise.all([
    client.put('k', 'v').catch((e: unknown) => e),
    client.get('k').catch((e: unknown) => e),
  ]);
  t.match(write, {
    code: 'timeout',
    message: 'deadline reached (the write may or may not have been applied)',
  });
  t.match(read, { code: 'timeout', message: 'deadline reached' }, 'a read: nothing about writes');
});

t.test("a call's own signal still wins with its own reason", async (t) => {
  const server = await fakeServer(() => {});
  t.teardown(() => server.close());
  const client = new Client({ endpoints: [server.url], signal: deadline(60_000) });
  t.teardown(() => client.close());
  const mine = new AbortController();
  setTimeout(() => mine.abort(new Error('mine')), 50);
  t.match(await client.get('k', { signal: mine.signal }).catch((e: unknown) => e), {
    message: 'mine',
  });
});

t.test('a watch: onOpen when its stream opens; the signal ends it with an error', async (t) => {
  let streams = 0;
  const server = await fakeServer((req, res) => {
    if (!req.url.startsWith('/v1/watch/')) return apiError(res, 404, 'not_found');
    streams++;
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    res.write('event: progress\ndata: {"revision": 5}\n\n');
  });
  t.teardown(() => server.close());
  const signal = deadline(1_500);
  const client = new Client({ endpoints: [server.url], signal });
  t.teardown(() => client.close());
  const opened: string[] = [];
  const watch = client.watch('k', { fromRevision: 1, onOpen: (e) => opened.push(e) });
  const err = await (async () => {
    for await (const _ of watch) {
      // progress events are not yielded without `progress: true`
    }
  })().catch((e: unknown) => e);
  t.same(opened, [server.url], 'onOpen once, with the endpoint');
  t.equal(streams, 1);
  t.match(err, { code: 'timeout', message: /^deadline reached/ }, 'not a quiet end');
});
