/**
 * Bad input to the coordination endpoints (leases, registry, locks,
 * elections) that the other tests leave out: over-long names and values,
 * unknown leases, TTLs and waits out of range, and releasing what another
 * holder owns. Each gets an API.md status and error body (never a 500),
 * changes nothing, and the holder it aimed at keeps what it holds.
 */
import t, { type Test } from 'tap';
import {
  assertError,
  type Case,
  inject,
  kvPath,
  type Method,
  type Reply,
  type RequestOptions,
  type SingleNode,
  startSingleNode,
} from './helpers.js';

const enc = encodeURIComponent;
const MiB = 1024 * 1024;
const YEAR_S = 365 * 24 * 3600;

let n: SingleNode;
/** A live lease (1 h) that owns `held/name`, the lock `job` and leads the election `vote`. */
let lease = '';
let lockKey = '';
let lockToken = 0;
let leaderKey = '';
t.before(async () => {
  n = await startSingleNode();
  lease = (await inject(n.app, 'POST', '/v1/leases', { body: { ttl: 3600 } })).body.id;
  await inject(n.app, 'PUT', '/v1/registry/held/name', { body: { value: 'mine', lease } });
  const lock = (await inject(n.app, 'POST', '/v1/locks/job', { body: { lease } })).body;
  lockKey = lock.key;
  lockToken = lock.fencingToken;
  const campaign = await inject(n.app, 'POST', '/v1/elections/vote/campaign', {
    body: { lease, value: 'me' },
  });
  leaderKey = campaign.body.leader.key;
});
t.teardown(() => n?.close());

const revision = async () => (await inject(n.app, 'GET', '/v1/status')).body.revision as number;
const req = (method: Method, url: string, opts: RequestOptions = {}) =>
  inject(n.app, method, url, opts);

/** Runs each case, checks its error, and that the revision did not move. */
async function expectAll(t: Test, cases: Case[]): Promise<void> {
  const before = await revision();
  for (const [what, method, url, opts, status, code] of cases)
    assertError(t, await req(method, url, opts), status, code, what);
  t.equal(await revision(), before, 'none of them wrote anything');
}

/**
 * API.md sets no length for names: a name past the server's limit must get one of the
 * table's refusals for bad input (400 invalid_request or 413 too_large), never a 500.
 */
function assertRefusedAsTooLong(t: Test, r: Reply, what: string): void {
  const code = r.status === 413 ? 'too_large' : 'invalid_request';
  assertError(t, r, r.status === 413 ? 413 : 400, code, what);
}

/** The fixtures are intact: the name, the lock (through its fence) and the leadership. */
async function assertHolderIntact(t: Test): Promise<void> {
  const entry = await req('GET', '/v1/registry/held/name');
  t.match(entry, { status: 200, body: { value: 'mine', lease } }, 'the name is still held');
  const fenced = await req('POST', '/v1/txn', {
    body: { compare: [{ lock: 'job', token: lockToken }], success: [] },
  });
  t.match(fenced, { status: 200, body: { succeeded: true } }, 'the lock is still held');
  const leader = await req('GET', '/v1/elections/vote');
  t.match(leader, { status: 200, body: { leader: { key: leaderKey } } }, 'the leader still leads');
}

t.test('lease TTLs out of range and unknown lease ids', async (t) => {
  const grant = (body: unknown): [Method, string, RequestOptions] => [
    'POST',
    '/v1/leases',
    { body },
  ];
  await expectAll(t, [
    ['ttl 0', ...grant({ ttl: 0 }), 400, 'invalid_request'],
    ['ttl -1', ...grant({ ttl: -1 }), 400, 'invalid_request'],
    ['ttl 1.5', ...grant({ ttl: 1.5 }), 400, 'invalid_request'],
    ['ttl a year + 1 s', ...grant({ ttl: YEAR_S + 1 }), 400, 'invalid_request'],
    ['ttl 1e300', ...grant({ ttl: 1e300 }), 400, 'invalid_request'],
    ['ttl as a string', ...grant({ ttl: '5' }), 400, 'invalid_request'],
    ['ttl null', ...grant({ ttl: null }), 400, 'invalid_request'],
    [
      'keepalive of an unknown lease',
      'POST',
      '/v1/leases/nope/keepalive',
      {},
      404,
      'lease_not_found',
    ],
    ['lookup of an unknown lease', 'GET', '/v1/leases/nope', {}, 404, 'lease_not_found'],
    ['revoke of an unknown lease', 'DELETE', '/v1/leases/nope', {}, 404, 'lease_not_found'],
    [
      'keepalive of a malformed id',
      'POST',
      `/v1/leases/${enc('a b')}/keepalive`,
      {},
      400,
      'invalid_request',
    ],
    [
      'keepalive of a 129-char id',
      'POST',
      `/v1/leases/${'i'.repeat(129)}/keepalive`,
      {},
      400,
      'invalid_request',
    ],
  ]);
  const yearLong = await req('POST', '/v1/leases', { body: { ttl: YEAR_S } });
  t.equal(yearLong.status, 201, 'a TTL of exactly a year is granted');
  t.equal((await req('DELETE', `/v1/leases/${yearLong.body.id}`)).status, 200);
});

t.test("registry: over-long names and values, unknown leases, another lease's name", async (t) => {
  const reg = (name: string, body: unknown): [Method, string, RequestOptions] => [
    'PUT',
    `/v1/registry/${enc(name)}`,
    { body },
  ];
  await expectAll(t, [
    ['value of 1 MiB + 1', ...reg('big', { value: 'v'.repeat(MiB + 1), lease }), 413, 'too_large'],
    ['unknown lease', ...reg('orphan', { value: 'v', lease: 'nope' }), 404, 'lease_not_found'],
    ['lease as a number', ...reg('orphan', { value: 'v', lease: 5 }), 400, 'invalid_request'],
    ['missing lease', ...reg('orphan', { value: 'v' }), 400, 'invalid_request'],
    ['value as a number', ...reg('orphan', { value: 5, lease }), 400, 'invalid_request'],
    [
      'taking a name another lease holds',
      ...reg('held/name', { value: 'theirs', lease: 'other' }),
      409,
      'name_taken',
    ],
    [
      "unregistering another lease's name",
      'DELETE',
      `/v1/registry/held/name?lease=other`,
      {},
      409,
      'compare_failed',
    ],
  ]);
  const before = await revision();
  const longName = 'n'.repeat(1025);
  for (const [what, method, url, opts] of [
    ['PUT', 'PUT', `/v1/registry/${longName}`, { body: { value: 'v', lease } }],
    ['GET', 'GET', `/v1/registry/${longName}`, {}],
    ['DELETE', 'DELETE', `/v1/registry/${longName}`, {}],
    ['PUT of 4 KiB', 'PUT', `/v1/registry/${'n'.repeat(4096)}`, { body: { value: 'v', lease } }],
  ] as const)
    assertRefusedAsTooLong(t, await req(method, url, opts), `registry name, ${what}`);
  t.equal(await revision(), before, 'no over-long name was written');
  // The longest name, in 3-byte characters: its key still fits the 4 KiB key limit.
  const longest = await req('PUT', `/v1/registry/${enc('€'.repeat(1024))}`, {
    body: { value: 'v', lease },
  });
  t.equal(
    longest.status,
    201,
    `a name of 1024 characters (3 KiB) is accepted: ${longest.text.slice(0, 200)}`,
  );
  await assertHolderIntact(t);
});

t.test(
  'locks: over-long names, unknown leases, waits out of range, releasing another holder',
  async (t) => {
    const long = 'l'.repeat(257);
    const other = (await req('POST', '/v1/leases', { body: { ttl: 3600 } })).body.id as string;
    await expectAll(t, [
      [
        'unknown lease',
        'POST',
        '/v1/locks/job2',
        { body: { lease: 'nope', timeoutMs: 100 } },
        404,
        'lease_not_found',
      ],
      [
        'timeoutMs -1',
        'POST',
        '/v1/locks/job',
        { body: { lease: other, timeoutMs: -1 } },
        400,
        'invalid_request',
      ],
      [
        'timeoutMs 1.5',
        'POST',
        '/v1/locks/job',
        { body: { lease: other, timeoutMs: 1.5 } },
        400,
        'invalid_request',
      ],
      [
        'timeoutMs 1e12',
        'POST',
        '/v1/locks/job',
        { body: { lease: other, timeoutMs: 1e12 } },
        400,
        'invalid_request',
      ],
      ['release without a key', 'DELETE', '/v1/locks/job', {}, 400, 'invalid_request'],
      [
        "release of job's holder through another lock",
        'DELETE',
        `/v1/locks/job2?key=${enc(lockKey)}`,
        {},
        400,
        'invalid_request',
      ],
      [
        'release with a key that holds nothing',
        'DELETE',
        `/v1/locks/job?key=${enc(`${lockKey}0`)}`,
        {},
        404,
        'key_not_found',
      ],
    ]);
    const before = await revision();
    for (const [what, method, url, opts] of [
      ['acquire', 'POST', `/v1/locks/${long}`, { body: { lease: other, timeoutMs: 100 } }],
      ['release', 'DELETE', `/v1/locks/${long}?key=x`, {}],
    ] as const)
      assertRefusedAsTooLong(t, await req(method, url, opts), `lock name of 257, ${what}`);
    t.equal(await revision(), before, 'no over-long lock was written');

    // A former holder's key cannot release the next holder.
    const first = await req('POST', '/v1/locks/relay', { body: { lease: other } });
    t.equal(first.status, 200, 'the other lease takes lock relay');
    t.equal((await req('DELETE', `/v1/locks/relay?key=${enc(first.body.key)}`)).status, 200);
    const second = await req('POST', '/v1/locks/relay', { body: { lease } });
    t.equal(second.status, 200, 'then the fixture lease takes it');
    const stale = await req('DELETE', `/v1/locks/relay?key=${enc(first.body.key)}`);
    assertError(t, stale, 404, 'key_not_found', "the former holder's key releases nothing");
    const fenced = await req('POST', '/v1/txn', {
      body: { compare: [{ lock: 'relay', token: second.body.fencingToken }], success: [] },
    });
    t.match(fenced, { status: 200, body: { succeeded: true } }, 'the new holder still holds');
    const staleFence = await req('POST', '/v1/txn', {
      body: { compare: [{ lock: 'relay', token: first.body.fencingToken }], success: [] },
    });
    t.match(
      staleFence,
      { status: 200, body: { succeeded: false } },
      "the former holder's fence is false",
    );
    await req('DELETE', `/v1/leases/${other}`);
    await assertHolderIntact(t);
  },
);

t.test(
  'elections: over-long names, unknown leases, another candidate resigning or proclaiming',
  async (t) => {
    const long = 'e'.repeat(257);
    await expectAll(t, [
      [
        'campaign with an unknown lease',
        'POST',
        '/v1/elections/vote2/campaign',
        { body: { lease: 'nope', value: 'v', timeoutMs: 100 } },
        404,
        'lease_not_found',
      ],
      ['leader of an empty election', 'GET', '/v1/elections/empty', {}, 404, 'no_leader_elected'],
      [
        'proclaim with a key that does not lead',
        'POST',
        '/v1/elections/vote/proclaim',
        { body: { key: `${leaderKey}0`, value: 'usurper' } },
        409,
        'compare_failed',
      ],
      [
        "resign of vote's leader through another election",
        'DELETE',
        `/v1/elections/vote2/leader?key=${enc(leaderKey)}`,
        {},
        400,
        'invalid_request',
      ],
      ['resign without a key', 'DELETE', '/v1/elections/vote/leader', {}, 400, 'invalid_request'],
    ]);
    const before = await revision();
    for (const [what, method, url, opts] of [
      [
        'campaign',
        'POST',
        `/v1/elections/${long}/campaign`,
        { body: { lease, value: 'v', timeoutMs: 100 } },
      ],
      ['leader', 'GET', `/v1/elections/${long}`, {}],
      ['proclaim', 'POST', `/v1/elections/${long}/proclaim`, { body: { key: 'k', value: 'v' } }],
      ['resign', 'DELETE', `/v1/elections/${long}/leader?key=k`, {}],
    ] as const)
      assertRefusedAsTooLong(t, await req(method, url, opts), `election name of 257, ${what}`);
    t.equal(await revision(), before, 'no over-long election was written');
    await assertHolderIntact(t);
  },
);

/** A fresh lease owning registry name `probe/{tag}`, lock `p{tag}` and election `p{tag}`. */
async function probeHolder(tag: string) {
  const id = (await req('POST', '/v1/leases', { body: { ttl: 3600 } })).body.id as string;
  await req('PUT', `/v1/registry/probe/${tag}`, { body: { value: 'v', lease: id } });
  const token = (await req('POST', `/v1/locks/p${tag}`, { body: { lease: id } })).body.fencingToken;
  await req('POST', `/v1/elections/p${tag}/campaign`, { body: { lease: id, value: 'v' } });
  return {
    async intact(): Promise<string[]> {
      const lost: string[] = [];
      if ((await req('GET', `/v1/registry/probe/${tag}`)).status !== 200) lost.push('name');
      const fenced = await req('POST', '/v1/txn', {
        body: { compare: [{ lock: `p${tag}`, token }], success: [] },
      });
      if (fenced.body?.succeeded !== true) lost.push('lock');
      if ((await req('GET', `/v1/elections/p${tag}`)).status !== 200) lost.push('leadership');
      return lost;
    },
    revoke: () => req('DELETE', `/v1/leases/${id}`),
  };
}

t.test('the KV API cannot delete or read the coordination keys behind their owners', async (t) => {
  // Holder keys live in the same store under U+0000: only their owners may remove them.
  const probes: [what: string, method: Method, url: string, opts: RequestOptions][] = [
    ['DELETE of the lock holder key', 'DELETE', kvPath(lockKey), {}],
    ['PUT over the lock holder key', 'PUT', kvPath(lockKey), { body: { value: 'forged' } }],
    ['prefix DELETE of U+0000', 'DELETE', '/v1/kv/%00?prefix=true', {}],
    ['prefix DELETE of everything', 'DELETE', '/v1/kv/?prefix=true', {}],
    [
      'txn delete of the empty prefix',
      'POST',
      '/v1/txn',
      { body: { success: [{ op: 'delete', key: '', prefix: true }] } },
    ],
  ];
  for (const [i, [what, method, url, opts]] of probes.entries()) {
    const holder = await probeHolder(String(i));
    const r = await req(method, url, opts);
    t.ok(r.status < 500, `${what}: not a 500 (${r.status})`);
    t.same(await holder.intact(), [], `${what}: the holder keeps its name, lock and leadership`);
    await holder.revoke();
  }
  // Reads: GET /v1/kv?prefix= hides the reserved keys; a txn get of the same range must too.
  const holder = await probeHolder('read');
  const got = await req('POST', '/v1/txn', {
    body: { success: [{ op: 'get', key: '', prefix: true }] },
  });
  const keys: string[] = (got.body?.results?.[0]?.kvs ?? []).map((kv: { key: string }) => kv.key);
  t.same(
    keys.filter((k) => k.startsWith('\u0000')),
    [],
    'a txn get of the empty prefix shows no coordination key',
  );
  await holder.revoke();
  await assertHolderIntact(t);
});
