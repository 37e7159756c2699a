/**
 * A member added while peer TLS is on must have an https:// peer URL (and an
 * http:// one while it is off): the others could not talk to it otherwise.
 * Refused before anything is proposed.
 */
import t from 'tap';
import type { ConfChange } from '../../src/raft/index.js';
import { Membership } from '../../src/server/membership.js';

function leader(peerScheme: 'http:' | 'https:') {
  const proposed: ConfChange[] = [];
  const membership = new Membership({
    isLeader: () => true,
    members: () => [],
    voters: () => ['a'],
    learners: () => [],
    apply: async (cc) => {
      proposed.push(cc);
    },
    settled: async () => {},
    peerScheme,
  });
  return { membership, proposed };
}

const add = (peerUrl: string) =>
  ({
    type: 'add',
    name: 'n4',
    peerUrl,
    clientUrl: 'https://10.0.0.4:7379',
    learner: true,
  }) as const;

t.test('with peer TLS an http:// peer URL is refused, nothing proposed', async (t) => {
  const { membership, proposed } = leader('https:');
  await t.rejects(membership.change(add('http://10.0.0.4:7380'), AbortSignal.timeout(1000)), {
    code: 'invalid_request',
    message: /peer TLS is on: the peer URL must be https:\/\//,
  });
  t.same(proposed, []);
  // An https:// one is proposed (the view lookup then fails here: no member table).
  await membership.change(add('https://10.0.0.4:7380'), AbortSignal.timeout(1000)).catch(() => {});
  t.equal(proposed.length, 1, 'an https:// peer URL is proposed');
});

t.test('without peer TLS an https:// peer URL is refused', async (t) => {
  const { membership, proposed } = leader('http:');
  await t.rejects(membership.change(add('https://10.0.0.4:7380'), AbortSignal.timeout(1000)), {
    code: 'invalid_request',
    message: /peer TLS is off/,
  });
  t.same(proposed, []);
});
