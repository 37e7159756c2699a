/**
 * A 3-node cluster of real `raftkv` processes with HTTPS (mutual TLS) on the
 * client port and mutual TLS on every peer link, certificates made by
 * `raftkv certs`' module:
 * - writes through one node are read on another;
 * - plain HTTP to either port is not served, nor HTTPS without a certificate;
 * - a process with a certificate from another CA cannot join, cannot reach a
 *   member's peer port, and does not disturb the term while it tries;
 * - new node certificates (same CA) and SIGHUP while writes go on: every
 *   write succeeds, new TLS connections see the new certificates, and a
 *   restarted member rejoins over the new ones.
 * Everything listens on 127.0.0.1.
 */
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import t from 'tap';
import { Agent, request } from 'undici';
import { createCa, createClient, createNode } from '../../src/tls/certs.js';
import { freePort } from './helpers.js';
import { waitUntil } from './http-ops.js';
import { cleanEnv, RaftkvProcess } from './process-cluster.js';

const dir = mkdtempSync(join(tmpdir(), 'raftkv-tls-cluster-'));
const certs = join(dir, 'certs');
const otherCerts = join(dir, 'other-ca');
const names = ['n1', 'n2', 'n3'];
/** Writes that must go through while certificates rotate (the writer runs on until it has them). */
const ROTATION_WRITES_MIN = 100;

await createCa({ dir: certs });
for (const name of names) await createNode({ dir: certs, name, hosts: ['127.0.0.1', 'localhost'] });
await createClient({ dir: certs, user: 'root' });
// An outsider: a CA of its own, and a node certificate that looks right in every other way.
await createCa({ dir: otherCerts });
await createNode({ dir: otherCerts, name: 'n2', hosts: ['127.0.0.1', 'localhost'] });

const file = (d: string, f: string) => readFileSync(join(d, f));
const memberClientTls = () => ({
  ca: file(certs, 'ca.crt'),
  cert: file(certs, 'client.root.crt'),
  key: file(certs, 'client.root.key'),
});
const memberPeerTls = () => ({
  ca: file(certs, 'ca.crt'),
  cert: file(certs, 'n1.crt'),
  key: file(certs, 'n1.key'),
});
const outsiderTls = () => ({
  ca: file(otherCerts, 'ca.crt'),
  cert: file(otherCerts, 'n2.crt'),
  key: file(otherCerts, 'n2.key'),
});

const clientPorts = await Promise.all(names.map(() => freePort()));
const peerPorts = await Promise.all(names.map(() => freePort()));
const peerUrl = (i: number) => `https://127.0.0.1:${peerPorts[i]}`;
const clientUrl = (i: number) => `https://127.0.0.1:${clientPorts[i]}`;
const initialCluster = names.map((n, i) => `${n}=${peerUrl(i)}`).join(',');

/** Raft timing loose enough that a busy 2-core machine does not hold spurious elections. */
const TIMING = ['--tick-ms', '50', '--election-ticks', '40', '--request-timeout-ms', '3000'];

function memberArgs(i: number): string[] {
  const name = names[i]!;
  return [
    '--name',
    name,
    '--data-dir',
    join(dir, name),
    '--listen-client',
    `127.0.0.1:${clientPorts[i]}`,
    '--listen-peer',
    `127.0.0.1:${peerPorts[i]}`,
    '--initial-cluster',
    initialCluster,
    '--client-cert-file',
    join(certs, `${name}.crt`),
    '--client-key-file',
    join(certs, `${name}.key`),
    '--client-ca-file',
    join(certs, 'ca.crt'),
    '--peer-cert-file',
    join(certs, `${name}.crt`),
    '--peer-key-file',
    join(certs, `${name}.key`),
    '--peer-ca-file',
    join(certs, 'ca.crt'),
    ...TIMING,
    '--log-level',
    'warn',
  ];
}

const procs: RaftkvProcess[] = [];
const outsiders: RaftkvProcess[] = [];
const client = new Agent({ connect: memberClientTls() });
t.teardown(async () => {
  await Promise.all([...procs, ...outsiders].map((p) => p.kill('SIGKILL').catch(() => {})));
  await client.close();
  rmSync(dir, { recursive: true, force: true });
});

interface Answer {
  status: number;
  body: Record<string, unknown>;
}

/** One HTTPS request to the client API with the root client certificate, bounded. */
async function api(
  i: number,
  path: string,
  init: { method?: 'GET' | 'PUT' | 'POST' | 'DELETE'; body?: unknown } = {},
  timeoutMs = 5000,
): Promise<Answer> {
  const res = await request(`${clientUrl(i)}${path}`, {
    dispatcher: client,
    method: init.method ?? 'GET',
    ...(init.body !== undefined
      ? { body: JSON.stringify(init.body), headers: { 'content-type': 'application/json' } }
      : {}),
    signal: AbortSignal.timeout(timeoutMs),
  });
  const text = await res.body.text();
  return {
    status: res.statusCode,
    body: text ? (JSON.parse(text) as Record<string, unknown>) : {},
  };
}

interface Status {
  id: string;
  role: string;
  leader: string | null;
  term: number;
  appliedIndex: number;
}

const statusOf = (i: number): Promise<Status | undefined> =>
  api(i, '/v1/status', {}, 1000).then(
    (a) => (a.status === 200 ? (a.body as unknown as Status) : undefined),
    () => undefined,
  );

function start(i: number): RaftkvProcess {
  const proc = new RaftkvProcess(memberArgs(i), { env: cleanEnv({ coverage: false }) });
  procs[i] = proc;
  return proc;
}

/** Waits until every running member follows one leader; returns the statuses. */
async function waitForLeader(timeoutMs = 30_000): Promise<Status[]> {
  return waitUntil(
    'one leader that all three members follow',
    async () => {
      for (const p of procs) {
        if (!p.running) throw new Error(`a member exited: ${p.stderr}`);
      }
      const sts = await Promise.all(names.map((_, i) => statusOf(i)));
      if (sts.some((s) => s === undefined)) return undefined;
      const leader = sts.find((s) => s!.role === 'leader');
      if (!leader || !sts.every((s) => s!.leader === leader.id)) return undefined;
      return sts as Status[];
    },
    timeoutMs,
    100,
  );
}

/** The certificate a TLS server at `port` presents to a new connection. */
function servedCertificate(
  port: number,
  options: tls.ConnectionOptions,
): Promise<{ serialNumber: string; fingerprint256: string }> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, ...options }, () => {
      const cert = socket.getPeerCertificate();
      socket.end();
      resolve({
        serialNumber: cert.serialNumber.toUpperCase(),
        fingerprint256: cert.fingerprint256,
      });
    });
    socket.setTimeout(5000, () => socket.destroy(new Error('TLS handshake timed out')));
    socket.on('error', reject);
  });
}

/** GET on a peer port with the given TLS identity; resolves the status or rejects with why. */
async function peerGet(i: number, path: string, identity: tls.ConnectionOptions): Promise<number> {
  const agent = new Agent({ connect: identity });
  try {
    const res = await request(`${peerUrl(i)}${path}`, {
      dispatcher: agent,
      signal: AbortSignal.timeout(5000),
    });
    await res.body.dump();
    return res.statusCode;
  } finally {
    await agent.close();
  }
}

for (let i = 0; i < names.length; i++) start(i);
const initial = await waitForLeader();
t.comment(`leader elected in term ${initial[0]!.term}`);

t.test('writes through one node are read on the others, over HTTPS and peer mTLS', async (t) => {
  const leaderId = initial[0]!.leader;
  const follower = initial.findIndex((s) => s.id !== leaderId);
  const put = await api(follower, '/v1/kv/tls/replicated', {
    method: 'PUT',
    body: { value: 'through a follower' },
  });
  t.equal(put.status, 200, 'a write through a follower (forwarded to the leader) succeeds');
  for (let i = 0; i < names.length; i++) {
    const got = await api(i, '/v1/kv/tls/replicated');
    t.equal(got.status, 200);
    t.equal(
      (got.body.kv as { value?: string } | undefined)?.value,
      'through a follower',
      `${names[i]} reads it`,
    );
  }
  const members = await api(0, '/v1/cluster/members');
  const urls = (members.body.members as { peerUrls: string[]; clientUrls: string[] }[]).flatMap(
    (m) => [...m.peerUrls, ...m.clientUrls],
  );
  t.ok(
    urls.length > 0 && urls.every((u) => u.startsWith('https://')),
    `every advertised URL is https:// (${urls.join(' ')})`,
  );
});

t.test('plain HTTP, and HTTPS without a client certificate, are not served', async (t) => {
  const plain = new Agent();
  t.teardown(() => plain.close());
  const plainGet = (url: string) =>
    request(url, { dispatcher: plain, signal: AbortSignal.timeout(5000) }).then(
      (r) => r.statusCode,
    );
  await t.rejects(
    plainGet(`http://127.0.0.1:${clientPorts[0]}/v1/status`),
    'plain http:// to the client port gets no answer',
  );
  await t.rejects(
    plainGet(`http://127.0.0.1:${peerPorts[0]}/raft/cluster-info`),
    'plain http:// to the peer port gets no answer',
  );
  const anonymous = new Agent({ connect: { ca: file(certs, 'ca.crt') } });
  t.teardown(() => anonymous.close());
  await t.rejects(
    request(`${clientUrl(0)}/v1/status`, {
      dispatcher: anonymous,
      signal: AbortSignal.timeout(5000),
    }).then((r) => r.statusCode),
    'https:// without a client certificate is refused (--client-ca-file)',
  );
  await t.rejects(
    peerGet(0, '/raft/cluster-info', { ca: file(certs, 'ca.crt') }),
    'the peer port requires a certificate too',
  );
});

t.test(
  'a peer with a certificate from another CA can neither join nor disturb the term',
  async (t) => {
    const before = await waitForLeader();
    const term = before[0]!.term;
    const leader = before[0]!.leader;

    // Control: a member's identity is let in.
    t.equal(await peerGet(1, '/raft/cluster-info', memberPeerTls()), 200, 'a member gets in');
    // The outsider's certificate is refused in the handshake by every member.
    for (let i = 0; i < names.length; i++) {
      await t.rejects(
        peerGet(i, '/raft/cluster-info', outsiderTls()),
        `${names[i]} refuses the outsider's certificate`,
      );
      // Even trusting our CA, its certificate is still not one our CA signed.
      await t.rejects(
        peerGet(i, '/raft/cluster-info', { ...outsiderTls(), ca: file(certs, 'ca.crt') }),
        `${names[i]} refuses it also when the outsider trusts our CA`,
      );
    }

    // Each member tells its operator (the code depends on which side gave up first).
    for (let i = 0; i < names.length; i++) {
      const logged = await waitUntil(
        `${names[i]} to log the failed handshake`,
        async () => (/peer TLS handshake.* failed \(/.test(procs[i]!.stdout) ? true : undefined),
        5_000,
        100,
      ).catch(() => false);
      t.ok(logged, `${names[i]} logs the failed handshake for the operator`);
    }

    const [joinClient, joinPeer, fakeClient, fakePeer] = await Promise.all(
      [0, 1, 2, 3].map(() => freePort()),
    );
    const outsiderFlags = [
      '--peer-cert-file',
      join(otherCerts, 'n2.crt'),
      '--peer-key-file',
      join(otherCerts, 'n2.key'),
      '--peer-ca-file',
      join(otherCerts, 'ca.crt'),
      '--log-level',
      'warn',
    ];
    // 1. It tries to join as a new member n4.
    const joiner = new RaftkvProcess(
      [
        '--name',
        'n4',
        '--data-dir',
        join(dir, 'outsider-n4'),
        '--listen-client',
        `127.0.0.1:${joinClient}`,
        '--listen-peer',
        `127.0.0.1:${joinPeer}`,
        '--initial-cluster',
        `${initialCluster},n4=https://127.0.0.1:${joinPeer}`,
        '--join',
        ...outsiderFlags,
      ],
      { env: cleanEnv({ coverage: false }) },
    );
    outsiders.push(joiner);
    // 2. It poses as member n2 (same cluster name, members and peer URL: the same ids),
    // campaigning as fast as it can.
    const impostor = new RaftkvProcess(
      [
        '--name',
        'n2',
        '--data-dir',
        join(dir, 'outsider-n2'),
        '--listen-client',
        `127.0.0.1:${fakeClient}`,
        '--listen-peer',
        `127.0.0.1:${fakePeer}`,
        '--advertise-peer-url',
        peerUrl(1),
        '--initial-cluster',
        initialCluster,
        '--tick-ms',
        '20',
        '--election-ticks',
        '3',
        ...outsiderFlags,
      ],
      { env: cleanEnv({ coverage: false }) },
    );
    outsiders.push(impostor);

    const joined = await joiner.waitExit(30_000);
    t.not(joined.code, 0, 'the joiner exits non-zero');
    t.match(
      joiner.stderr,
      /--join: no member of --initial-cluster answered/,
      'no member answered it',
    );
    t.notMatch(joiner.stderr, /\n\s+at .+:\d+:\d+/, 'with a message, not a stack trace');

    // While the impostor campaigns (bounded: 40 writes or 10 s), the cluster serves writes.
    const deadline = Date.now() + 10_000;
    let written = 0;
    const failures: string[] = [];
    for (let k = 0; k < 40 && Date.now() < deadline; k++) {
      const a = await api(k % 3, `/v1/kv/tls/outsider-${k}`, {
        method: 'PUT',
        body: { value: 'x' },
      }).catch((err: Error) => ({ status: 0, body: { error: err.message } }));
      if (a.status === 200) written++;
      else failures.push(`${a.status} ${JSON.stringify(a.body)}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    t.ok(impostor.running, 'the impostor kept trying all along');
    t.same(failures, [], 'every write succeeded while it did');
    t.ok(written >= 20, `${written} writes went through`);
    const after = await waitForLeader();
    t.same(
      after.map((s) => s.term),
      [term, term, term],
      'every member is still in the same term',
    );
    t.equal(after[0]!.leader, leader, 'under the same leader');
    await impostor.kill('SIGKILL');
  },
);

t.test(
  'new certificates and SIGHUP while writes go on: no failed write, new connections see them',
  async (t) => {
    const servedBefore = await servedCertificate(clientPorts[0]!, memberClientTls());
    const serial = (name: string) =>
      new X509Certificate(file(certs, `${name}.crt`)).serialNumber.toUpperCase();
    t.equal(servedBefore.serialNumber, serial('n1'), 'n1 serves its certificate');

    // Writes, one at a time round the members, until told to stop (bounded: 3000 or 60 s).
    let stop = false;
    const failures: string[] = [];
    let writes = 0;
    const writer = (async () => {
      const deadline = Date.now() + 60_000;
      for (let k = 0; k < 3000 && !stop && Date.now() < deadline; k++) {
        const a = await api(k % 3, `/v1/kv/tls/rotation-${k}`, {
          method: 'PUT',
          body: { value: String(k) },
        }).catch((err: Error) => ({
          status: 0,
          body: { error: String(err.cause ?? err.message) },
        }));
        if (a.status === 200) writes++;
        else failures.push(`write ${k} via ${names[k % 3]}: ${a.status} ${JSON.stringify(a.body)}`);
      }
    })();
    await new Promise((r) => setTimeout(r, 500));

    const newSerials: string[] = [];
    for (const name of names) {
      const made = await createNode({
        dir: certs,
        name,
        hosts: ['127.0.0.1', 'localhost'],
        overwrite: true,
      });
      newSerials.push(made.serialNumber.toUpperCase());
    }
    for (const p of procs) t.ok(p.signal('SIGHUP'), `SIGHUP sent to ${p.pid}`);

    const identities: [string, number, () => tls.ConnectionOptions][] = names.flatMap((name, i) => [
      [`${name} client port`, clientPorts[i]!, memberClientTls] as [
        string,
        number,
        () => tls.ConnectionOptions,
      ],
      [`${name} peer port`, peerPorts[i]!, memberPeerTls] as [
        string,
        number,
        () => tls.ConnectionOptions,
      ],
    ]);
    for (const [label, port, identity] of identities) {
      const want = newSerials[names.indexOf(label.split(' ')[0]!)]!;
      const seen = await waitUntil(
        `${label} to serve the new certificate`,
        async () => {
          const served = await servedCertificate(port, identity()).catch(() => undefined);
          return served?.serialNumber === want ? served : undefined;
        },
        10_000,
        100,
      ).catch(() => undefined);
      t.ok(seen, `a new connection to the ${label} sees the new certificate (serial ${want})`);
      t.not(seen?.fingerprint256, servedBefore.fingerprint256);
    }
    // Writes go on after the rotation until a count, not a time, has gone through (bounded).
    await waitUntil(
      `${ROTATION_WRITES_MIN} writes across the rotation`,
      () => (writes >= ROTATION_WRITES_MIN || stop ? true : undefined),
      60_000,
      50,
    ).catch(() => undefined);
    stop = true;
    await writer;
    for (const p of procs) t.ok(p.running, `${p.pid} is still running after SIGHUP`);
    t.same(failures, [], 'no write failed during the rotation');
    t.ok(
      writes >= ROTATION_WRITES_MIN,
      `${writes} writes during the rotation (at least ${ROTATION_WRITES_MIN})`,
    );

    // New peer connections use the new certificates: a restarted member rejoins with them.
    await procs[2]!.kill('SIGKILL');
    start(2);
    await waitForLeader();
    const put = await api(2, '/v1/kv/tls/after-restart', { method: 'PUT', body: { value: 'ok' } });
    t.equal(put.status, 200, 'n3, restarted, takes a write through the new peer links');
    const read = await api(0, '/v1/kv/tls/after-restart');
    t.equal((read.body.kv as { value?: string } | undefined)?.value, 'ok', 'n1 reads it');
  },
);

t.test(
  'a bad certificate file and SIGHUP: the node keeps its material and keeps serving',
  async (t) => {
    const before = await servedCertificate(clientPorts[0]!, memberClientTls());
    writeFileSync(join(certs, 'n1.crt'), 'this is not a certificate\n');
    t.ok(procs[0]!.signal('SIGHUP'), 'SIGHUP sent to n1');
    await new Promise((r) => setTimeout(r, 2000)); // past the file poll and its debounce too
    t.ok(procs[0]!.running, 'n1 is still running');
    const after = await servedCertificate(clientPorts[0]!, memberClientTls());
    t.equal(after.serialNumber, before.serialNumber, 'new connections still get the last good one');
    // As n2 dials it (n1's own files are the broken ones).
    const peerSide = await servedCertificate(peerPorts[0]!, {
      ca: file(certs, 'ca.crt'),
      cert: file(certs, 'n2.crt'),
      key: file(certs, 'n2.key'),
    });
    t.equal(peerSide.serialNumber, before.serialNumber, 'on the peer port too');
    const put = await api(0, '/v1/kv/tls/after-bad-file', { method: 'PUT', body: { value: 'ok' } });
    t.equal(put.status, 200, 'and it takes writes');
  },
);
