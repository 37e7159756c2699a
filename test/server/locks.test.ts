import t from 'tap';
import { request as call, startCluster } from '../integration/helpers.js';

const fencedPut = (url: string, token: number, value: string) =>
  call(url, 'POST', '/v1/txn', {
    compare: [{ lock: 'job', token }],
    success: [{ op: 'put', key: 'output', value }],
  });

t.test(
  'locks: FIFO, fencing tokens increase, a stale holder cannot write, timeouts give up the place',
  async (t) => {
    const c = await startCluster(3);
    t.teardown(() => c.close());
    await c.waitForLeader();
    const lease = async (i: number) =>
      (await call(c.url(i), 'POST', '/v1/leases', { ttl: 30 })).body.id as string;
    const [a, b, d] = [await lease(0), await lease(1), await lease(2)];

    const first = await call(c.url(0), 'POST', '/v1/locks/job', { lease: a });
    t.equal(first.status, 200);
    t.match(first.body, { name: 'job', key: String, fencingToken: Number });
    const tokenA = first.body.fencingToken as number;
    t.equal(
      (await fencedPut(c.url(1), tokenA, 'by-a')).body.succeeded,
      true,
      'the holder writes through its fence',
    );

    // B waits in line on another node; D times out and gives up its place.
    const waitingB = call(c.url(1), 'POST', '/v1/locks/job', { lease: b, timeoutMs: 10_000 });
    const timedOut = await call(c.url(2), 'POST', '/v1/locks/job', { lease: d, timeoutMs: 300 });
    t.equal(timedOut.status, 409);
    t.equal(timedOut.body.error.code, 'lock_timeout');

    t.equal(
      (await call(c.url(0), 'DELETE', `/v1/locks/job?key=${encodeURIComponent(first.body.key)}`))
        .status,
      200,
    );
    const second = await waitingB;
    t.equal(second.status, 200, 'the next in line gets the lock once it is released');
    const tokenB = second.body.fencingToken as number;
    t.ok(tokenB > tokenA, `fencing tokens increase (${tokenA} < ${tokenB})`);
    const stale = await fencedPut(c.url(0), tokenA, 'stale');
    t.equal(stale.body.succeeded, false, 'the old holder can no longer write through the fence');
    t.equal((await fencedPut(c.url(2), tokenB, 'by-b')).body.succeeded, true);

    // Revoking the holder's lease releases the lock.
    const waitingD = call(c.url(2), 'POST', '/v1/locks/job', { lease: d, timeoutMs: 10_000 });
    await new Promise((r) => setTimeout(r, 200));
    await call(c.url(0), 'DELETE', `/v1/leases/${b}`);
    const third = await waitingD;
    t.equal(third.status, 200, 'lease revocation released the lock');
    t.ok(third.body.fencingToken > tokenB);

    t.equal(
      (await call(c.url(0), 'DELETE', '/v1/locks/job?key=nope')).status,
      400,
      'a key of another lock is refused',
    );
    t.equal(
      (
        await call(
          c.url(0),
          'DELETE',
          `/v1/locks/job?key=${encodeURIComponent(`${second.body.key}x`)}`,
        )
      ).status,
      404,
    );
    t.equal(
      (await call(c.url(0), 'POST', '/v1/locks/a%2Fb', { lease: a })).status,
      400,
      'names without "/"',
    );
    t.equal(
      (await call(c.url(0), 'POST', '/v1/locks/job', { lease: 'missing', timeoutMs: 100 })).status,
      404,
    );
    t.equal(
      (await call(c.url(0), 'GET', '/v1/kv?prefix=')).body.kvs.length,
      1,
      'lock keys are not user keys',
    );
  },
);
