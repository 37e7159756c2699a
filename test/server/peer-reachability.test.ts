/**
 * PeerReachabilityLog on a fake clock: one line per transition, none per
 * repeated failure, a flapping peer held to one line per interval (with how
 * many transitions it folded in), and peers that never answered since the
 * start reported only after the startup grace.
 */
import t from 'tap';
import { createLogger } from '../../src/server/logger.js';
import { PeerReachabilityLog } from '../../src/server/peer-reachability.js';
import type { LogLine } from '../support/log-capture.js';

function setup(minIntervalMs = 1000, startupGraceMs = 500) {
  let nowMs = 0;
  const lines: LogLine[] = [];
  const log = createLogger({
    member: 'n1',
    level: 'info',
    destination: { write: (s: string) => lines.push(JSON.parse(s) as LogLine) },
  });
  const peers = new PeerReachabilityLog({
    log,
    nameOf: (id) => ({ a1: 'n2', b2: 'n3' })[id],
    now: () => nowMs,
    minIntervalMs,
    startupGraceMs,
  });
  const at = (ms: number) => {
    nowMs = ms;
    peers.tick();
  };
  return { peers, lines, at };
}

t.test('one line per transition, not one per failed send', async (t) => {
  const { peers, lines, at } = setup();
  peers.succeeded('a1');
  t.equal(lines.length, 0, 'the first contact is not news');
  at(2000);
  for (let i = 0; i < 50; i++) peers.failed('a1');
  t.equal(lines.length, 1);
  t.match(lines[0], { event: 'peer_unreachable', peer: 'n2', peerId: 'a1', level: 'warn' });
  at(5000);
  for (let i = 0; i < 50; i++) peers.succeeded('a1');
  t.equal(lines.length, 2);
  t.match(lines[1], { event: 'peer_reachable', peer: 'n2', unreachableMs: 3000, level: 'info' });
  t.equal(lines[1]!.msg, 'peer n2 is reachable again after 3000 ms');
});

t.test(
  'a flapping peer gets at most one line per interval, which counts the transitions',
  async (t) => {
    const { peers, lines, at } = setup(1000);
    peers.succeeded('a1');
    at(2000);
    peers.failed('a1'); // logged at once
    for (let i = 0; i < 45; i++) {
      at(2010 + 20 * i);
      if (i % 2 === 0) peers.succeeded('a1');
      else peers.failed('a1');
    }
    t.equal(lines.length, 1, 'nothing more inside the interval');
    at(2999);
    t.equal(lines.length, 1);
    at(3000);
    t.equal(lines.length, 2, 'one line when the interval ends');
    const summary = lines[1]!;
    t.equal(
      summary.event,
      peers.stateOf('a1') === 'reachable' ? 'peer_reachable' : 'peer_unreachable',
    );
    t.ok((summary.transitions as number) > 10, summary.msg);
    t.match(summary.msg, /changed \d+ times since the last line about it 1000 ms ago/);
    at(10_000);
    t.equal(lines.length, 2, 'nothing held, nothing more');
  },
);

t.test('a peer that flaps back to where the last line left it is still reported', async (t) => {
  const { peers, lines, at } = setup(1000);
  peers.succeeded('a1');
  at(2000);
  peers.failed('a1');
  at(2100);
  peers.succeeded('a1');
  at(2200);
  peers.failed('a1');
  t.equal(lines.length, 1);
  at(3000);
  t.equal(lines.length, 2);
  t.match(lines[1], { event: 'peer_unreachable', transitions: 2 });
});

t.test('a peer never reached is reported after the startup grace, then its recovery', async (t) => {
  const { peers, lines, at } = setup(1000, 500);
  peers.failed('b2');
  at(100);
  peers.failed('b2');
  t.equal(lines.length, 0, 'peers start at different moments: no line yet');
  at(500);
  t.equal(lines.length, 1);
  t.match(lines[0], { event: 'peer_unreachable', peer: 'n3' });
  t.match(lines[0]!.msg, /not reached since this member started 500 ms ago/);
  at(1600);
  peers.succeeded('b2');
  t.match(lines[1], { event: 'peer_reachable', peer: 'n3', unreachableMs: 1600 });
  peers.forget('b2');
  at(5000);
  t.equal(lines.length, 2);
});

t.test('a peer that answers within the startup grace is never reported', async (t) => {
  const { peers, lines, at } = setup(1000, 500);
  peers.failed('a1');
  at(300);
  peers.succeeded('a1');
  at(5000);
  t.equal(lines.length, 0);
});
