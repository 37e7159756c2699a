/**
 * The peer transport over mutual TLS: members whose certificates come from
 * the cluster's CA exchange messages and snapshots; a peer whose certificate
 * does not verify is refused in the handshake, in each direction on its own:
 * - accepting: a member's server refuses a dialer with a foreign certificate,
 *   even one that trusts the member's CA;
 * - dialing: a member refuses a server with a foreign certificate, even one
 *   that would accept the member (the message stream and the snapshot POST).
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { type Message, message } from '../../src/raft/messages.js';
import { createCa, createNode } from '../../src/tls/certs.js';
import { TlsMaterial } from '../../src/tls/material.js';
import { HttpTransport } from '../../src/transport/http-transport.js';
import { CLUSTER, sleep, waitFor } from './helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'raftkv-transport-tls-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const ours = join(dir, 'ours');
const theirs = join(dir, 'theirs');
await createCa({ dir: ours });
await createCa({ dir: theirs });
for (const name of ['m1', 'm2']) await createNode({ dir: ours, name, hosts: ['127.0.0.1'] });
await createNode({ dir: theirs, name: 'x', hosts: ['127.0.0.1'] });
// The outsider trusts our CA, so only the member's own check can keep it out.
writeFileSync(join(theirs, 'trusts-ours.crt'), readFileSync(join(ours, 'ca.crt')));

interface Peer {
  transport: HttpTransport;
  url: string;
  received: Message[];
  unreachable: string[];
  snapshots: [string, boolean][];
  notices: string[];
}

async function peer(id: string, certDir: string, caFile: string): Promise<Peer> {
  const material = await TlsMaterial.load(
    { certFile: join(certDir, `${id}.crt`), keyFile: join(certDir, `${id}.key`), caFile },
    { label: 'peer', watch: false },
  );
  const p = { received: [], unreachable: [], snapshots: [], notices: [] } as unknown as Peer;
  p.transport = new HttpTransport({
    nodeId: id,
    clusterId: CLUSTER,
    onMessage: (m) => p.received.push(m),
    onUnreachable: (to) => p.unreachable.push(to),
    onSnapshotStatus: (to, ok) => p.snapshots.push([to, ok]),
    logger: { warn: () => {}, error: () => {}, notice: (_obj, msg) => p.notices.push(msg) },
    connectTimeoutMs: 2000,
    tls: material,
  });
  p.url = await p.transport.listen('127.0.0.1', 0);
  t.teardown(async () => {
    await p.transport.close();
    material.close();
  });
  return p;
}

const m1 = await peer('m1', ours, join(ours, 'ca.crt'));
const m2 = await peer('m2', ours, join(ours, 'ca.crt'));
const x = await peer('x', theirs, join(theirs, 'trusts-ours.crt'));
m1.transport.addPeer('m2', m2.url);
m1.transport.addPeer('x', x.url);
x.transport.addPeer('m1', m1.url);

const snap = (from: string, to: string) =>
  message({
    type: 'snap',
    from,
    to,
    snapshot: {
      metadata: { index: 5, term: 1, confState: { voters: [from, to], learners: [] } },
      data: new Uint8Array(1024),
    },
  });

t.test('members of one CA exchange messages and snapshots over https', async (t) => {
  t.match(m1.url, /^https:\/\//, 'a TLS transport listens on https://');
  t.same(m1.notices, [], 'no TLS trouble between members');
  m1.transport.send([message({ type: 'heartbeat', from: 'm1', to: 'm2', term: 1 })]);
  await waitFor(() => m2.received.length === 1, 5000, 'the heartbeat to arrive');
  m1.transport.send([snap('m1', 'm2')]);
  await waitFor(() => m1.snapshots.length === 1, 5000, 'the snapshot to be sent');
  t.same(m1.snapshots, [['m2', true]], 'the snapshot was accepted');
  t.equal(m2.received.at(-1)?.type, 'snap');
});

t.test('a member refuses a dialer whose certificate another CA signed', async (t) => {
  for (let i = 0; i < 3; i++) {
    x.transport.send([message({ type: 'vote', from: 'x', to: 'm1', term: 100 + i })]);
    await sleep(300);
  }
  x.transport.send([snap('x', 'm1')]);
  await waitFor(() => x.snapshots.length === 1, 5000, 'the snapshot attempt to end');
  t.same(m1.received, [], 'nothing from the outsider reached the member');
  t.same(x.snapshots, [['m1', false]], "the outsider's snapshot was refused");
  t.ok(x.unreachable.includes('m1'), 'the outsider saw the member as unreachable');
});

t.test('a member refuses to talk to a server whose certificate another CA signed', async (t) => {
  for (let i = 0; i < 3; i++) {
    m1.transport.send([message({ type: 'heartbeat', from: 'm1', to: 'x', term: 1 })]);
    await sleep(300);
  }
  m1.transport.send([snap('m1', 'x')]);
  await waitFor(() => m1.snapshots.length === 2, 5000, 'the snapshot attempt to end');
  t.same(x.received, [], 'nothing from the member reached the outsider');
  t.same(m1.snapshots.at(-1), ['x', false], 'the snapshot to the outsider failed');
  t.ok(m1.unreachable.includes('x'), 'the member reports the outsider unreachable');
  t.equal(m1.notices.length, 1, 'the member says so once');
  t.match(
    m1.notices[0],
    /TLS handshake with peer x at https:\/\/127\.0\.0\.1:\d+ failed \(UNABLE_TO_VERIFY_LEAF_SIGNATURE\)/,
  );
});
