/** The peer prober: one probe per peer every interval, never two at once to the same peer. */
import t from 'tap';
import type { NodeCore } from '../../src/server/node-core.js';
import { attachPeerProber } from '../../src/server/peer-prober.js';

/** Just the core's 'tick' event. */
function ticking() {
  const listeners: (() => void)[] = [];
  const core = {
    on: (_event: 'tick', fn: () => void) => listeners.push(fn),
  } as unknown as NodeCore;
  const tick = () => {
    for (const fn of listeners) fn();
  };
  return { core, tick };
}

t.test('each peer is probed once per interval, and a slow probe is not doubled', async (t) => {
  const { core, tick } = ticking();
  const started: string[] = [];
  const answers = new Map<string, (ms: number | undefined) => void>();
  const observed: [string, number][] = [];
  attachPeerProber(core, {
    peers: () => ['n2', 'n3'],
    probe: (id) => {
      started.push(id);
      return new Promise((resolve) => answers.set(id, resolve));
    },
    observe: (id, ms) => observed.push([id, ms]),
    intervalMs: 500,
    tickMs: 100,
  });
  for (let i = 0; i < 4; i++) tick();
  t.strictSame(started, [], 'nothing before the first interval');
  tick();
  t.strictSame(started, ['n2', 'n3'], 'both peers at the fifth tick');
  answers.get('n2')!(1.5);
  answers.get('n3')!(undefined);
  await new Promise((r) => setImmediate(r));
  t.strictSame(observed, [['n2', 1.5]], 'a failed probe gives no figure');
  // n2 answers, n3's next probe hangs: the interval after, n3 is skipped.
  for (let i = 0; i < 5; i++) tick();
  t.strictSame(started, ['n2', 'n3', 'n2', 'n3']);
  answers.get('n2')!(2);
  await new Promise((r) => setImmediate(r));
  for (let i = 0; i < 5; i++) tick();
  t.strictSame(started, ['n2', 'n3', 'n2', 'n3', 'n2'], 'n3 still in flight: not probed again');
});
