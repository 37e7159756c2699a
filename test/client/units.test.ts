/**
 * The client's pure parts: the SSE parser (any chunking gives the same
 * events), key encoding in paths, query strings, endpoints and Retry-After.
 */
import fc from 'fast-check';
import t from 'tap';
import { RaftkvError } from '../../src/client/errors.js';
import { encodeKey, queryString } from '../../src/client/paths.js';
import { type SseEvent, SseParser } from '../../src/client/sse.js';
import { normalizeEndpoint, parseRetryAfter } from '../../src/client/transport.js';

function parseAll(chunks: string[]): SseEvent[] {
  const p = new SseParser();
  const out: SseEvent[] = [];
  for (const c of chunks) out.push(...p.push(c));
  out.push(...p.end());
  return out;
}

t.test('SSE: events, ids, comments, multi-line data, unknown fields', async (t) => {
  const stream =
    ': a comment\n' +
    'event: change\nid: 42\ndata: {"revision": 42}\n\n' +
    'event: progress\ndata: {"revision": 50}\n\n' +
    'data: line one\ndata: line two\nfoo: ignored\n\n' +
    'event: nodata\n\n' +
    'data\n\n' +
    'data:no-space\n\n' +
    'data:  two-spaces\n\n' +
    'retry: 1500\nevent: closed\nid: 60\ndata: {}\n\n' +
    'event: partial\ndata: never dispatched';
  const p = new SseParser();
  const events = [...p.push(stream), ...p.end()];
  t.strictSame(events, [
    { event: 'change', data: '{"revision": 42}', id: '42' },
    { event: 'progress', data: '{"revision": 50}', id: '42' },
    { event: 'message', data: 'line one\nline two', id: '42' },
    { event: 'message', data: '', id: '42' },
    { event: 'message', data: 'no-space', id: '42' },
    { event: 'message', data: ' two-spaces', id: '42' },
    { event: 'closed', data: '{}', id: '60' },
  ]);
  t.equal(p.retryMs, 1500);
});

t.test('SSE: CRLF, CR and LF line ends, a CR split from its LF, and a BOM', async (t) => {
  const expected = [
    { event: 'a', data: '1', id: undefined },
    { event: 'b', data: '2', id: undefined },
    { event: 'c', data: '3', id: undefined },
  ];
  t.strictSame(
    parseAll(['\ufeffevent: a\r\ndata: 1\r\n\r\nevent: b\rdata: 2\r\revent: c\ndata: 3\n\n']),
    expected,
  );
  t.strictSame(
    parseAll([
      'event: a\r',
      '\ndata: 1\r',
      '\n\r',
      '\nevent: b\r',
      'data: 2\r\r',
      'event: c\ndata: 3\n\r',
    ]),
    expected,
  );
  t.strictSame(parseAll(['data: x\r']), [], 'a held CR at the end ends the line, not the event');
  t.strictSame(parseAll(['data: x\n\r']), [{ event: 'message', data: 'x', id: undefined }]);
});

t.test('SSE: any chunking of a stream yields the same events', async (t) => {
  const line = fc.oneof(
    fc.constantFrom('event: change', 'event: progress', 'id: 7', 'id: 8', ': comment', 'data'),
    fc.string({ maxLength: 12 }).map((s) => `data: ${s.replace(/[\r\n]/g, '')}`),
  );
  const ending = fc.constantFrom('\n', '\r\n', '\r');
  const stream = fc
    .array(fc.tuple(fc.array(fc.tuple(line, ending), { maxLength: 5 }), ending), { maxLength: 8 })
    .map((events) =>
      events.map(([lines, end]) => lines.map(([l, e]) => l + e).join('') + end).join(''),
    );
  fc.assert(
    fc.property(stream, fc.array(fc.nat(), { maxLength: 10 }), (text, cuts) => {
      const points = [...new Set(cuts.map((c) => c % (text.length + 1)))].sort((a, b) => a - b);
      const chunks: string[] = [];
      let last = 0;
      for (const p of points) {
        chunks.push(text.slice(last, p));
        last = p;
      }
      chunks.push(text.slice(last));
      const whole = JSON.stringify(parseAll([text]));
      // Cut at random points, and one character at a time.
      return (
        JSON.stringify(parseAll(chunks)) === whole && JSON.stringify(parseAll([...text])) === whole
      );
    }),
    { numRuns: 300 },
  );
  t.pass('300 random streams, each cut at random points and per character');
});

/** Keys made of the pieces that matter to URL paths. */
const keyArb = fc
  .array(
    fc.constantFrom(
      '/',
      '.',
      '..',
      'a',
      ' ',
      '?',
      '#',
      '%',
      '%2F',
      '+',
      '&',
      '=',
      ';',
      'ü',
      '😀',
      '\\',
    ),
    { maxLength: 8 },
  )
  .map((parts) => parts.join(''));

t.test('keys in paths: segments encoded, slashes kept, dot segments protected', async (t) => {
  t.equal(encodeKey('app/config/db'), 'app/config/db');
  t.equal(encodeKey('a b/c?d%e#f'), 'a%20b/c%3Fd%25e%23f');
  t.equal(encodeKey('/lead//x/'), '/lead//x/');
  t.equal(encodeKey('./..'), '%2E/%2E%2E');
  t.equal(encodeKey('a/.../b'), 'a/.../b');
  t.equal(encodeKey('ü'), '%C3%BC');
  t.throws(() => encodeKey('a/\ud800'), { code: 'invalid_request' }, 'a lone surrogate');
  fc.assert(
    fc.property(keyArb, (key) => {
      const enc = encodeKey(key);
      return (
        !/[?#\s]/.test(enc) &&
        enc
          .split('/')
          .map((s) => decodeURIComponent(s))
          .join('/') === key
      );
    }),
  );
});

t.test('query strings: undefined and false left out, values encoded', async (t) => {
  t.equal(queryString({}), '');
  t.equal(queryString({ a: undefined, b: false }), '');
  t.equal(
    queryString({ prefix: 'a&b=c', limit: 3, keysOnly: true, x: undefined }),
    '?prefix=a%26b%3Dc&limit=3&keysOnly=true',
  );
});

t.test('endpoints are normalised; bad ones are rejected', async (t) => {
  t.equal(normalizeEndpoint('127.0.0.1:7379'), 'http://127.0.0.1:7379');
  t.equal(normalizeEndpoint('http://127.0.0.1:7379/'), 'http://127.0.0.1:7379');
  t.equal(normalizeEndpoint('https://kv.example/raftkv/'), 'https://kv.example/raftkv');
  t.throws(() => normalizeEndpoint('ftp://x'), RaftkvError);
  t.throws(() => normalizeEndpoint('http://'), RaftkvError);
});

t.test('Retry-After: seconds or an HTTP date', async (t) => {
  t.equal(parseRetryAfter('2'), 2000);
  t.equal(parseRetryAfter(undefined), undefined);
  t.equal(parseRetryAfter('soon'), undefined);
  const inFiveS = new Date(Date.now() + 5000).toUTCString();
  const ms = parseRetryAfter(inFiveS)!;
  t.ok(ms > 3000 && ms <= 5000, `date → ${ms} ms`);
  t.equal(parseRetryAfter(new Date(0).toUTCString()), 0);
});

t.test('RaftkvError carries the API body and its extras', async (t) => {
  const kv = { key: 'k', value: 'v', createRevision: 1, modRevision: 2, version: 2, lease: null };
  const e = RaftkvError.fromResponse(
    409,
    { error: { code: 'compare_failed', message: 'a guard was false' }, kv, revision: 9 },
    'http://x',
  );
  t.equal(e.code, 'compare_failed');
  t.equal(e.status, 409);
  t.strictSame(e.kv, kv);
  t.equal(e.revision, 9);
  t.equal(e.endpoint, 'http://x');
  const bare = RaftkvError.fromResponse(502, '<html>', 'http://x');
  t.equal(bare.code, 'internal');
  t.equal(bare.message, 'HTTP 502');
  t.equal(RaftkvError.fromResponse(404, undefined, 'http://x').code, 'key_not_found');
});
