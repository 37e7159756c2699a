import t from 'tap';
import { get, put, startCluster } from './helpers.js';

t.test(
  'a 3-node cluster elects a leader and any node serves writes and linearizable reads',
  async (t) => {
    const c = await startCluster(3);
    t.teardown(() => c.close());
    const leader = await c.waitForLeader();
    t.ok(leader >= 0, `leader is n${leader + 1}`);
    for (let i = 0; i < 3; i++) {
      const w = await put(c.url(i), `k${i}`, `v${i}`);
      t.equal(w.status, 200, `write through n${i + 1}`);
      t.equal(w.body.kv.value, `v${i}`);
    }
    for (let i = 0; i < 3; i++) {
      for (let k = 0; k < 3; k++) {
        const r = await get(c.url(i), `k${k}`);
        t.equal(r.status, 200);
        t.equal(r.body.kv.value, `v${k}`, `n${i + 1} reads k${k}`);
      }
    }
    const missing = await get(c.url(1), 'nope');
    t.equal(missing.status, 404);
    t.equal(missing.body.error.code, 'key_not_found');
    t.type(missing.body.revision, 'number');
  },
);
