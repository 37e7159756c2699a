import t from 'tap';
import {
  interleaveBySource,
  MAX_CLOCK_RATE,
  MIN_CLOCK_RATE,
  NodeClock,
  SimScheduler,
} from './clock.js';

t.test(
  'events run in (time, sequence) order, and microtasks they start finish before the next',
  async (t) => {
    const s = new SimScheduler();
    const seen: string[] = [];
    s.at(10, () => {
      seen.push('a@10');
      void Promise.resolve()
        .then(() => Promise.resolve())
        .then(() => seen.push('a-chain'));
    });
    s.at(5, () => seen.push('b@5'));
    s.at(10, () => seen.push('c@10'));
    await s.runUntil(20);
    t.same(seen, ['b@5', 'a@10', 'a-chain', 'c@10']);
    t.equal(s.now(), 20);
  },
);

t.test(
  'a node clock runs at its rate; timers fire after local time, in true time scaled',
  async (t) => {
    const s = new SimScheduler();
    const fast = new NodeClock(s, { rate: MAX_CLOCK_RATE });
    const slow = new NodeClock(s, { rate: MIN_CLOCK_RATE });
    const fired: [string, number][] = [];
    fast.after(1000, () => fired.push(['fast', s.now()]));
    slow.after(1000, () => fired.push(['slow', s.now()]));
    await s.runUntil(2000);
    t.equal(fired[0]![0], 'fast');
    t.ok(Math.abs(fired[0]![1] - 1000 / MAX_CLOCK_RATE) < 1e-6);
    t.ok(Math.abs(fired[1]![1] - 1000 / MIN_CLOCK_RATE) < 1e-6);
    t.ok(Math.abs(fast.now() - 2000 * MAX_CLOCK_RATE) < 1e-6);
    t.throws(
      () => new NodeClock(s, { rate: 1.5 }),
      RangeError,
      'a rate outside the bound is refused',
    );
  },
);

t.test('every() repeats until cancelled', async (t) => {
  const s = new SimScheduler();
  const c = new NodeClock(s, { rate: 1 });
  let n = 0;
  const stop = c.every(100, () => n++);
  await s.runUntil(1050);
  t.equal(n, 10);
  stop();
  await s.runUntil(2000);
  t.equal(n, 10);
});

t.test(
  'a paused process runs nothing until resumed, while its clock runs on; a killed one never',
  async (t) => {
    const s = new SimScheduler();
    const c = new NodeClock(s, { rate: 1 });
    const other = new NodeClock(s, { rate: 1 });
    const seen: string[] = [];
    c.after(100, () => seen.push(`c ${s.now()} local ${c.now()}`));
    other.after(150, () => seen.push(`other ${s.now()}`));
    c.pause();
    await s.runUntil(500);
    t.same(seen, ['other 150'], 'held while paused');
    c.resume();
    await s.runUntil(500);
    t.same(seen, ['other 150', 'c 500 local 500'], 'ran at resume; the clock kept running');
    c.after(10, () => seen.push('after kill'));
    c.kill();
    await s.runUntil(1000);
    t.equal(seen.length, 2, 'a killed process runs none of its callbacks');
  },
);

t.test(
  'a resumed process takes what it held in any order across sources, in order within each',
  async (t) => {
    const s = new SimScheduler();
    const c = new NodeClock(s, { rate: 1 });
    const seen: string[] = [];
    c.pause();
    for (let i = 0; i < 3; i++) {
      c.afterTrue(10 * i, () => seen.push(`peer${i}`), 'peer:n2');
      c.afterTrue(10 * i + 5, () => seen.push(`req${i}`), `client:${i}`);
    }
    await s.runUntil(100);
    // Always take the last open source: the client requests overtake the peer's messages.
    c.resume((n) => n - 1);
    await s.runUntil(100);
    t.same(seen, ['req2', 'req1', 'req0', 'peer0', 'peer1', 'peer2']);

    const orders = new Set<string>();
    for (let seed = 0; seed < 50; seed++) {
      let x = seed;
      const out = interleaveBySource(
        ['a1', 'b1', 'a2', 'c1', 'b2'].map((name) => ({ name, source: name[0] })),
        (n) => {
          x = (x * 7 + 3) % 101;
          return x % n;
        },
      ).map((e) => e.name);
      t.ok(out.indexOf('a1') < out.indexOf('a2') && out.indexOf('b1') < out.indexOf('b2'));
      t.equal(out.length, 5);
      orders.add(out.join());
    }
    t.ok(orders.size > 1, 'more than one interleaving is drawn');
  },
);

t.test('the same schedule gives the same order (determinism)', async (t) => {
  const run = async () => {
    const s = new SimScheduler();
    const clocks = [0.99, 1, 1.01].map((rate) => new NodeClock(s, { rate }));
    const seen: string[] = [];
    clocks.forEach((c, i) => {
      c.every(7 + i, () => seen.push(`${i}@${s.now().toFixed(3)}`));
    });
    await s.runUntil(300);
    return seen.join(',');
  };
  t.equal(await run(), await run());
});
