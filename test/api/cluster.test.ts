/** API.md "Cluster and operations" on one node: status, members, health, metrics, leader, snapshot, membership. */
import t from 'tap';
import { decodeBackup } from '../../src/server/backup.js';
import { assertError, http, inject, type SingleNode, startSingleNode } from './helpers.js';

let n: SingleNode;
t.before(async () => {
  n = await startSingleNode();
});
t.teardown(() => n?.close());

const isCount = (v: unknown) => Number.isSafeInteger(v) && (v as number) >= 0;

t.test('GET /v1/status: exactly API.md fields, with their types', async (t) => {
  await inject(n.app, 'PUT', '/v1/kv/status-key', { body: { value: 'x' } });
  const r = await inject(n.app, 'GET', '/v1/status');
  t.equal(r.status, 200);
  t.match(r.headers['content-type'], /^application\/json/);
  const s = r.body;
  for (const field of [
    'id',
    'name',
    'role',
    'leader',
    'term',
    'commitIndex',
    'appliedIndex',
    'revision',
    'compactRevision',
    'members',
    'dbSizeBytes',
    'version',
    'clusterVersion',
  ]) {
    t.ok(field in s, `status has ${field}`);
  }
  t.type(s.id, 'string', 'member ids are strings');
  t.ok(s.id.length > 0);
  t.equal(s.name, 'n1');
  t.equal(s.role, 'leader', 'a one-node cluster leads itself');
  t.equal(s.leader, s.id);
  for (const f of [
    'term',
    'commitIndex',
    'appliedIndex',
    'revision',
    'compactRevision',
    'members',
  ]) {
    t.ok(isCount(s[f]), `${f} is a non-negative integer`);
  }
  t.ok(isCount(s.dbSizeBytes), 'dbSizeBytes is a non-negative integer');
  t.ok(s.term >= 1);
  t.ok(s.appliedIndex <= s.commitIndex);
  t.ok(s.revision >= 1, 'the write above made a revision');
  t.equal(s.members, 1);
  t.type(s.version, 'string');
  t.match(s.version, /^\d+\.\d+\.\d+/);
  t.equal(s.clusterVersion, s.version, 'one member: the cluster runs its version');

  const before = s.revision;
  await inject(n.app, 'PUT', '/v1/kv/status-key', { body: { value: 'y' } });
  const after = (await inject(n.app, 'GET', '/v1/status')).body;
  t.equal(after.revision, before + 1, 'revision follows writes');
  t.ok(after.commitIndex > s.commitIndex);

  const unknown = await inject(n.app, 'GET', '/v1/status?verbose=1');
  assertError(t, unknown, 400, 'invalid_request', 'unknown query parameter');
});

t.test('GET /v1/cluster/members', async (t) => {
  const status = (await inject(n.app, 'GET', '/v1/status')).body;
  const r = await inject(n.app, 'GET', '/v1/cluster/members');
  t.equal(r.status, 200);
  t.strictSame(Object.keys(r.body).sort(), ['leader', 'members']);
  t.equal(r.body.leader, status.id);
  t.equal(r.body.members.length, 1);
  const m = r.body.members[0];
  t.strictSame(Object.keys(m).sort(), ['clientUrls', 'id', 'name', 'peerUrls', 'role', 'version']);
  t.ok(m.version === null || m.version === status.version, 'the published version, or null');
  t.equal(m.id, status.id);
  t.equal(m.name, 'n1');
  t.equal(m.role, 'voter');
  t.strictSame(m.peerUrls, [n.cluster.nodes[0]!.peerUrl]);
  t.ok(Array.isArray(m.clientUrls));
  for (const u of [...m.peerUrls, ...m.clientUrls]) t.match(u, /^http:\/\/127\.0\.0\.1:\d+$/);
});

t.test('GET /health and GET /metrics', async (t) => {
  const h = await inject(n.app, 'GET', '/health');
  t.equal(h.status, 200);
  t.strictSame(h.body, { status: 'ok' });
  t.match(h.headers['content-type'], /^application\/json/);

  const m = await inject(n.app, 'GET', '/metrics');
  t.equal(m.status, 200);
  t.match(m.headers['content-type'], /^text\/plain/, 'Prometheus text format');
  t.match(m.text, /^# HELP \w+ .+$/m);
  t.match(m.text, /^# TYPE \w+ (counter|gauge|histogram|summary|untyped)$/m);
  t.match(m.text, /^raftkv_\w+(\{[^}]*\})? [-+0-9.eE]+$/m, 'a raftkv sample line');
  // Every non-comment line is a sample: name{labels} value.
  const bad = m.text
    .split('\n')
    .filter((l) => l !== '' && !l.startsWith('#'))
    .filter((l) => !/^[a-zA-Z_:][a-zA-Z0-9_:]*(\{.*\})? (-?[0-9.eE+-]+|NaN|[+-]Inf)$/.test(l));
  t.strictSame(bad, [], 'every sample line parses');

  // The same over real HTTP.
  const real = await http(n.url, 'GET', '/health');
  t.equal(real.status, 200);
  t.strictSame(real.body, { status: 'ok' });
});

t.test(
  'membership changes on a one-member cluster: validation, and a learner added and removed',
  async (t) => {
    const self = (await inject(n.app, 'GET', '/v1/status')).body;
    const good = { name: 'n9', peerUrl: 'http://127.0.0.1:1', clientUrl: 'http://127.0.0.1:2' };
    for (const body of [
      {},
      { ...good, name: '' },
      { ...good, name: 'a b' },
      { ...good, peerUrl: 'ftp://x' },
      { ...good, clientUrl: 'not a url' },
      { ...good, learner: 'yes' },
      { ...good, extra: 1 },
      { ...good, name: 'n1' },
    ]) {
      const r = await inject(n.app, 'POST', '/v1/cluster/members', { body });
      assertError(t, r, 400, 'invalid_request', `add ${JSON.stringify(body)}`);
    }
    for (const [method, path, status, code] of [
      ['POST', '/v1/cluster/members/abc/promote', 400, 'invalid_request'],
      ['DELETE', '/v1/cluster/members/abc', 400, 'invalid_request'],
      ['POST', '/v1/cluster/members/feedfacefeedface/promote', 404, 'member_not_found'],
      ['DELETE', '/v1/cluster/members/feedfacefeedface', 404, 'member_not_found'],
      ['POST', `/v1/cluster/members/${self.id}/promote`, 400, 'invalid_request'],
      ['DELETE', `/v1/cluster/members/${self.id}`, 400, 'invalid_request'],
    ] as const) {
      assertError(t, await inject(n.app, method, path), status, code, `${method} ${path}`);
    }
    t.equal((await inject(n.app, 'GET', '/v1/status')).body.members, 1, 'nothing changed');

    // A learner does not count for the quorum: this one never starts, and the node still serves.
    const added = await inject(n.app, 'POST', '/v1/cluster/members', {
      body: { ...good, learner: true },
    });
    t.equal(added.status, 201, added.text);
    t.match(added.body, { id: /^[0-9a-f]{16}$/, name: 'n9', role: 'learner' });
    t.strictSame(added.body.peerUrls, [good.peerUrl]);
    const listed = (await inject(n.app, 'GET', '/v1/cluster/members')).body.members;
    t.ok(
      listed.some(
        (m: { id: string; role: string }) => m.id === added.body.id && m.role === 'learner',
      ),
    );
    t.equal((await inject(n.app, 'PUT', '/v1/kv/still', { body: { value: 'ok' } })).status, 200);
    const removed = await inject(n.app, 'DELETE', `/v1/cluster/members/${added.body.id}`);
    t.equal(removed.status, 200, removed.text);
    t.strictSame(removed.body, { id: added.body.id, removed: true });
    t.equal((await inject(n.app, 'GET', '/v1/status')).body.members, 1);
  },
);

t.test(
  'membership changes asked together: each applied in turn, a duplicate name refused, none 503',
  async (t) => {
    const body = (name: string, port: number) => ({
      body: {
        name,
        peerUrl: `http://127.0.0.1:${port}`,
        clientUrl: `http://127.0.0.1:${port + 1}`,
        learner: true,
      },
    });
    const answers = await Promise.all([
      inject(n.app, 'POST', '/v1/cluster/members', body('m1', 11)),
      inject(n.app, 'POST', '/v1/cluster/members', body('m2', 21)),
      inject(n.app, 'POST', '/v1/cluster/members', body('m1', 31)),
      inject(n.app, 'POST', '/v1/cluster/members', body('m3', 41)),
    ]);
    t.same(
      answers.map((a) => a.status),
      [201, 201, 400, 201],
      answers.map((a) => a.text).join('\n'),
    );
    assertError(t, answers[2]!, 400, 'invalid_request', 'the second m1');
    const ids = [answers[0]!, answers[1]!, answers[3]!].map((a) => a.body.id as string);
    const listed = (await inject(n.app, 'GET', '/v1/cluster/members')).body.members as {
      name: string;
    }[];
    t.equal(listed.filter((m) => m.name === 'm1').length, 1, 'one member named m1');
    const removed = await Promise.all(
      ids.map((id) => inject(n.app, 'DELETE', `/v1/cluster/members/${id}`)),
    );
    t.same(
      removed.map((r) => r.status),
      [200, 200, 200],
      removed.map((r) => r.text).join('\n'),
    );
    t.equal((await inject(n.app, 'GET', '/v1/status')).body.members, 1);
  },
);

t.test(
  'POST /v1/cluster/leader on a one-member cluster: nowhere to go, or already there',
  async (t) => {
    const self = (await inject(n.app, 'GET', '/v1/status')).body;
    for (const body of [{}, undefined]) {
      const r = await inject(
        n.app,
        'POST',
        '/v1/cluster/leader',
        body === undefined ? {} : { body },
      );
      assertError(t, r, 400, 'invalid_request', `body ${JSON.stringify(body)}`);
      t.match(r.body.error.message, /no other voter/);
    }
    const same = await inject(n.app, 'POST', '/v1/cluster/leader', { body: { to: self.id } });
    t.equal(same.status, 200, 'to the member that leads: nothing to do');
    t.strictSame(same.body, { leader: self.id, term: self.term });
    assertError(
      t,
      await inject(n.app, 'POST', '/v1/cluster/leader', { body: { to: 'feedfacefeedface' } }),
      404,
      'member_not_found',
      'an unknown member',
    );
    for (const body of [{ to: 5 }, { to: '' }, { to: self.id, please: true }, [self.id], 'x']) {
      const r = await inject(n.app, 'POST', '/v1/cluster/leader', { body });
      assertError(t, r, 400, 'invalid_request', `body ${JSON.stringify(body)}`);
    }
    const after = (await inject(n.app, 'GET', '/v1/status')).body;
    t.equal(after.leader, self.id, 'still the leader');
  },
);

t.test('GET /v1/snapshot: a backup file of the data as of the request', async (t) => {
  await inject(n.app, 'PUT', '/v1/kv/backed-up', { body: { value: 'yes' } });
  const res = await fetch(`${n.url}/v1/snapshot`);
  t.equal(res.status, 200);
  t.equal(res.headers.get('content-type'), 'application/octet-stream');
  t.match(res.headers.get('content-disposition'), /^attachment; filename="raftkv-r\d+\.snap"$/);
  const { header, state } = decodeBackup(new Uint8Array(await res.arrayBuffer()));
  const status = (await inject(n.app, 'GET', '/v1/status')).body;
  t.equal(header.revision, status.revision);
  t.equal(header.clusterId.length > 0, true);
  t.ok(new TextDecoder().decode(state).includes('backed-up'), 'the key is in it');
  assertError(t, await inject(n.app, 'GET', '/v1/snapshot?x=1'), 400, 'invalid_request');
});

t.test('unknown routes and methods: 404 with an error body', async (t) => {
  for (const [method, path] of [
    ['GET', '/v1/nope'],
    ['GET', '/v2/kv/a'],
    ['PATCH', '/v1/kv/a'],
    ['POST', '/v1/kv/a'],
    ['PUT', '/v1/status'],
  ] as const) {
    const r = await inject(n.app, method, path);
    assertError(t, r, 404, 'not_found', `${method} ${path}`);
  }
});
