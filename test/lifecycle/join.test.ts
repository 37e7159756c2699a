/**
 * `raftkv --join` as a real process: a member added as a learner to a
 * running 3-process cluster starts with --join, catches up, survives SIGKILL
 * and a restart from its data dir, is promoted and then serves writes.
 */
import { join } from 'node:path';
import t from 'tap';
import { createNode } from '../../src/tls/certs.js';
import { freePort, get, put, request } from '../integration/helpers.js';
import { waitUntil } from '../integration/http-ops.js';
import { peerScheme, peerTlsArgs } from '../integration/peer-tls.js';
import { cleanEnv, ProcessCluster, RaftkvProcess } from '../integration/process-cluster.js';

t.test('a member added over HTTP joins a running cluster of processes', async (t) => {
  const c = await ProcessCluster.create(3);
  t.teardown(() => c.close());
  await c.startAll();
  await c.waitForLeader();
  for (let i = 0; i < 20; i++) await put(c.url(i % 3), `k${i}`, `v${i}`);

  const [peerPort, clientPort] = [await freePort(), await freePort()];
  const added = await request(c.url(1), 'POST', '/v1/cluster/members', {
    name: 'n4',
    peerUrl: `${peerScheme()}://127.0.0.1:${peerPort}`,
    clientUrl: `http://127.0.0.1:${clientPort}`,
    learner: true,
  });
  t.equal(added.status, 201, JSON.stringify(added.body));
  const initialCluster = c.args(0)[c.args(0).indexOf('--initial-cluster') + 1];
  // With RAFTKV_TEST_PEER_TLS=1, n4 joins over mutual TLS with a certificate of the cluster's CA.
  if (c.peerCerts) await createNode({ dir: c.peerCerts, name: 'n4', hosts: ['127.0.0.1'] });
  const args = [
    '--name',
    'n4',
    '--data-dir',
    join(c.dir, 'n4'),
    '--listen-client',
    `127.0.0.1:${clientPort}`,
    '--listen-peer',
    `127.0.0.1:${peerPort}`,
    '--initial-cluster',
    `${initialCluster},n4=${peerScheme()}://127.0.0.1:${peerPort}`,
    '--tick-ms',
    '20',
    '--log-level',
    'warn',
    '--join',
    ...(c.peerCerts ? peerTlsArgs(c.peerCerts, 'n4') : []),
  ];
  const url = `http://127.0.0.1:${clientPort}`;
  const caughtUp = (key: string) =>
    waitUntil(
      `n4 to serve ${key}`,
      async () => {
        const r = await get(url, key, '?consistency=serializable').catch(() => undefined);
        return r?.status === 200 ? r.body.kv.value : undefined;
      },
      20_000,
      50,
    );

  let n4 = new RaftkvProcess(args, { env: cleanEnv({ coverage: false }) });
  t.teardown(() => n4.kill());
  t.equal(await caughtUp('k19'), 'v19', 'the learner caught up');
  await n4.kill('SIGKILL');
  await put(c.url(0), 'while-down', 'x');
  n4 = new RaftkvProcess(args, { env: cleanEnv({ coverage: false }) });
  t.equal(await caughtUp('while-down'), 'x', 'restarted from its data dir, it catches up again');

  const promoted = await request(c.url(0), 'POST', `/v1/cluster/members/${added.body.id}/promote`);
  t.equal(promoted.status, 200, JSON.stringify(promoted.body));
  const w = await put(url, 'via-n4', 'y');
  t.equal(w.status, 200, 'the promoted member takes writes');
  t.equal((await get(c.url(2), 'via-n4')).body.kv.value, 'y');
});
