/**
 * The dashboard's screenshots (docs/ui-*.png), on a
 * 3-member cluster on 127.0.0.1 holding 10,000 keys and 100 leases, with a
 * little traffic so the charts move. Needs Chromium (apt-get install -y
 * chromium; RAFTKV_CHROMIUM names another). Run: npx tsx scripts/ui-screenshots.ts
 */
import { join } from 'node:path';
import { request, startCluster } from '../test/integration/helpers.js';
import { REPO_ROOT } from '../test/integration/process-cluster.js';
import { launchBrowser } from '../test/ui/browser.js';

const KEYS = 10_000;
const LEASES = 100;
const BATCH = 100;

const c = await startCluster(3);
try {
  const leader = await c.waitForLeader();
  const url = c.url(leader === 0 ? 1 : 0);
  const apps = ['billing', 'search', 'web'];
  for (let i = 0; i < KEYS; i += BATCH) {
    const success = [];
    for (let k = i; k < i + BATCH; k++) {
      const app = apps[k % apps.length];
      success.push({
        op: 'put',
        key: `config/${app}/setting-${String(k).padStart(5, '0')}`,
        value: `v${k}`,
      });
    }
    const r = await request(url, 'POST', '/v1/txn', { compare: [], success, failure: [] });
    if (r.status !== 200) throw new Error(`txn: ${JSON.stringify(r.body)}`);
  }
  const leases: string[] = [];
  for (let i = 0; i < LEASES; i++) {
    const id = (await request(url, 'POST', '/v1/leases', { ttl: 300 + i })).body.id as string;
    leases.push(id);
    await request(url, 'PUT', `/v1/kv/sessions%2Fworker-${i}`, {
      value: `pid ${1000 + i}`,
      lease: id,
    });
  }
  for (let i = 0; i < 3; i++) {
    await request(url, 'PUT', `/v1/registry/web-${i}`, {
      value: `10.0.0.${i + 1}:8080`,
      lease: leases[i],
    });
  }
  await request(url, 'POST', '/v1/locks/nightly-backup', { lease: leases[0] });
  const waiting = request(url, 'POST', '/v1/locks/nightly-backup', {
    lease: leases[1],
    timeoutMs: 120_000,
  });
  await request(url, 'POST', '/v1/elections/scheduler/campaign', {
    lease: leases[2],
    value: 'host-a',
  });
  const candidate = request(url, 'POST', '/v1/elections/scheduler/campaign', {
    lease: leases[3],
    value: 'host-b',
    timeoutMs: 120_000,
  });
  void waiting;
  void candidate;

  const browser = await launchBrowser();
  try {
    const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
    await page.goto(`${url}/ui/`);
    // Traffic for the charts: reads and writes on every member.
    let stop = false;
    const traffic = (async () => {
      for (let n = 0; !stop && n < 50_000; n++) {
        const at = c.url(n % 3);
        await request(at, 'PUT', `/v1/kv/config%2Fweb%2Fhits`, { value: String(n) }).catch(
          () => {},
        );
        for (let r = 0; r < 4; r++) {
          await fetch(`${at}/v1/kv/config%2Fweb%2Fhits`).catch(() => {});
        }
        await new Promise((r) => setTimeout(r, 20));
      }
    })();

    await page.waitForTimeout(40_000);
    const shot = (name: string) =>
      page.screenshot({ path: join(REPO_ROOT, 'docs', name), fullPage: true });
    await shot('ui-cluster.png');
    await page.click('a[data-tab=keys]');
    await page.fill('[data-testid=prefix]', 'config/web/');
    await page.press('[data-testid=prefix]', 'Enter');
    await page.locator('a[data-key="config/web/setting-00002"]').click();
    await page.locator('[data-testid=history] tbody tr').first().waitFor();
    await shot('ui-keys.png');
    await page.click('a[data-tab=watch]');
    await page.fill('[data-testid=watch-prefix]', 'config/');
    await page.click('[data-testid=watch-start]');
    await page.locator('[data-testid=watch-tail] tbody tr').nth(5).waitFor();
    await shot('ui-watch.png');
    await page.click('a[data-tab=coordination]');
    await page.locator('tr[data-lock]').first().waitFor();
    await page.waitForTimeout(1000);
    await page.screenshot({ path: join(REPO_ROOT, 'docs', 'ui-coordination.png') });
    // A member goes away: the page says so.
    const victim = [0, 1, 2].find((i) => c.url(i) !== url && i !== c.leaderIndex())!;
    await c.stopNode(victim);
    await page.click('a[data-tab=cluster]');
    await page.locator(`tr[data-member="n${victim + 1}"][data-state=down]`).waitFor();
    await page.waitForTimeout(3000);
    await page.screenshot({ path: join(REPO_ROOT, 'docs', 'ui-member-down.png') });
    stop = true;
    await traffic;
  } finally {
    await browser.close();
  }
} finally {
  await c.close();
}
process.exit(0);
