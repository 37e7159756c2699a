import t from 'tap';
import { Deadlines } from '../../src/server/deadlines.js';

// The deadline timer is unref'd (an open request keeps a server alive, not its deadline):
// keep this test process alive while it waits.
const keepAlive = setInterval(() => {}, 1000);
t.teardown(() => clearInterval(keepAlive));

t.test('a deadline aborts with a TimeoutError, never before its time', async (t) => {
  const deadlines = new Deadlines(10);
  t.teardown(() => deadlines.close());
  const start = Date.now();
  const signals = [30, 5, 60].map((ms) => ({ ms, signal: deadlines.after(ms) }));
  const firedAfter = await Promise.all(
    signals.map(
      ({ signal }) =>
        new Promise<number>((resolve) =>
          signal.addEventListener('abort', () => resolve(Date.now() - start), { once: true }),
        ),
    ),
  );
  signals.forEach(({ ms, signal }, i) => {
    t.ok(firedAfter[i]! >= ms, `${ms} ms deadline fired after ${firedAfter[i]} ms`);
    t.equal((signal.reason as DOMException).name, 'TimeoutError');
  });
});

t.test('the shared timer stops once nothing is pending, and restarts on demand', async (t) => {
  const deadlines = new Deadlines(5);
  t.teardown(() => deadlines.close());
  const first = deadlines.after(1);
  await new Promise((r) => first.addEventListener('abort', r, { once: true }));
  await new Promise((r) => setTimeout(r, 20));
  t.equal((deadlines as unknown as { timer: unknown }).timer, undefined, 'no timer left armed');
  const second = deadlines.after(1);
  await new Promise((r) => second.addEventListener('abort', r, { once: true }));
  t.ok(second.aborted);
});

t.test('close() drops pending deadlines without firing them', async (t) => {
  const deadlines = new Deadlines(5);
  const signal = deadlines.after(10);
  deadlines.close();
  await new Promise((r) => setTimeout(r, 30));
  t.notOk(signal.aborted);
});

t.test('deadlines of one slot share a signal; a later slot gets its own', async (t) => {
  const hourMs = 3_600_000;
  const deadlines = new Deadlines(hourMs);
  t.teardown(() => deadlines.close());
  // Slots are ceil(expiry / slotMs): two deadlines asked for microseconds apart share an hour-long slot.
  const a = deadlines.after(1000);
  const b = deadlines.after(1000);
  const later = deadlines.after(2 * hourMs);
  t.equal(a, b, 'same slot, same signal');
  t.not(a, later, 'another slot, another signal');
  t.notOk(a.aborted);
});

t.test('many listeners on one shared signal raise no leak warning', async (t) => {
  const deadlines = new Deadlines(5);
  t.teardown(() => deadlines.close());
  const warnings: Error[] = [];
  const onWarning = (w: Error) => warnings.push(w);
  process.on('warning', onWarning);
  t.teardown(() => process.off('warning', onWarning));
  const signal = deadlines.after(10);
  const fired: number[] = [];
  for (let i = 0; i < 50; i++)
    signal.addEventListener('abort', () => fired.push(i), { once: true });
  await new Promise((r) => setTimeout(r, 60));
  t.equal(fired.length, 50, 'every listener is called once');
  t.same(warnings, []);
});
