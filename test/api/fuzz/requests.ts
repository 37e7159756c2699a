/**
 * The API fuzzer's requests: one fast-check arbitrary per route of docs/API.md,
 * each giving valid requests and mutated ones (bodies with wrong types,
 * missing or extra fields, odd strings and numbers, bad JSON, wrong
 * content-types; mutated paths, query strings and headers; streams dropped
 * mid-way). A generated value is a builder: ids that only exist at run time
 * (granted leases, lock holder keys, added learners) are picked from the
 * fuzzer's state when the request is built.
 *
 * Everything here keeps away from the seed data (SEED_MARK): no generated
 * string contains it, so no fuzzed write can reach the keys the test compares.
 */
import fc from 'fast-check';

/** Every seed key and registry name contains this character; no fuzzed request does. */
export const SEED_MARK = '~';
/** The seed registry entry's lease (lease ids cannot hold SEED_MARK); no fuzzed request names it. */
export const SEED_LEASE = 'seedlease-7f3a';

export type Kind = 'read' | 'write' | 'stream';

export interface FuzzRequest {
  /** The route of API.md this request aims at (its template), for the per-route counts. */
  route: string;
  /** Which node (0..2) it is sent to. */
  node: number;
  method: string;
  target: string;
  headers: [string, string][];
  body?: Buffer;
  kind: Kind;
  /** What was done to it: `valid`, or the mutations applied. */
  mutation: string[];
  /** Statuses API.md gives for this case, when it says (undefined: only the general oracle). */
  expect?: number[];
  /** The route keeps Idempotency-Key results (the write goes through the dedup table). */
  dedup: boolean;
  /** The Idempotency-Key header sent, if a valid one. */
  idempotencyKey?: string;
  /** Stream: cut it this many ms after its headers. */
  dropAfterMs?: number;
  /** Cut the request this many ms after sending it if no answer came (a client that gives up). */
  abortAfterMs?: number;
  /** The server may hold it this long on purpose (lock and campaign waits). */
  waitMs: number;
  /** A lock acquire or campaign: a refusal may still have queued and left the line (revision moves). */
  queues?: boolean;
  /** The route needs no credentials (API.md: health, metrics, auth status, token, probes). */
  publicRoute: boolean;
  /**
   * The request reaches its route's credential check: the route and method exist, the
   * path, query and headers pass the HTTP parser and the router. With authentication on,
   * missing or wrong credentials then get 401 whatever else is wrong (the body is read later).
   */
  reachesAuth: boolean;
}

/** What the fuzzer learned from earlier answers, for requests that name existing things. */
export interface FuzzState {
  leases: string[];
  lockKeys: { name: string; key: string }[];
  electionKeys: { name: string; key: string }[];
  memberIds: string[];
  learnerIds: string[];
  learnersAdded: number;
  /** Idempotency-Keys to reuse across different writes. */
  idempotencyKeys: string[];
}

export type Builder = (s: FuzzState) => FuzzRequest;

export const MAX_LEARNERS = 2;

// ------------------------------------------------------------------ strings

const noMark = (s: string) => s.replaceAll(SEED_MARK, '-');

const asciiWord = fc
  .string({
    unit: fc.constantFrom(...'abcdefghijklmnopqrstuvwxyz0123456789-_.'),
    minLength: 1,
    maxLength: 12,
  })
  .map(noMark);

/** Strings that stress decoding and limits: unicode, control characters, lone surrogates, long ones. */
const oddString = fc
  .oneof(
    { weight: 3, arbitrary: fc.string({ unit: 'binary', maxLength: 20 }) },
    { weight: 2, arbitrary: fc.string({ unit: 'grapheme', maxLength: 20 }) },
    {
      weight: 1,
      arbitrary: fc.string({
        unit: fc.constantFrom(
          '\u0000',
          '\u0001',
          '\n',
          '\r',
          '\t',
          '\u2028',
          '\ufeff',
          '\ud800',
          '\udfff',
          '\u{1f600}',
          'é',
          '/',
          '%',
          '?',
          '#',
          ' ',
          '.',
          '\\',
        ),
        maxLength: 8,
      }),
    },
    {
      weight: 1,
      arbitrary: fc.constantFrom(
        '',
        ' ',
        '.',
        '..',
        '%',
        '%00',
        '%2F',
        '__proto__',
        'constructor',
        'null',
        'a'.repeat(4097),
        'é'.repeat(2049),
      ),
    },
    { weight: 1, arbitrary: fc.integer({ min: 1, max: 20 }).map((n) => 'x'.repeat(n * 300)) },
  )
  .map(noMark);

/** A fuzzed key: mostly short ones under a few prefixes (so writes and reads meet), some odd. */
const keyText = fc
  .oneof(
    {
      weight: 4,
      arbitrary: fc
        .tuple(fc.constantFrom('f/', 'f/a/', 'g', 'h/x'), fc.constantFrom('', '1', '2', 'k', 'k/1'))
        .map(([a, b]) => a + b),
    },
    { weight: 2, arbitrary: asciiWord },
    { weight: 2, arbitrary: oddString },
  )
  .map((k) => (k === '' ? 'f' : k));

/** Values of JSON's other types, to put where a field of `type` belongs. */
function wrongTypeFor(type: FieldType): fc.Arbitrary<unknown> {
  const all = {
    string: fc.oneof(fc.constant(''), asciiWord, fc.constant('1')),
    int: fc.constantFrom(0, 1, -1, 7, 2 ** 53),
    float: fc.constantFrom(0.5, -1.5, 1e-9),
    bool: fc.boolean(),
    null: fc.constant(null),
    array: fc.constantFrom([], ['a'], [1]),
    object: fc.constantFrom({}, { a: 1 }),
  } as const;
  const wrong = {
    string: [all.int, all.float, all.bool, all.null, all.array, all.object],
    int: [all.string, all.float, all.bool, all.null, all.array, all.object],
    bool: [all.string, all.int, all.null, all.array, all.object],
    array: [all.string, all.int, all.bool, all.null, all.object],
  }[type];
  return fc.oneof(...wrong);
}

/** Numbers around the edges: out of range, not integers, beyond 2^53. */
const oddNumber = fc.constantFrom(
  -1,
  0,
  1,
  -0,
  0.5,
  2 ** 31,
  2 ** 53,
  2 ** 53 + 2,
  1e21,
  1e308,
  -1e308,
  Number.MAX_SAFE_INTEGER,
);

// ------------------------------------------------------------------ bodies

type FieldType = 'string' | 'int' | 'bool' | 'array';

interface BodySpec {
  /** Each field's JSON type; the ones in `required` must be present. */
  fields: Record<string, FieldType>;
  required: string[];
  /** A valid body (it may name state: leases, keys). */
  valid: fc.Arbitrary<(s: FuzzState) => Record<string, unknown>>;
  /** Numbers that the schema bounds; oddNumber may or may not fit, so no expectation there. */
}

interface BodyChoice {
  text: string | undefined;
  contentType: string | undefined;
  mutation: string;
  /** `invalid`: this body alone makes the request a 400 (it breaks the route's schema). */
  validity: Validity;
}

/** Whether a part of a request is surely good, surely refused with 400, or could be either. */
export type Validity = 'valid' | 'invalid' | 'unknown';

const JSON_TYPES = ['application/json', 'application/json; charset=utf-8', 'Application/JSON'];

/** A body for `spec`: valid, or mutated in one of the ways the brief lists. */
function bodyFor(spec: BodySpec): fc.Arbitrary<(s: FuzzState) => BodyChoice> {
  const fieldNames = Object.keys(spec.fields);
  const json = (
    mutation: string,
    validity: Validity,
    edit: (b: Record<string, unknown>) => unknown,
    contentType: fc.Arbitrary<string> = fc.constantFrom(...JSON_TYPES),
  ) =>
    fc.tuple(spec.valid, contentType).map(
      ([valid, ct]) =>
        (s: FuzzState): BodyChoice => ({
          text: JSON.stringify(edit(valid(s))),
          contentType: ct,
          mutation,
          validity,
        }),
    );
  const valid = json('valid', 'valid', (b) => b);
  const choices: fc.Arbitrary<(s: FuzzState) => BodyChoice>[] = [];
  choices.push(
    fc
      .tuple(
        spec.valid,
        fc
          .string({ minLength: 1, maxLength: 8 })
          .filter((n) => !fieldNames.includes(n) && n !== '__proto__'),
        fc.jsonValue({ maxDepth: 2 }),
      )
      .map(
        ([valid, name, v]) =>
          (s: FuzzState): BodyChoice => ({
            text: JSON.stringify({ ...valid(s), [noMark(name)]: v }).replaceAll(SEED_MARK, '-'),
            contentType: 'application/json',
            mutation: `extra field ${JSON.stringify(name)}`,
            validity: 'invalid',
          }),
      ),
  );
  for (const field of fieldNames) {
    choices.push(
      fc.tuple(spec.valid, wrongTypeFor(spec.fields[field]!)).map(
        ([valid, v]) =>
          (s: FuzzState): BodyChoice => ({
            text: JSON.stringify({ ...valid(s), [field]: v }),
            contentType: 'application/json',
            mutation: `${field} of the wrong type`,
            validity: 'invalid',
          }),
      ),
    );
    choices.push(
      fc
        .tuple(
          spec.valid,
          spec.fields[field] === 'int'
            ? oddNumber
            : spec.fields[field] === 'string'
              ? oddString
              : fc.constant(undefined),
        )
        .map(
          ([valid, v]) =>
            (s: FuzzState): BodyChoice => ({
              text: JSON.stringify({ ...valid(s), [field]: v }),
              contentType: 'application/json',
              mutation: `odd ${field}`,
              validity: 'unknown',
            }),
        ),
    );
  }
  for (const field of spec.required) {
    choices.push(
      json(`missing ${field}`, 'invalid', (b) => {
        const { [field]: _, ...rest } = b;
        return rest;
      }),
    );
  }
  choices.push(
    fc.constantFrom('[]', '"x"', '5', 'true', '[{}]').map((text) => () => ({
      text,
      contentType: 'application/json',
      mutation: `body ${text}`,
      validity: 'invalid',
    })),
    fc
      .constantFrom(
        '{',
        '{"value": "x"',
        '{"a":1} tail',
        "{'a': 1}",
        '\u0000',
        '{"a":\u0001}',
        '['.repeat(20_000),
        '{"a":"\\ud800"}',
        '\ufeff{}',
        'NaN',
      )
      .map((text) => () => ({
        text,
        contentType: 'application/json',
        mutation: 'bad JSON',
        validity: 'invalid',
      })),
    json(
      'wrong content-type',
      'invalid',
      (b) => b,
      fc.constantFrom(
        'text/plain',
        'application/x-www-form-urlencoded',
        'multipart/form-data; boundary=x',
        'application/jsonx',
        'json',
      ),
    ),
    json('no content-type', 'unknown', (b) => b, fc.constant('')),
    fc.constant(() => ({
      text: undefined,
      contentType: undefined,
      mutation: 'no body',
      validity: spec.required.length > 0 ? 'invalid' : 'valid',
    })),
  );
  // Two in three valid, so that writes apply and the checks on applied writes have work.
  return fc.oneof({ weight: 2, arbitrary: valid }, { weight: 1, arbitrary: fc.oneof(...choices) });
}

// ------------------------------------------------------------------ paths and queries

/** How a path segment is written: as the API expects, or mutated. */
type Encoding = 'component' | 'segments' | 'raw' | 'double' | 'badPercent' | 'dotted';

const encodingArb = fc.constantFrom<Encoding>(
  'component',
  'component',
  'component',
  'component',
  'component',
  'component',
  'component',
  'segments',
  'raw',
  'double',
  'badPercent',
  'dotted',
);

function safeEncode(text: string): string | undefined {
  try {
    return encodeURIComponent(text);
  } catch {
    return undefined; // a lone surrogate
  }
}

/** `text` as a path segment written with `enc`; the second value says whether the route sees `text` itself. */
function encodeSegment(text: string, enc: Encoding): [string, boolean] {
  const component = safeEncode(text);
  switch (enc) {
    case 'component':
      return component === undefined
        ? [Buffer.from(text).toString('latin1'), false]
        : [component, true];
    case 'segments':
      return [
        text
          .split('/')
          .map((p) => safeEncode(p) ?? p)
          .join('/'),
        component !== undefined,
      ];
    case 'raw':
      // Raw UTF-8 bytes, spaces and all: the HTTP parser or the router must refuse or take it.
      return [Buffer.from(text, 'utf8').toString('latin1').replaceAll('%', '%25'), false];
    case 'double':
      return [encodeURIComponent(component ?? 'x'), false];
    case 'badPercent':
      return [`${component ?? 'x'}%${'ZZ'}`, false];
    case 'dotted':
      return [`./${component ?? 'x'}/..`, false];
  }
}

type QueryValue = fc.Arbitrary<string | undefined>;

interface QueryChoice {
  text: string;
  mutation: string;
  validity: Validity;
}

interface QuerySpec {
  /** The parameters the route takes and how a valid value looks. */
  params: Record<string, QueryValue>;
  /** The route refuses unknown and repeated parameters with 400. */
  strict: boolean;
}

const intQ = (min: number, max = 50): QueryValue =>
  fc.option(fc.integer({ min, max }).map(String), { nil: undefined });
const boolQ: QueryValue = fc.option(fc.constantFrom('true', 'false', '1', '0', ''), {
  nil: undefined,
});
const consistencyQ: QueryValue = fc.option(fc.constantFrom('linearizable', 'serializable'), {
  nil: undefined,
});

/** A query string: valid, or with an unknown, repeated or malformed parameter. */
function queryFor(spec: QuerySpec): fc.Arbitrary<QueryChoice> {
  const names = Object.keys(spec.params);
  const valid = fc
    .record(spec.params)
    .map(
      (values) => Object.entries(values).filter(([, v]) => v !== undefined) as [string, string][],
    );
  const render = (pairs: [string, string][]) =>
    pairs.length === 0
      ? ''
      : `?${pairs.map(([k, v]) => `${safeEncode(k) ?? 'bad'}=${safeEncode(v) ?? '%ED%A0%80'}`).join('&')}`;
  const choices: fc.Arbitrary<QueryChoice>[] = [
    valid.map((pairs) => ({
      text: render(pairs),
      mutation: 'valid query',
      validity: 'valid' as const,
    })),
    valid.map((pairs) => ({
      text: render(pairs),
      mutation: 'valid query',
      validity: 'valid' as const,
    })),
    fc
      .tuple(
        valid,
        asciiWord.filter((n) => !names.includes(n)),
        asciiWord,
      )
      .map(([pairs, n, v]) => ({
        text: render([...pairs, [n, v]]),
        mutation: `unknown query ${n}`,
        validity: spec.strict ? 'invalid' : 'valid',
      })),
    fc
      .tuple(
        valid,
        fc.constantFrom(
          '?',
          '?&',
          '?=',
          '?==',
          '?a',
          '?%',
          '?%zz=1',
          '?a=%E0%A4%A',
          '?\u00e9=1',
          `?${'q'.repeat(9000)}=1`,
        ),
      )
      .map(([, text]) => ({
        text,
        mutation: `odd query ${text.slice(0, 20)}`,
        validity: 'unknown',
      })),
  ];
  if (names.length > 0) {
    choices.push(
      fc
        .tuple(valid, fc.constantFrom(...names), fc.constantFrom('1', 'true', 'x'))
        .map(([pairs, n, v]) => ({
          text: render([...pairs.filter(([k]) => k !== n), [n, v], [n, v]]),
          mutation: `repeated ${n}`,
          validity: spec.strict ? 'invalid' : 'unknown',
        })),
      fc
        .tuple(
          valid,
          fc.constantFrom(...names),
          fc.oneof(
            oddString,
            fc.constantFrom(
              '-1',
              '0',
              '1.5',
              '1e3',
              '0x10',
              ' 1',
              '99999999999999999999',
              'TRUE',
              'yes',
              'null',
            ),
          ),
        )
        .map(([pairs, n, v]) => ({
          text: render([...pairs.filter(([k]) => k !== n), [n, v]]),
          mutation: `odd ${n}=${JSON.stringify(v.slice(0, 20))}`,
          validity: 'unknown',
        })),
    );
  }
  return fc.oneof(
    { weight: 2, arbitrary: choices[0]! },
    { weight: 1, arbitrary: fc.oneof(...choices.slice(1)) },
  );
}

// ------------------------------------------------------------------ headers

interface HeaderChoice {
  headers: [string, string][];
  mutation: string;
  /** `dedupInvalid`: a malformed Idempotency-Key, refused by routes that read it. */
  validity: Validity | 'dedupInvalid';
  idempotencyKey?: string;
}

const IDEMPOTENCY_POOL = ['fz-reused-1', 'fz-reused-2', 'fz-reused-3'];

/** Idempotency-Key (reused from a small pool, fresh, or malformed) and other odd headers. */
const headerArb: fc.Arbitrary<HeaderChoice> = fc.oneof(
  {
    weight: 14,
    arbitrary: fc.constant<HeaderChoice>({
      headers: [],
      mutation: 'no extra headers',
      validity: 'valid',
    }),
  },
  {
    weight: 4,
    arbitrary: fc.constantFrom(...IDEMPOTENCY_POOL).map((k) => ({
      headers: [['idempotency-key', k]] as [string, string][],
      mutation: `reused Idempotency-Key ${k}`,
      validity: 'valid' as const,
      idempotencyKey: k,
    })),
  },
  {
    weight: 1,
    arbitrary: fc.uuid().map((k) => ({
      headers: [['idempotency-key', k]] as [string, string][],
      mutation: 'fresh Idempotency-Key',
      validity: 'valid' as const,
      idempotencyKey: k,
    })),
  },
  {
    weight: 2,
    arbitrary: fc.constantFrom('x'.repeat(129), '\u00e9t\u00e9', 'a\u0001b').map((k) => ({
      headers: [['idempotency-key', Buffer.from(k, 'utf8').toString('latin1')]] as [
        string,
        string,
      ][],
      mutation: 'bad Idempotency-Key',
      // A control character is refused by the HTTP parser, whatever the route.
      validity: k.includes('\u0001') ? ('invalid' as const) : ('dedupInvalid' as const),
    })),
  },
  {
    weight: 1,
    arbitrary: fc.constantFrom('', ' ').map((k) => ({
      headers: [['idempotency-key', k]] as [string, string][],
      mutation: 'empty Idempotency-Key',
      validity: 'dedupInvalid' as const,
    })),
  },
  {
    weight: 2,
    arbitrary: fc
      .constantFrom<[string, string][]>(
        [['authorization', 'Bearer x.y.z']],
        [['authorization', 'Basic !!!']],
        [['authorization', 'Basic cm9vdDp3cm9uZw==']],
        [['authorization', 'Bearer']],
        [['authorization', `Bearer ${'a'.repeat(5000)}`]],
        [['last-event-id', 'abc']],
        [['last-event-id', '3']],
        [['accept', 'text/event-stream']],
        [['accept', 'application/xml']],
        [['accept-encoding', 'gzip, br']],
        [['x-forwarded-for', '10.0.0.1']],
        [['expect', '100-continue']],
        [['x-long', 'v'.repeat(20_000)]],
        [['transfer-encoding', 'chunked']],
        [['transfer-encoding', 'gzip, chunked']],
        [['content-encoding', 'gzip']],
      )
      .map((headers) => ({
        headers,
        mutation: `header ${headers[0]![0]}`,
        validity: 'unknown' as const,
      })),
  },
);

// ------------------------------------------------------------------ routes

interface RouteSpec {
  route: string;
  method: string;
  /** The path with `{…}` segments filled from the state (already encoded), and whether it is a valid one. */
  path: fc.Arbitrary<(s: FuzzState) => { path: string; valid: boolean; mutation: string }>;
  query?: QuerySpec;
  body?: BodySpec;
  kind: Kind;
  dedup: boolean;
  /** Statuses a fully valid request may get (undefined: not checked). */
  validStatuses?: number[];
  /** The server may hold the request this long (lock/campaign waits). */
  waitMs?: (body: unknown) => number;
  queues?: boolean;
  /** Rejects a built request that would harm the cluster or the seed data (see isSafe). */
}

/** A path template `/v1/x/{…}/y` with one segment from `segment`, encoded in a random way. */
function pathWith(
  before: string,
  segment: fc.Arbitrary<(s: FuzzState) => string>,
  after = '',
  /** Names the route surely takes as they are (odd ones may be refused for themselves). */
  plain = PLAIN_NAME,
): fc.Arbitrary<(s: FuzzState) => { path: string; valid: boolean; mutation: string }> {
  return fc.tuple(segment, encodingArb).map(([seg, enc]) => (s: FuzzState) => {
    const text = seg(s);
    const [encoded, decodesToText] = encodeSegment(text, enc);
    return {
      path: `${before}${encoded}${after}`,
      valid: decodesToText && enc === 'component' && plain.test(text),
      mutation: enc === 'component' ? 'path' : `path ${enc}`,
    };
  });
}

const PLAIN_NAME = /^(?=.{1,64}$)[A-Za-z0-9._-]*[A-Za-z0-9][A-Za-z0-9._-]*$/;
const PLAIN_KEY = /^(?=.{1,64}$)[A-Za-z0-9._/-]*[A-Za-z0-9][A-Za-z0-9._/-]*$/;

const fixedPath = (path: string) => fc.constant(() => ({ path, valid: true, mutation: 'path' }));

const pick = <T>(list: T[], i: number, fallback: T): T =>
  list.length === 0 ? fallback : list[i % list.length]!;

const fromState = <T>(take: (s: FuzzState, i: number) => T) =>
  fc.nat(1000).map((i) => (s: FuzzState) => take(s, i));

const constBuilder = <T>(arb: fc.Arbitrary<T>) => arb.map((v) => () => v);

/** A lease id: one the fuzzer holds, one that never existed, or a malformed one. */
const leaseRef = fc.oneof(
  { weight: 5, arbitrary: fromState((s, i) => pick(s.leases, i, 'no-lease')) },
  {
    weight: 2,
    arbitrary: constBuilder(fc.constantFrom('fz-never-granted', '0', 'ffffffffffffffff')),
  },
  { weight: 1, arbitrary: constBuilder(oddString) },
);

const keyRef = constBuilder(keyText);
const lockName = constBuilder(
  fc.oneof(
    {
      weight: 4,
      arbitrary: fc.constantFrom(
        'l1',
        'l2',
        'lock.x',
        'L'.repeat(256),
        'é'.repeat(256),
        'L'.repeat(257),
      ),
    },
    { weight: 1, arbitrary: oddString },
  ),
);
const electionName = constBuilder(
  fc.oneof(
    { weight: 4, arbitrary: fc.constantFrom('e1', 'e2', 'E'.repeat(256)) },
    { weight: 1, arbitrary: oddString },
  ),
);
const registryName = constBuilder(
  fc.oneof(
    { weight: 4, arbitrary: fc.constantFrom('svc/a', 'svc/b', 'r1') },
    { weight: 1, arbitrary: oddString },
  ),
);
const userName = constBuilder(
  fc.oneof(
    { weight: 4, arbitrary: fc.constantFrom('fz-alice', 'fz-bob') },
    { weight: 1, arbitrary: oddString },
  ),
);
/** Users the fuzzer may only look at or delete: `root` never exists here (auth must stay off). */
const lookedUpUser = constBuilder(
  fc.constantFrom('fz-alice', 'fz-bob', 'root', 'nobody', ' x', 'a'.repeat(129)),
);
const roleName = constBuilder(
  fc.oneof(
    { weight: 4, arbitrary: fc.constantFrom('fz-reader', 'fz-writer', 'root') },
    { weight: 1, arbitrary: oddString },
  ),
);
const memberRef = fc.oneof(
  fromState((s, i) => pick(s.learnerIds, i, '00000000000000aa')),
  constBuilder(
    fc.constantFrom(
      '00000000000000aa',
      'ffffffffffffffff',
      'xyz',
      '',
      'FFFFFFFFFFFFFFFF',
      '0'.repeat(17),
    ),
  ),
);

/** A lease in a valid body: one the fuzzer holds (leaseRef, with unknown ones, goes in paths). */
const leaseField = fromState((s, i) => pick(s.leases, i, 'no-lease'));
const ttlValid = fc.integer({ min: 600, max: 365 * 24 * 3600 });
const waitValid = fc.integer({ min: 0, max: 400 });

function body(
  fields: Record<string, FieldType>,
  required: string[],
  valid: Record<string, fc.Arbitrary<(s: FuzzState) => unknown>>,
  optional: string[] = [],
): BodySpec {
  const entries = Object.entries(valid);
  return {
    fields,
    required,
    valid: fc
      .tuple(
        ...entries.map(([, a]) => a),
        // Each optional field in one body of four: guards with random values would fail most writes.
        fc.array(
          fc.nat(3).map((n) => n === 0),
          { minLength: entries.length, maxLength: entries.length },
        ),
      )
      .map((vs) => (s: FuzzState) => {
        const keep = vs[entries.length] as boolean[];
        const out: Record<string, unknown> = {};
        entries.forEach(([name], i) => {
          if (optional.includes(name) && !keep[i]) return;
          out[name] = (vs[i] as (s: FuzzState) => unknown)(s);
        });
        return out;
      }),
  };
}

const str = <T>(arb: fc.Arbitrary<T>) => constBuilder(arb);
const valueText = fc.oneof(
  { weight: 5, arbitrary: asciiWord },
  { weight: 2, arbitrary: oddString },
  { weight: 1, arbitrary: fc.constant('v'.repeat(1024 * 1024 + 1)) },
);

const compareArb = fc.oneof(
  fc.record({
    key: keyText,
    target: fc.constantFrom('value', 'version', 'createRevision', 'modRevision', 'lease'),
    op: fc.constantFrom('==', '!=', '<', '>'),
    value: fc.oneof(asciiWord, fc.integer({ min: 0, max: 100 }), fc.constant(null)),
  }),
  fc.record({ lock: fc.constantFrom('l1', 'l2'), token: fc.integer({ min: 0, max: 100 }) }),
  // Not a compare of API.md's shape.
  fc.constantFrom(
    { key: 'f', target: 'size', op: '==', value: 1 },
    { key: 'f', target: 'value', op: '=', value: 'x' },
    { lock: '', token: 1 },
    { lock: 'l1', token: -1 },
    {},
  ),
);
const opArb = fc.oneof(
  fc.record({ op: fc.constant('put'), key: keyText, value: asciiWord }),
  fc.record({ op: fc.constant('get'), key: keyText, prefix: fc.boolean() }),
  // A prefix delete of a fuzzed key (never the empty one: that would be every key).
  fc.record({ op: fc.constant('delete'), key: keyText, prefix: fc.boolean() }),
  fc.constantFrom(
    { op: 'put', key: 'f' },
    { op: 'range', key: 'f' },
    { op: 'get' },
    { op: 'delete', key: 'f', prefix: 'yes' },
  ),
);

const KV_READ_Q = { revision: intQ(1, 200), consistency: consistencyQ, minRevision: intQ(0, 5) };

export const ROUTES: RouteSpec[] = [
  // KV
  {
    route: 'GET /v1/kv/{key}',
    method: 'GET',
    path: pathWith('/v1/kv/', keyRef, '', PLAIN_KEY),
    query: { params: KV_READ_Q, strict: true },
    kind: 'read',
    dedup: false,
    validStatuses: [200, 400, 404, 410],
  },
  {
    route: 'GET /v1/kv',
    method: 'GET',
    path: fixedPath('/v1/kv'),
    query: {
      params: {
        prefix: fc.option(fc.constantFrom('', 'f', 'f/', 'g', 'zz'), { nil: undefined }),
        limit: intQ(1, 5),
        after: fc.option(fc.constantFrom('f', 'f/a'), { nil: undefined }),
        keysOnly: boolQ,
        ...KV_READ_Q,
      },
      strict: true,
    },
    kind: 'read',
    dedup: false,
    // 400: a revision past the current one.
    validStatuses: [200, 400, 410],
  },
  {
    route: 'PUT /v1/kv/{key}',
    method: 'PUT',
    path: pathWith('/v1/kv/', keyRef, '', PLAIN_KEY),
    query: { params: {}, strict: true },
    body: body(
      { value: 'string', lease: 'string', prevRevision: 'int', prevValue: 'string' },
      ['value'],
      {
        value: str(valueText),
        lease: leaseField,
        prevRevision: str(fc.integer({ min: 0, max: 200 })),
        prevValue: str(asciiWord),
      },
      ['lease', 'prevRevision', 'prevValue'],
    ),
    kind: 'write',
    dedup: true,
  },
  {
    route: 'DELETE /v1/kv/{key}',
    method: 'DELETE',
    path: pathWith('/v1/kv/', keyRef, '', PLAIN_KEY),
    query: { params: { prefix: boolQ, prevRevision: intQ(0, 200) }, strict: true },
    kind: 'write',
    dedup: true,
  },
  {
    route: 'POST /v1/txn',
    method: 'POST',
    path: fixedPath('/v1/txn'),
    query: { params: {}, strict: true },
    body: body(
      { compare: 'array', success: 'array', failure: 'array' },
      [],
      {
        compare: str(fc.array(compareArb, { maxLength: 3 })),
        success: str(fc.array(opArb, { maxLength: 4 })),
        failure: str(fc.array(opArb, { maxLength: 3 })),
      },
      ['compare', 'success', 'failure'],
    ),
    kind: 'write',
    dedup: true,
  },
  {
    route: 'POST /v1/compact',
    method: 'POST',
    path: fixedPath('/v1/compact'),
    query: { params: {}, strict: true },
    body: body({ revision: 'int' }, ['revision'], {
      revision: str(fc.integer({ min: 1, max: 60 })),
    }),
    kind: 'write',
    dedup: true,
  },
  // Watch
  {
    route: 'GET /v1/watch/{key}',
    method: 'GET',
    path: pathWith('/v1/watch/', keyRef, '', PLAIN_KEY),
    query: { params: { prefix: boolQ, fromRevision: intQ(1, 300), prevKv: boolQ }, strict: true },
    kind: 'stream',
    dedup: false,
    validStatuses: [200],
  },
  // Leases
  {
    route: 'POST /v1/leases',
    method: 'POST',
    path: fixedPath('/v1/leases'),
    query: { params: {}, strict: true },
    body: body(
      { ttl: 'int', id: 'string' },
      ['ttl'],
      {
        ttl: str(ttlValid),
        id: str(fc.oneof(asciiWord, fc.uuid(), fc.constantFrom('i'.repeat(128), 'i'.repeat(129)))),
      },
      ['id'],
    ),
    kind: 'write',
    dedup: true,
  },
  {
    route: 'POST /v1/leases/{id}/keepalive',
    method: 'POST',
    path: pathWith('/v1/leases/', leaseRef, '/keepalive'),
    query: { params: {}, strict: true },
    kind: 'write',
    dedup: true,
  },
  {
    route: 'GET /v1/leases/{id}',
    method: 'GET',
    path: pathWith('/v1/leases/', leaseRef),
    query: { params: {}, strict: true },
    kind: 'read',
    dedup: false,
    validStatuses: [200, 404],
  },
  {
    route: 'GET /v1/leases',
    method: 'GET',
    path: fixedPath('/v1/leases'),
    query: { params: {}, strict: true },
    kind: 'read',
    dedup: false,
    validStatuses: [200],
  },
  {
    route: 'DELETE /v1/leases/{id}',
    method: 'DELETE',
    path: pathWith('/v1/leases/', leaseRef),
    query: { params: {}, strict: true },
    kind: 'write',
    dedup: true,
  },
  // Registry
  {
    route: 'PUT /v1/registry/{name}',
    method: 'PUT',
    path: pathWith('/v1/registry/', registryName, '', PLAIN_KEY),
    query: { params: {}, strict: true },
    body: body({ value: 'string', lease: 'string' }, ['value', 'lease'], {
      value: str(valueText),
      lease: leaseField,
    }),
    kind: 'write',
    dedup: true,
  },
  {
    route: 'GET /v1/registry/{name}',
    method: 'GET',
    path: pathWith('/v1/registry/', registryName, '', PLAIN_KEY),
    query: { params: { consistency: consistencyQ }, strict: true },
    kind: 'read',
    dedup: false,
    validStatuses: [200, 404],
  },
  {
    route: 'GET /v1/registry',
    method: 'GET',
    path: fixedPath('/v1/registry'),
    query: {
      params: {
        prefix: fc.option(fc.constantFrom('', 'svc/', 'r'), { nil: undefined }),
        consistency: consistencyQ,
      },
      strict: true,
    },
    kind: 'read',
    dedup: false,
    validStatuses: [200],
  },
  {
    route: 'GET /v1/registry?watch',
    method: 'GET',
    path: fixedPath('/v1/registry'),
    query: {
      params: {
        watch: fc.constant('true'),
        prefix: fc.option(fc.constantFrom('', 'svc/'), { nil: undefined }),
        fromRevision: intQ(1, 300),
      },
      strict: true,
    },
    kind: 'stream',
    dedup: false,
    validStatuses: [200],
  },
  {
    route: 'DELETE /v1/registry/{name}',
    method: 'DELETE',
    path: pathWith('/v1/registry/', registryName, '', PLAIN_KEY),
    query: {
      params: { lease: fc.option(fc.constantFrom('fz-never-granted', 'x'), { nil: undefined }) },
      strict: true,
    },
    kind: 'write',
    dedup: true,
  },
  // Locks
  {
    route: 'POST /v1/locks/{name}',
    method: 'POST',
    path: pathWith('/v1/locks/', lockName),
    query: { params: {}, strict: true },
    body: body(
      { lease: 'string', timeoutMs: 'int' },
      ['lease'],
      { lease: leaseField, timeoutMs: str(waitValid) },
      ['timeoutMs'],
    ),
    kind: 'write',
    dedup: false,
    waitMs: waitOf,
    queues: true,
  },
  {
    route: 'DELETE /v1/locks/{name}',
    method: 'DELETE',
    path: fc.oneof(
      fromState((s, i) => {
        const h = pick(s.lockKeys, i, { name: 'l1', key: 'nokey' });
        return {
          path: `/v1/locks/${encodeURIComponent(h.name)}?key=${encodeURIComponent(h.key)}`,
          valid: true,
          mutation: 'held lock',
        };
      }),
      pathWith('/v1/locks/', lockName, '?key=nokey'),
    ),
    kind: 'write',
    dedup: true,
  },
  // Elections
  {
    route: 'POST /v1/elections/{name}/campaign',
    method: 'POST',
    path: pathWith('/v1/elections/', electionName, '/campaign'),
    query: { params: {}, strict: true },
    body: body(
      { lease: 'string', value: 'string', timeoutMs: 'int' },
      ['lease', 'value'],
      { lease: leaseField, value: str(asciiWord), timeoutMs: str(waitValid) },
      ['timeoutMs'],
    ),
    kind: 'write',
    dedup: false,
    waitMs: waitOf,
    queues: true,
  },
  {
    route: 'GET /v1/elections/{name}',
    method: 'GET',
    path: pathWith('/v1/elections/', electionName),
    query: { params: {}, strict: true },
    kind: 'read',
    dedup: false,
    validStatuses: [200, 404],
  },
  {
    route: 'GET /v1/elections/{name}?watch',
    method: 'GET',
    path: pathWith('/v1/elections/', electionName, '?watch=true'),
    kind: 'stream',
    dedup: false,
    validStatuses: [200],
  },
  {
    route: 'POST /v1/elections/{name}/proclaim',
    method: 'POST',
    path: fc.oneof(
      fromState((s, i) => ({
        path: `/v1/elections/${encodeURIComponent(pick(s.electionKeys, i, { name: 'e1', key: '' }).name)}/proclaim`,
        valid: true,
        mutation: 'path',
      })),
      pathWith('/v1/elections/', electionName, '/proclaim'),
    ),
    query: { params: {}, strict: true },
    body: body({ key: 'string', value: 'string' }, ['key', 'value'], {
      key: fromState((s, i) => pick(s.electionKeys, i, { name: 'e1', key: 'nokey' }).key),
      value: str(asciiWord),
    }),
    kind: 'write',
    dedup: true,
  },
  {
    route: 'DELETE /v1/elections/{name}/leader',
    method: 'DELETE',
    path: fc.oneof(
      fromState((s, i) => {
        const h = pick(s.electionKeys, i, { name: 'e1', key: 'nokey' });
        return {
          path: `/v1/elections/${encodeURIComponent(h.name)}/leader?key=${encodeURIComponent(h.key)}`,
          valid: true,
          mutation: 'held election',
        };
      }),
      pathWith('/v1/elections/', electionName, '/leader?key=nokey'),
    ),
    kind: 'write',
    dedup: true,
  },
  // Cluster and operations
  {
    route: 'GET /v1/status',
    method: 'GET',
    path: fixedPath('/v1/status'),
    query: { params: {}, strict: true },
    kind: 'read',
    dedup: false,
    validStatuses: [200],
  },
  {
    route: 'GET /v1/cluster/members',
    method: 'GET',
    path: fixedPath('/v1/cluster/members'),
    query: { params: {}, strict: true },
    kind: 'read',
    dedup: false,
    validStatuses: [200],
  },
  {
    route: 'POST /v1/cluster/members',
    method: 'POST',
    path: fixedPath('/v1/cluster/members'),
    query: { params: {}, strict: true },
    // Only learners: a voter that never starts would take the quorum away (see isSafe).
    body: body(
      { name: 'string', peerUrl: 'string', clientUrl: 'string', learner: 'bool' },
      ['name', 'peerUrl', 'clientUrl'],
      {
        name: str(asciiWord.map((w) => `fz-${w}`)),
        peerUrl: str(
          fc.constantFrom(
            'http://127.0.0.1:9',
            'https://127.0.0.1:10',
            'ftp://x',
            'not a url',
            'http://',
          ),
        ),
        clientUrl: str(fc.constantFrom('http://127.0.0.1:11', 'mailto:x')),
        learner: str(fc.constant(true)),
      },
    ),
    kind: 'write',
    dedup: false,
  },
  {
    route: 'POST /v1/cluster/members/{id}/promote',
    method: 'POST',
    path: pathWith('/v1/cluster/members/', memberRef, '/promote'),
    query: { params: {}, strict: true },
    kind: 'write',
    dedup: false,
  },
  {
    route: 'DELETE /v1/cluster/members/{id}',
    method: 'DELETE',
    path: pathWith('/v1/cluster/members/', memberRef),
    query: { params: {}, strict: true },
    kind: 'write',
    dedup: false,
  },
  {
    route: 'POST /v1/cluster/leader',
    method: 'POST',
    path: fixedPath('/v1/cluster/leader'),
    query: { params: {}, strict: true },
    body: body(
      { to: 'string' },
      [],
      {
        to: fc.oneof(
          fromState((s, i) => pick(s.memberIds, i, 'x')),
          fromState((s, i) => pick(s.learnerIds, i, 'x')),
          str(fc.constantFrom('00000000000000aa', 'nobody')),
        ),
      },
      ['to'],
    ),
    kind: 'write',
    dedup: false,
  },
  {
    route: 'GET /v1/snapshot',
    method: 'GET',
    path: fixedPath('/v1/snapshot'),
    query: { params: {}, strict: true },
    kind: 'read',
    dedup: false,
    validStatuses: [200],
  },
  {
    route: 'GET /health',
    method: 'GET',
    path: fixedPath('/health'),
    kind: 'read',
    dedup: false,
    validStatuses: [200, 503],
  },
  {
    route: 'GET /livez',
    method: 'GET',
    path: fixedPath('/livez'),
    kind: 'read',
    dedup: false,
    validStatuses: [200],
  },
  {
    route: 'GET /readyz',
    method: 'GET',
    path: fixedPath('/readyz'),
    kind: 'read',
    dedup: false,
    validStatuses: [200, 503],
  },
  {
    route: 'GET /metrics',
    method: 'GET',
    path: fixedPath('/metrics'),
    kind: 'read',
    dedup: false,
    validStatuses: [200],
  },
  {
    route: 'POST /v1/sync',
    method: 'POST',
    path: fixedPath('/v1/sync'),
    query: { params: {}, strict: true },
    kind: 'write',
    dedup: false,
  },
  // Space quota and alarms (an addition to API.md)
  {
    route: 'GET /v1/alarms',
    method: 'GET',
    path: fixedPath('/v1/alarms'),
    query: { params: {}, strict: true },
    kind: 'read',
    dedup: false,
    validStatuses: [200],
  },
  {
    route: 'POST /v1/alarms/disarm',
    method: 'POST',
    path: fixedPath('/v1/alarms/disarm'),
    query: { params: {}, strict: true },
    body: body(
      { memberId: 'string', alarm: 'string' },
      [],
      {
        memberId: fc.oneof(
          fromState((s, i) => pick(s.memberIds, i, 'x')),
          str(fc.constantFrom('00000000000000aa', 'nobody')),
        ),
        alarm: str(fc.constant('nospace')),
      },
      ['memberId', 'alarm'],
    ),
    kind: 'write',
    dedup: true,
  },
  // Security (authentication stays off: `root` is never created, so enable is always refused)
  {
    route: 'GET /v1/auth/status',
    method: 'GET',
    path: fixedPath('/v1/auth/status'),
    query: { params: {}, strict: true },
    kind: 'read',
    dedup: false,
    validStatuses: [200],
  },
  {
    route: 'POST /v1/auth/token',
    method: 'POST',
    path: fixedPath('/v1/auth/token'),
    query: { params: {}, strict: true },
    body: body({ name: 'string', password: 'string' }, ['name', 'password'], {
      name: str(fc.constantFrom('fz-alice', 'root', 'nobody')),
      password: str(fc.constantFrom('pw-alice', 'wrong', '')),
    }),
    kind: 'write',
    dedup: false,
  },
  {
    route: 'POST /v1/auth/enable',
    method: 'POST',
    path: fixedPath('/v1/auth/enable'),
    query: { params: {}, strict: true },
    kind: 'write',
    dedup: true,
    validStatuses: [400],
  },
  {
    route: 'POST /v1/auth/disable',
    method: 'POST',
    path: fixedPath('/v1/auth/disable'),
    query: { params: {}, strict: true },
    kind: 'write',
    dedup: true,
  },
  {
    route: 'PUT /v1/auth/users/{name}',
    method: 'PUT',
    path: pathWith('/v1/auth/users/', userName),
    query: { params: {}, strict: true },
    body: body(
      { password: 'string', roles: 'array' },
      [],
      {
        password: str(fc.constantFrom('pw-alice', 'pw-bob')),
        roles: str(fc.subarray(['fz-reader', 'fz-writer', 'missing-role'])),
      },
      ['password', 'roles'],
    ),
    kind: 'write',
    dedup: true,
  },
  {
    route: 'GET /v1/auth/users',
    method: 'GET',
    path: fixedPath('/v1/auth/users'),
    query: { params: {}, strict: true },
    kind: 'read',
    dedup: false,
    validStatuses: [200],
  },
  {
    route: 'GET /v1/auth/users/{name}',
    method: 'GET',
    path: pathWith('/v1/auth/users/', lookedUpUser),
    query: { params: {}, strict: true },
    kind: 'read',
    dedup: false,
    validStatuses: [200, 404],
  },
  {
    route: 'DELETE /v1/auth/users/{name}',
    method: 'DELETE',
    path: pathWith('/v1/auth/users/', lookedUpUser),
    query: { params: {}, strict: true },
    kind: 'write',
    dedup: true,
  },
  {
    route: 'PUT /v1/auth/roles/{name}',
    method: 'PUT',
    path: pathWith('/v1/auth/roles/', roleName),
    query: { params: {}, strict: true },
    body: body({ permissions: 'array' }, ['permissions'], {
      permissions: str(
        fc.array(
          fc.record({
            resource: fc.constantFrom('kv', 'registry', 'locks', 'elections'),
            prefix: fc.oneof(asciiWord, fc.constant('')),
            access: fc.constantFrom('read', 'write', 'readwrite'),
          }),
          { maxLength: 3 },
        ),
      ),
    }),
    kind: 'write',
    dedup: true,
  },
  {
    route: 'GET /v1/auth/roles',
    method: 'GET',
    path: fixedPath('/v1/auth/roles'),
    query: { params: {}, strict: true },
    kind: 'read',
    dedup: false,
    validStatuses: [200],
  },
  {
    route: 'GET /v1/auth/roles/{name}',
    method: 'GET',
    path: pathWith('/v1/auth/roles/', roleName),
    query: { params: {}, strict: true },
    kind: 'read',
    dedup: false,
    validStatuses: [200, 404],
  },
  {
    route: 'DELETE /v1/auth/roles/{name}',
    method: 'DELETE',
    path: pathWith('/v1/auth/roles/', roleName),
    query: { params: {}, strict: true },
    kind: 'write',
    dedup: true,
  },
];

function waitOf(body: unknown): number {
  const t = (body as { timeoutMs?: unknown } | undefined)?.timeoutMs;
  // Without timeoutMs the server waits up to its request timeout (3 s in these tests).
  return typeof t === 'number' && Number.isSafeInteger(t) && t >= 0 && t <= 300_000 ? t : 3000;
}

/** A request to no route of API.md: unknown paths and methods. */
const unknownRoute: fc.Arbitrary<Builder> = fc
  .tuple(
    fc.constantFrom(
      'GET',
      'PUT',
      'POST',
      'DELETE',
      'PATCH',
      'OPTIONS',
      'HEAD',
      'FOO',
      'get',
      'CONNECT',
    ),
    fc.constantFrom(
      '/',
      '/v1',
      '/v1/',
      '/v2/kv/a',
      '/v1/kv/',
      '/v1/leases/',
      '/v1/locks/',
      '/v1/locks/a/b',
      '/v1/elections/e1/x',
      '//v1/status',
      '/v1/status/',
      '/V1/STATUS',
      '*',
      'http://127.0.0.1/v1/status',
      '/v1/kv/%',
      '/v1/registry/',
      '/v1/watch',
      '/v1/watch/',
    ),
    fc.nat(2),
  )
  .map(([method, target, node]) => () => ({
    route: 'unknown route',
    node,
    method,
    target,
    headers: [],
    kind:
      target.startsWith('/v1/watch') && method === 'GET'
        ? 'stream'
        : method === 'GET' || method === 'HEAD'
          ? 'read'
          : 'write',
    mutation: ['unknown route'],
    dedup: false,
    waitMs: 0,
    publicRoute: false,
    reachesAuth: false,
    ...(target.startsWith('/v1/watch') ? { dropAfterMs: 50 } : {}),
  }));

/** One route's requests. */
function routeArb(spec: RouteSpec): fc.Arbitrary<Builder> {
  const bodyArb = spec.body ? bodyFor(spec.body) : fc.constant(undefined);
  const queryArb = spec.query
    ? queryFor(spec.query)
    : fc.constant({ text: '', mutation: 'valid query', validity: 'valid' as const });
  return fc
    .record({
      path: spec.path,
      query: queryArb,
      body: bodyArb,
      headers: headerArb,
      node: fc.nat(2),
      dropAfterMs: fc.integer({ min: 0, max: 300 }),
      // One write in 20 is cut by its client after 1 to 200 ms (fc.option would cut 19 in 20).
      abort: fc.oneof(
        { weight: 19, arbitrary: fc.constant(undefined) },
        { weight: 1, arbitrary: fc.integer({ min: 1, max: 200 }) },
      ),
      method: fc.oneof(
        { weight: 30, arbitrary: fc.constant(spec.method) },
        { weight: 1, arbitrary: fc.constantFrom('PATCH', 'HEAD', 'OPTIONS') },
      ),
    })
    .map((g) => (s: FuzzState): FuzzRequest => {
      const path = g.path(s);
      const bodyChoice = g.body?.(s);
      const headers: [string, string][] = [...g.headers.headers];
      if (bodyChoice?.contentType) headers.push(['content-type', bodyChoice.contentType]);
      // A query on a path that already has one: the template carries the route's own parameters.
      const target =
        path.path.includes('?') && g.query.text.startsWith('?')
          ? `${path.path}&${g.query.text.slice(1)}`
          : `${path.path}${g.query.text}`;
      const mutation = [
        path.mutation,
        g.query.mutation,
        bodyChoice?.mutation ?? 'no body',
        g.headers.mutation,
      ];
      if (g.method !== spec.method) mutation.push(`method ${g.method}`);
      // API.md's statuses where it says: a request with something wrong that is refused as
      // such (a body that breaks the route's schema, an unknown or repeated query parameter,
      // a malformed Idempotency-Key) is 400 `invalid_request`; a fully valid one gets one of
      // the route's statuses; a method the route does not have is 404.
      const headerValidity =
        g.headers.validity === 'dedupInvalid'
          ? spec.dedup
            ? 'invalid'
            : 'valid'
          : g.headers.validity;
      const parts: Validity[] = [
        path.valid ? 'valid' : 'unknown',
        g.query.validity,
        bodyChoice?.validity ?? 'valid',
        headerValidity,
      ];
      const methodOk = g.method === spec.method;
      let expect: number[] | undefined;
      if (!parts.includes('unknown')) {
        // A method no route has: 404, unless something else is refused first (a bad body is parsed before routing ends).
        if (!methodOk && g.method !== 'HEAD')
          expect = parts.includes('invalid') ? undefined : [404];
        else if (methodOk && parts.includes('invalid')) expect = [400];
        else if (methodOk && spec.validStatuses) expect = spec.validStatuses;
      }
      const parsedBody = bodyChoice?.text === undefined ? undefined : tryParse(bodyChoice.text);
      const req: FuzzRequest = {
        route: spec.route,
        node: g.node,
        method: g.method,
        target,
        headers,
        kind: spec.kind,
        mutation,
        dedup: spec.dedup,
        waitMs: spec.waitMs ? spec.waitMs(parsedBody) : 0,
        publicRoute: PUBLIC_ROUTES.has(spec.route),
        reachesAuth:
          methodOk &&
          path.valid &&
          g.query.validity !== 'unknown' &&
          (g.headers.validity === 'valid' || g.headers.validity === 'dedupInvalid'),
      };
      if (bodyChoice?.text !== undefined) req.body = Buffer.from(bodyChoice.text, 'utf8');
      if (expect) req.expect = expect;
      if (g.headers.idempotencyKey) req.idempotencyKey = g.headers.idempotencyKey;
      if (spec.kind === 'stream' || spec.route === 'GET /v1/snapshot')
        req.dropAfterMs = g.dropAfterMs;
      if (spec.queues) req.queues = true;
      if (g.abort !== undefined && spec.kind === 'write') {
        req.abortAfterMs = g.abort;
        mutation.push(`dropped after ${g.abort} ms`);
      }
      return req;
    });
}

function tryParse(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

const CORE_ROUTES = new Set([
  'GET /v1/kv/{key}',
  'PUT /v1/kv/{key}',
  'DELETE /v1/kv/{key}',
  'POST /v1/txn',
]);

/** Every route of API.md (the core KV ones three times as likely as the others) and unknown ones. */
export const requestArb: fc.Arbitrary<Builder> = fc.oneof(
  ...ROUTES.map((r) => ({ weight: CORE_ROUTES.has(r.route) ? 3 : 1, arbitrary: routeArb(r) })),
  { weight: 1, arbitrary: unknownRoute },
);

const PUBLIC_ROUTES = new Set([
  'GET /health',
  'GET /livez',
  'GET /readyz',
  'GET /metrics',
  'GET /v1/auth/status',
  'POST /v1/auth/token',
]);

export const ROUTE_NAMES = [...ROUTES.map((r) => r.route), 'unknown route'];

// ------------------------------------------------------------------ safety

function decodedOrRaw(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

/**
 * Whether a built request keeps away from what the test relies on: the seed
 * data (nothing mentions SEED_MARK, no prefix delete of everything), the quorum
 * (no voter added, promoted or removed), and authentication staying off (no
 * user `root`).
 */
export function isSafe(req: FuzzRequest, s: FuzzState): boolean {
  const target = req.target;
  const bodyText = req.body?.toString('utf8') ?? '';
  const decodedTarget = decodedOrRaw(decodedOrRaw(target));
  if (
    decodedTarget.includes(SEED_MARK) ||
    bodyText.includes(SEED_MARK) ||
    /\\u007e/i.test(bodyText)
  )
    return false;
  if (`${decodedTarget}${bodyText}`.includes(SEED_LEASE)) return false;
  const method = req.method.toUpperCase();
  const path = target.split('?')[0]!;
  const query = target.includes('?') ? target.slice(target.indexOf('?')) : '';
  // Every user key: only with a key or prefix of its own.
  if (method === 'DELETE' && path.startsWith('/v1/kv') && /prefix=(true|1|&|$)/.test(query)) {
    const key = decodedOrRaw(path.slice('/v1/kv/'.length));
    if (key === '' || key.startsWith('.') || key.startsWith('/')) return false;
  }
  if (path.startsWith('/v1/txn')) {
    const parsed = tryParse(bodyText) as { success?: unknown; failure?: unknown } | undefined;
    for (const list of [parsed?.success, parsed?.failure]) {
      if (!Array.isArray(list)) continue;
      for (const op of list as { op?: unknown; key?: unknown; prefix?: unknown }[])
        if (
          op?.op === 'delete' &&
          op.prefix === true &&
          (op.key === '' || typeof op.key !== 'string')
        )
          return false;
    }
  }
  if (path.startsWith('/v1/cluster/members')) {
    if (method === 'POST' && path === '/v1/cluster/members') {
      const parsed = tryParse(bodyText) as { learner?: unknown } | undefined;
      if (
        parsed &&
        typeof parsed === 'object' &&
        parsed.learner !== true &&
        bodyText.includes('http')
      )
        return false;
      if (
        s.learnersAdded >= MAX_LEARNERS &&
        parsed &&
        (parsed as { learner?: unknown }).learner === true
      )
        return false;
    }
    // Only learners the fuzzer added, and ids no member has, are promoted or removed.
    for (const id of s.memberIds) if (decodedTarget.includes(id)) return false;
    if (path.endsWith('/promote'))
      for (const id of s.learnerIds) if (decodedTarget.includes(id)) return false;
  }
  // Root stays as it is: with authentication on, the test reads through it.
  if (
    path.startsWith('/v1/auth/users') &&
    (method === 'PUT' || method === 'DELETE') &&
    /root/i.test(decodedTarget)
  )
    return false;
  return true;
}
