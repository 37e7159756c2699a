import fc from 'fast-check';
import { scheduleArbitrary } from './schedule.js';
import { SimWorld } from './world.js';

const s = fc.sample(scheduleArbitrary, { seed: 1, numRuns: 1 })[0]!;
console.log(JSON.stringify(s.world));
const w = new SimWorld(s, { nodes: 3 });
for (const e of s.events) w.apply(e);
try {
  w.checkLiveness();
} catch (e) {
  console.log(String(e).slice(0, 300));
}
for (const n of w.nodes.values()) {
  const st = n.raw!.status();
  console.log(
    JSON.stringify(st),
    'applied',
    n.disk.applied,
    'snap',
    n.disk.storage.snapshot().metadata.index,
    'first',
    n.disk.storage.firstIndex(),
    'last',
    n.disk.storage.lastIndex(),
  );
}
console.log(
  'leadTransferee',
  w.leader()?.raw?.raft.leadTransferee,
  'inflight',
  w.network.inFlightCount(),
);
