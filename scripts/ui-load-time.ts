/**
 * How long the dashboard takes to load, on 3 raftkv members run as real
 * processes on 127.0.0.1 (one member per process, as users run them) holding
 * 10,000 keys and 100 leases: navigation start to the page's own mark, its
 * first frame that shows every member and the leader (src/ui/lib/monitor.js).
 *
 * Cold: a new browser context, nothing cached. Warm: the same page opened
 * again, its files kept (they are named by their content hash). Each is
 * measured on an idle cluster and under a little read/write traffic.
 * Needs Chromium (apt-get install -y chromium; RAFTKV_CHROMIUM names another).
 * Run: npx tsx scripts/ui-load-time.ts [--loads 9]
 */
import type { Browser, Page } from 'playwright-core';
import { request } from '../test/integration/helpers.js';
import { ProcessCluster } from '../test/integration/process-cluster.js';
import { raftkvBundle } from '../test/support/raftkv-bundle.js';
import { launchBrowser } from '../test/ui/browser.js';

const KEYS = 10_000;
const LEASES = 100;
const BATCH = 100;
const loadsArg = process.argv.indexOf('--loads');
const LOADS = loadsArg > 0 ? Number(process.argv[loadsArg + 1]) : 9;

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const max = (xs: number[]): number => Math.max(...xs);

async function fill(url: string): Promise<void> {
  for (let i = 0; i < KEYS; i += BATCH) {
    const success = [];
    for (let k = i; k < i + BATCH; k++) {
      success.push({ op: 'put', key: `config/app-${k % 7}/setting-${k}`, value: `v${k}` });
    }
    const r = await request(url, 'POST', '/v1/txn', { compare: [], success, failure: [] });
    if (r.status !== 200) throw new Error(`txn: ${JSON.stringify(r.body)}`);
  }
  for (let i = 0; i < LEASES; i++) {
    const id = (await request(url, 'POST', '/v1/leases', { ttl: 600 })).body.id as string;
    await request(url, 'PUT', `/v1/kv/sessions%2Fworker-${i}`, { value: `pid ${i}`, lease: id });
  }
}

/** One load of the page; the page's own mark, in ms from navigation start. */
async function loadOnce(page: Page, url: string): Promise<number> {
  await page.goto(`${url}/ui/`);
  // A function, not a string: the page's policy forbids eval.
  await page.waitForFunction(
    () => performance.getEntriesByName('raftkv-dashboard-ready').length > 0,
    undefined,
    { timeout: 15_000 },
  );
  return Math.round(
    Number(
      await page.evaluate('performance.getEntriesByName("raftkv-dashboard-ready")[0].startTime'),
    ),
  );
}

async function measure(browser: Browser, url: string, what: string): Promise<void> {
  const cold: number[] = [];
  const warm: number[] = [];
  for (let i = 0; i < LOADS; i++) {
    const context = await browser.newContext();
    const page = await context.newPage();
    cold.push(await loadOnce(page, url));
    await page.goto('about:blank');
    warm.push(await loadOnce(page, url));
    await context.close();
  }
  console.log(
    `${what}: cold median ${median(cold)} ms, max ${max(cold)} (${cold.join(', ')}); ` +
      `warm median ${median(warm)} ms, max ${max(warm)} (${warm.join(', ')})`,
  );
}

// The default tick (100 ms), as users run it, rather than the tests' fast one.
const cluster = await ProcessCluster.create(3, ['--tick-ms', '100'], { script: raftkvBundle() });
try {
  await cluster.startAll();
  const leader = await cluster.waitForLeader();
  const url = cluster.url((leader + 1) % 3);
  await fill(cluster.url(leader));
  console.log(`3 members as processes, ${KEYS} keys, ${LEASES} leases; the page from a follower`);
  const browser = await launchBrowser();
  try {
    // One throwaway load: the browser's own first-start costs are not the page's.
    const warmup = await browser.newPage();
    await loadOnce(warmup, url);
    await warmup.close();
    await measure(browser, url, 'idle');
    let stop = false;
    const deadline = Date.now() + 120_000;
    const traffic = (async () => {
      for (let n = 0; !stop && Date.now() < deadline; n++) {
        const at = cluster.url(n % 3);
        await request(at, 'PUT', '/v1/kv/load%2Fhits', { value: String(n) }).catch(() => {});
        await fetch(`${at}/v1/kv/load%2Fhits`).catch(() => {});
        await new Promise((r) => setTimeout(r, 10));
      }
    })();
    await measure(browser, url, 'under traffic');
    stop = true;
    await traffic;
  } finally {
    await browser.close();
  }
} finally {
  await cluster.close();
}
