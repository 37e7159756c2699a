/**
 * The test ports (helpers.ts freePort): a port one test process handed out is
 * not handed out by another one running beside it, until the claim is stale.
 */
import { existsSync, rmSync, utimesSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { claimAcrossProcesses, freePort, PORT_CLAIMS_DIR } from './helpers.js';

t.test('a port claimed by one process is refused to the next claim until it is stale', (t) => {
  // Above freePort's range (20000-31999), so no running test draws it.
  const port = 32_100 + (process.pid % 500);
  const file = join(PORT_CLAIMS_DIR, String(port));
  rmSync(file, { force: true });
  t.teardown(() => rmSync(file, { force: true }));
  t.ok(claimAcrossProcesses(port), 'the first claim wins');
  t.ok(existsSync(file), 'and leaves its mark for the other test processes');
  t.notOk(claimAcrossProcesses(port), 'a second claim, as from another process, is refused');
  const old = new Date(Date.now() - 11 * 60_000);
  utimesSync(file, old, old);
  t.ok(claimAcrossProcesses(port), 'a claim left over from an earlier run is taken over');
  t.notOk(claimAcrossProcesses(port), 'and is fresh again');
  t.end();
});

t.test('freePort hands out claimed, listenable ports', async (t) => {
  const ports = await Promise.all(Array.from({ length: 20 }, () => freePort()));
  t.equal(new Set(ports).size, 20, 'no port twice');
  for (const port of ports)
    t.ok(existsSync(join(PORT_CLAIMS_DIR, String(port))), `${port} is claimed`);
});
