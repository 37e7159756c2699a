/**
 * The fault filter: its decisions alone, then applied by HttpTransport to three
 * in-process nodes sharing one filter.
 */
import t from 'tap';
import { type Message, message } from '../../src/raft/messages.js';
import { FaultFilter } from '../../src/transport/fault-filter.js';
import { sleep, startNodes, type TestNode, waitFor } from './helpers.js';

const ids = ['n1', 'n2', 'n3'];

t.test('decisions: off by default, drops win, delays take the longest', (t) => {
  const f = new FaultFilter();
  t.notOk(f.enabled);
  t.same(f.decide('n1', 'n2'), { action: 'deliver' });

  const d1 = f.delay(50, 'n1');
  f.delay(80, undefined, 'n2');
  t.ok(f.enabled);
  t.same(f.decide('n1', 'n3'), { action: 'delay', delayMs: 50 });
  t.same(f.decide('n1', 'n2'), { action: 'delay', delayMs: 80 });
  t.same(f.decide('n3', 'n1'), { action: 'deliver' });
  f.drop('n1', 'n2');
  t.same(f.decide('n1', 'n2'), { action: 'drop' });
  f.heal();
  t.notOk(f.enabled);

  f.partition(['n1'], ['n2', 'n3']);
  t.same(
    [f.decide('n1', 'n2'), f.decide('n3', 'n1'), f.decide('n2', 'n3')].map((d) => d.action),
    ['drop', 'drop', 'deliver'],
  );
  f.heal();
  const one = f.oneWay('n1', 'n2');
  t.same([f.decide('n1', 'n2').action, f.decide('n2', 'n1').action], ['drop', 'deliver']);
  f.removeRule(one);
  t.same(f.decide('n1', 'n2').action, 'deliver');
  f.isolate('n3');
  t.same(
    [f.decide('n3', 'n1'), f.decide('n2', 'n3'), f.decide('n1', 'n2')].map((d) => d.action),
    ['drop', 'drop', 'deliver'],
  );
  f.removeRule(d1); // removing a rule that is already gone is fine
  t.throws(() => f.drop('a', 'b', 1.5), RangeError);
  t.throws(() => f.delay(-1), RangeError);
  t.end();
});

t.test('probabilistic drops are deterministic for a seed', (t) => {
  const run = (seed: number) => {
    const f = new FaultFilter({ seed });
    f.drop(undefined, undefined, 0.3);
    return Array.from({ length: 1000 }, () => f.decide('a', 'b').action === 'drop');
  };
  const a = run(42);
  t.same(run(42), a, 'same seed, same losses');
  t.not(run(43).join(), a.join(), 'another seed, other losses');
  const dropped = a.filter(Boolean).length;
  t.ok(dropped > 240 && dropped < 360, `${dropped} of 1000 dropped at p = 0.3`);
  t.end();
});

/** Node `from` sends one heartbeat to every other node, tagged with `commit: tag`. */
function broadcast(nodes: Map<string, TestNode>, from: string, tag: number): void {
  const out: Message[] = ids
    .filter((id) => id !== from)
    .map((to) => message({ type: 'heartbeat', from, to, commit: tag }));
  nodes.get(from)!.transport.send(out);
}

/** Which `from→to` links carried a message tagged `tag`. */
function links(nodes: Map<string, TestNode>, tag: number): string[] {
  const out: string[] = [];
  for (const node of nodes.values()) {
    for (const m of node.received) if (m.commit === tag) out.push(`${m.from}→${m.to}`);
  }
  return out.sort();
}

/** Everyone broadcasts `tag`; waits for the `expected` links, then a little, to catch strays. */
async function round(nodes: Map<string, TestNode>, tag: number, expected: string[]) {
  for (const id of ids) broadcast(nodes, id, tag);
  await waitFor(() => links(nodes, tag).length >= expected.length, 3000, `round ${tag}`);
  await sleep(30);
  return links(nodes, tag);
}

const all = ['n1→n2', 'n1→n3', 'n2→n1', 'n2→n3', 'n3→n1', 'n3→n2'];

t.test('drop, partition, oneWay and heal cut exactly the links they name', async (t) => {
  const filter = new FaultFilter({ seed: 7 });
  const nodes = await startNodes(t, ids, () => ({ filter }));

  t.same(await round(nodes, 1, all), all, 'healthy: every link');

  filter.drop('n1', 'n2');
  const dropped = all.filter((l) => l !== 'n1→n2');
  t.same(await round(nodes, 2, dropped), dropped, 'drop(n1, n2)');
  filter.heal();

  filter.partition(['n1'], ['n2', 'n3']);
  t.same(await round(nodes, 3, ['n2→n3', 'n3→n2']), ['n2→n3', 'n3→n2'], 'n1 cut off both ways');
  filter.heal();

  filter.oneWay('n2', 'n3');
  const oneWay = all.filter((l) => l !== 'n2→n3');
  t.same(await round(nodes, 4, oneWay), oneWay, 'n3 still reaches n2');
  filter.heal();

  filter.drop('n3');
  const fromN3 = all.filter((l) => !l.startsWith('n3'));
  t.same(await round(nodes, 5, fromN3), fromN3, 'drop(n3): everything from n3');
  filter.heal();

  t.same(await round(nodes, 6, all), all, 'healed: every link again');
  // Messages dropped by the filter are gone for good, not delivered late.
  t.same(links(nodes, 2), dropped);
  t.same(links(nodes, 3), ['n2→n3', 'n3→n2']);
  t.ok(nodes.get('n1')!.transport.stats.messagesDropped >= 3);
  t.same(nodes.get('n1')!.unreachable, [], 'filtered losses are silent, like a real network');
});

t.test('delay holds messages back, and a filtered snapshot fails', async (t) => {
  const filter = new FaultFilter();
  const nodes = await startNodes(t, ids, () => ({ filter }));
  const n1 = nodes.get('n1')!;
  filter.delay(150, 'n1', 'n3');
  const started = performance.now();
  broadcast(nodes, 'n1', 1);
  await waitFor(() => nodes.get('n2')!.received.length === 1);
  const fastMs = performance.now() - started;
  await waitFor(() => nodes.get('n3')!.received.length === 1, 3000);
  const slowMs = performance.now() - started;
  t.ok(fastMs < 150, `n2 in ${fastMs.toFixed(0)} ms`);
  t.ok(slowMs >= 145, `n3 in ${slowMs.toFixed(0)} ms`);

  filter.heal();
  filter.oneWay('n1', 'n2');
  n1.transport.send([
    message({
      type: 'snap',
      from: 'n1',
      to: 'n2',
      snapshot: {
        metadata: { index: 1, term: 1, confState: { voters: ['n1'], learners: [] } },
        data: new Uint8Array(100),
      },
    }),
  ]);
  await waitFor(() => n1.snapshotStatus.length === 1);
  t.same(n1.snapshotStatus, [['n2', false]]);
});

t.test('a filter on the receiving side drops on arrival', async (t) => {
  const receiveFilter = new FaultFilter();
  receiveFilter.drop('n1', 'n2');
  const nodes = await startNodes(t, ['n1', 'n2', 'n3'], (id) =>
    id === 'n2' ? { receiveFilter } : {},
  );
  broadcast(nodes, 'n1', 1);
  broadcast(nodes, 'n3', 1);
  await waitFor(() => nodes.get('n2')!.transport.stats.batchesReceived === 2);
  t.same(
    nodes.get('n2')!.received.map((m) => m.from),
    ['n3'],
    'the request arrived, the message from n1 was not delivered',
  );
});
