/**
 * The space quota on a 3-node in-process cluster with a tiny --quota-bytes:
 * filling it raises the nospace alarm cluster-wide; writes that grow the state
 * answer 507 quota_exceeded and apply nothing, while reads, deletes, compaction
 * and lease revokes work; freeing space clears the alarm; `kvctl alarm list`
 * and `kvctl alarm disarm` work (a member still over its quota raises it again).
 */
import t, { type Test } from 'tap';
import { startCluster } from '../integration/helpers.js';
import { kvctlRunner } from '../support/kvctl-run.js';
import { LogCapture } from '../support/log-capture.js';
import { assertError, eventually, http, kvPath, type TestCluster } from './helpers.js';

const QUOTA = 40_000;
const VALUE = 'v'.repeat(200);
const logs = new LogCapture();
let cluster: TestCluster;
let url = '';
const { run: kvctl, killAll } = kvctlRunner(() => url, 30_000);

t.before(async () => {
  cluster = await startCluster(3, { quotaBytes: QUOTA }, (name) => ({ logger: logs.logger(name) }));
  url = cluster.url(await cluster.waitForLeader());
});
t.teardown(async () => {
  killAll();
  await cluster?.close();
});

/** Puts fresh keys until one is refused with 507; returns how many were acknowledged. */
async function fill(t: Test, prefix: string): Promise<number> {
  let acked = 0;
  for (let i = 0; i < 1000; i++) {
    const r = await http(url, 'PUT', kvPath(`${prefix}/${i}`), { body: { value: VALUE } });
    if (r.status === 200) {
      acked++;
      continue;
    }
    assertError(t, r, 507, 'quota_exceeded', 'the write after the quota');
    t.match(r.body.error.message, /space quota/);
    return acked;
  }
  throw new Error('1000 puts of 200 B never hit a 40 kB quota');
}

async function alarms(i = 0): Promise<{ memberId: string; alarm: string }[]> {
  const r = await http(cluster.url(i), 'GET', '/v1/alarms');
  if (r.status !== 200) throw new Error(`GET /v1/alarms: ${r.status} ${r.text}`);
  return r.body.alarms;
}

t.test('filling the state raises nospace; growing writes get 507, the rest works', async (t) => {
  const lease = await http(url, 'POST', '/v1/leases', { body: { ttl: 60 } });
  t.equal(lease.status, 201);
  const leaseId = lease.body.id as string;
  t.equal(
    (await http(url, 'PUT', kvPath('leased'), { body: { value: 'x', lease: leaseId } })).status,
    200,
  );
  const acked = await fill(t, 'fill');
  // 40 kB at about 420 B per version (key, value and the per-version overhead) is about 95 puts.
  t.ok(acked >= 50 && acked <= 200, `${acked} puts acknowledged before the quota`);

  // Every member is over its (equal) quota: each raises its own alarm.
  await eventually(
    '3 alarms',
    async () => ((await alarms()).length === 3 ? true : undefined),
    10_000,
  );
  for (let i = 0; i < 3; i++) {
    const s = await http(cluster.url(i), 'GET', '/v1/status');
    t.equal(s.body.quotaBytes, QUOTA, `member ${i}: status gives the quota`);
    t.ok(s.body.stateSizeBytes > QUOTA, `member ${i}: the state is over it`);
    t.equal(s.body.alarms.length, 3, `member ${i}: status lists the alarms`);
    const ready = await http(cluster.url(i), 'GET', '/readyz');
    t.equal(ready.status, 200, 'readyz stays ready: reads work');
  }
  t.equal(logs.events('alarm_raised').length >= 3, true, 'alarm_raised in the event log');

  const revision = (await http(url, 'GET', '/v1/status')).body.revision as number;
  const refused: [string, 'PUT' | 'POST', string, unknown][] = [
    ['a put', 'PUT', kvPath('fill/0'), { value: 'overwrite' }],
    ['a new key', 'PUT', kvPath('new'), { value: 'x' }],
    ['a txn with a put', 'POST', '/v1/txn', { success: [{ op: 'put', key: 'y', value: '1' }] }],
    ['a lease grant', 'POST', '/v1/leases', { ttl: 60 }],
    ['a registry entry', 'PUT', '/v1/registry/svc', { lease: leaseId, value: 'addr' }],
    ['a lock', 'POST', '/v1/locks/l1', { lease: leaseId }],
    ['a campaign', 'POST', '/v1/elections/e1/campaign', { lease: leaseId, value: 'me' }],
  ];
  for (const [what, method, path, body] of refused) {
    const r = await http(url, method, path, { body });
    assertError(t, r, 507, 'quota_exceeded', what);
  }
  const get = await http(url, 'GET', kvPath('fill/0'));
  t.equal(get.status, 200, 'reads work');
  t.equal(get.body.kv.value, VALUE, 'the refused overwrite applied nothing');
  t.equal(get.body.revision, revision, 'no refused write made a revision');
  t.equal((await http(url, 'GET', kvPath('new'))).status, 404);

  const del = await http(url, 'DELETE', kvPath('fill/', '?prefix=true'));
  t.equal(del.status, 200, 'a delete works');
  t.equal(del.body.deleted, acked);
  const revoke = await http(url, 'DELETE', `/v1/leases/${leaseId}`);
  t.equal(revoke.status, 200, 'a lease revoke works');
  const now = (await http(url, 'GET', '/v1/status')).body.revision as number;
  const compact = await http(url, 'POST', '/v1/compact', { body: { revision: now } });
  t.equal(compact.status, 200, 'compaction works');

  // The state is back under 90 % of the quota: each member clears its alarm.
  await eventually(
    '0 alarms',
    async () => ((await alarms()).length === 0 ? true : undefined),
    10_000,
  );
  t.ok(logs.events('alarm_cleared').length >= 3, 'alarm_cleared in the event log');
  t.equal((await http(url, 'PUT', kvPath('after'), { body: { value: 'x' } })).status, 200);
});

t.test('kvctl alarm list and disarm; a member still over raises it again', async (t) => {
  const sentinel = await http(url, 'PUT', kvPath('sentinel'), { body: { value: 'x' } });
  t.equal(sentinel.status, 200);
  await fill(t, 'again');
  await eventually(
    '3 alarms',
    async () => ((await alarms()).length === 3 ? true : undefined),
    10_000,
  );
  const list = await kvctl(['alarm', 'list']);
  t.equal(list.code, 0, list.stderr);
  t.match(list.stdout, /MEMBER-ID\s+ALARM/);
  t.equal(list.stdout.match(/nospace/g)?.length, 3, 'three alarms listed');
  const json = await kvctl(['alarm', 'list', '-o', 'json']);
  t.equal(JSON.parse(json.stdout).alarms.length, 3);

  const disarm = await kvctl(['alarm', 'disarm', '-o', 'json']);
  t.equal(disarm.code, 0, disarm.stderr);
  t.equal(JSON.parse(disarm.stdout).disarmed.length, 3, 'every alarm disarmed');
  // Still over the quota: the members raise it again at their next tick.
  await eventually(
    '3 alarms',
    async () => ((await alarms()).length === 3 ? true : undefined),
    10_000,
  );

  const one = (await alarms())[0]!.memberId;
  const single = await http(url, 'POST', '/v1/alarms/disarm', { body: { memberId: one } });
  t.equal(single.status, 200);
  t.same(single.body.disarmed, [{ memberId: one, alarm: 'nospace' }], "one member's alarm");
  const bad = await http(url, 'POST', '/v1/alarms/disarm', { body: { alarm: 'corrupt' } });
  assertError(t, bad, 400, 'invalid_request', 'an unknown alarm type');

  t.equal((await http(url, 'DELETE', kvPath('again/', '?prefix=true'))).status, 200);
  // A compaction at N keeps what a replay of N needs (the values N's deletes replaced) until
  // the next one: compacting at a revision after the big delete frees it all.
  t.equal((await http(url, 'DELETE', kvPath('sentinel'))).status, 200);
  const rev = (await http(url, 'GET', '/v1/status')).body.revision as number;
  t.equal((await http(url, 'POST', '/v1/compact', { body: { revision: rev } })).status, 200);
  await eventually(
    '0 alarms',
    async () => ((await alarms()).length === 0 ? true : undefined),
    10_000,
  );
  const none = await kvctl(['alarm', 'list']);
  t.match(none.stdout, /no active alarms/);
});
