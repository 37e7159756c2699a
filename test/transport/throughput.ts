/**
 * Loopback throughput of 1-entry appends, n1 → n2 on 127.0.0.1.
 * Not a test (tap runs *.test.ts only): `npx tsx test/transport/throughput.ts [seconds] [perTick] [entryBytes]`.
 *
 * Each turn of the event loop n1 sends `perTick` appends (as one Ready would),
 * keeping at most `window` unacknowledged, like Raft's in-flight limit.
 */
import { type Message, message } from '../../src/raft/messages.js';
import { HttpTransport } from '../../src/transport/http-transport.js';

const seconds = Number(process.argv[2] ?? 3);
const perTick = Number(process.argv[3] ?? 256);
const entryBytes = Number(process.argv[4] ?? 64);
// Below the per-peer queue bound (4096), so the sender never has to drop.
const window = 4096;

let received = 0;
const receiver = new HttpTransport({
  nodeId: 'n2',
  clusterId: 'bench',
  onMessage: () => {
    received++;
  },
});
const sender = new HttpTransport({ nodeId: 'n1', clusterId: 'bench', onMessage: () => {} });
sender.addPeer('n2', await receiver.listen('127.0.0.1', 0));

const data = new Uint8Array(entryBytes).fill(42);
let sent = 0;
let index = 0;
const started = performance.now();
const deadline = started + seconds * 1000;
while (performance.now() < deadline) {
  if (sent - received < window) {
    const batch: Message[] = new Array(perTick);
    for (let i = 0; i < perTick; i++, index++) {
      batch[i] = message({
        type: 'app',
        from: 'n1',
        to: 'n2',
        term: 2,
        logTerm: 2,
        index,
        commit: index,
        entries: [{ term: 2, index: index + 1, type: 'normal', data }],
      });
    }
    sender.send(batch);
    sent += perTick;
  }
  await new Promise((resolve) => setImmediate(resolve));
}
const elapsedS = (performance.now() - started) / 1000;
const s = sender.stats;
console.log(
  JSON.stringify({
    perTick,
    entryBytes,
    seconds: Number(elapsedS.toFixed(2)),
    messagesPerSecond: Math.round(received / elapsedS),
    received,
    dropped: s.messagesDropped,
    requests: s.batchesSent,
    messagesPerRequest: Math.round(s.messagesSent / Math.max(1, s.batchesSent)),
  }),
);
await sender.close();
await receiver.close();
