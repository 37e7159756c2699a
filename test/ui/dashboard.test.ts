/**
 * The dashboard in a real browser against a real 3-member cluster on
 * 127.0.0.1: the members and leader it shows match GET /v1/status, a key
 * written from the page is seen through the API, a watch on the page sees
 * the API's writes, a member is added, promoted and removed from the page, a
 * stopped member is marked down, and when the member that served the page
 * goes away, the page says so and carries on through another one, its watch
 * with it. No console errors, except the failed requests to the
 * members the test stopped.
 */
import t from 'tap';
import type { StartedNode } from '../../src/index.js';
import {
  freePort,
  get,
  put,
  request,
  startCluster,
  startJoiner,
  type TestCluster,
} from '../integration/helpers.js';
import type { NodeStatus } from '../integration/http-ops.js';
import { browserMissing, launchBrowser, type PageLog, recordConsole } from './browser.js';

const missing = browserMissing();
if (missing !== undefined) {
  // A plan of nothing, with the reason: tap reports the file as skipped, saying why.
  t.plan(0, `skipped: ${missing}`);
} else {
  t.test('the dashboard against a 3-member cluster', { timeout: 180_000 }, async (t) => {
    const c: TestCluster = await startCluster(3);
    t.teardown(() => c.close());
    let leaderIndex = await c.waitForLeader();
    const browser = await launchBrowser();
    t.teardown(() => browser.close());
    const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
    page.setDefaultTimeout(15_000);
    const log: PageLog = recordConsole(page);
    // Serve the page from a member that is not the leader, so stopping it later keeps a quorum.
    const home = leaderIndex === 0 ? 1 : 0;
    const url = c.url(home);

    await page.goto(`${url}/ui/`);
    await page.locator('tr[data-member]').nth(2).waitFor();

    await t.test('members and leader match GET /v1/status', async (t) => {
      const statuses: NodeStatus[] = await Promise.all(
        [0, 1, 2].map(
          async (i) => (await fetch(`${c.url(i)}/v1/status`)).json() as Promise<NodeStatus>,
        ),
      );
      const leaderId = statuses[home].leader;
      const leader = statuses.find((s) => s.id === leaderId)!;
      t.ok(leader, 'the cluster has a leader');
      const names = await page
        .locator('tr[data-member]')
        .evaluateAll((rows) => rows.map((r) => r.getAttribute('data-member')));
      t.same(names.sort(), ['n1', 'n2', 'n3'], 'every member is listed');
      await page.locator('[data-testid=leader]', { hasText: leader.name }).waitFor();
      t.match(await page.locator('[data-testid=leader]').textContent(), leader.name);
      for (const s of statuses) {
        const row = page.locator(`tr[data-member="${s.name}"]`);
        t.equal(await row.locator('[data-role]').textContent(), s.role, `${s.name}'s role`);
        t.match(await row.textContent(), s.id, `${s.name}'s id`);
        t.equal(await row.getAttribute('data-state'), 'healthy', `${s.name} is healthy`);
      }
      t.match(await page.locator('[data-testid=connected]').textContent(), `n${home + 1}`);
      // The charts get their points from the members' /metrics.
      await page.locator('[data-testid=chart-rate] canvas').waitFor();
      t.pass('the request charts are drawn');
    });

    await t.test('a key written from the page is there through the API', async (t) => {
      await page.click('a[data-tab=keys]');
      const form = page.locator('[data-testid=put-form]');
      await form.locator('input[name=key]').fill('ui/from-page');
      await form.locator('textarea[name=value]').fill('hello from the browser');
      await form.locator('[data-testid=put]').click();
      await page.locator('[data-testid=put-result]', { hasText: 'at revision' }).waitFor();
      const r = await get(c.url(2), 'ui/from-page');
      t.equal(r.status, 200);
      t.equal(r.body.kv.value, 'hello from the browser', 'the API reads what the page wrote');
      // The listing follows by its watch; the key opens with its value and history.
      await page.fill('[data-testid=prefix]', 'ui/');
      await page.press('[data-testid=prefix]', 'Enter');
      await page.locator('a[data-key="ui/from-page"]').click();
      await page
        .locator('[data-testid=key-value]', { hasText: 'hello from the browser' })
        .waitFor();
      t.pass('the key browser shows the value');

      // Compare-and-swap: a stale modRevision is refused, and nothing changes.
      const modRevision = r.body.kv.modRevision as number;
      await form.locator('textarea[name=value]').fill('lost update');
      await form.locator('select[name=guard]').selectOption('revision');
      await form.locator('input[name=guardValue]').fill(String(modRevision - 1));
      await form.locator('[data-testid=put]').click();
      await page.locator('[data-testid=put-result]', { hasText: 'compare failed' }).waitFor();
      t.equal((await get(c.url(0), 'ui/from-page')).body.kv.value, 'hello from the browser');
      await form.locator('input[name=guardValue]').fill(String(modRevision));
      await form.locator('[data-testid=put]').click();
      await page.locator('[data-testid=put-result]', { hasText: 'at revision' }).waitFor();
      t.equal(
        (await get(c.url(0), 'ui/from-page')).body.kv.value,
        'lost update',
        'a true guard writes',
      );
      await page.locator('[data-testid=history] tbody tr').nth(1).waitFor();
      t.equal(await page.locator('[data-testid=history] tbody tr').count(), 2, 'two versions');

      // Delete asks first.
      await page.locator('button.danger', { hasText: 'Delete' }).click();
      await page.locator('[data-testid=confirm-yes]').click();
      await page.locator('[data-testid=put-result]', { hasText: 'compare failed' }).waitFor();
      t.equal(
        (await get(c.url(0), 'ui/from-page')).status,
        200,
        'a stale guard on delete keeps it',
      );
      await form.locator('select[name=guard]').selectOption('none');
      await page.locator('button.danger', { hasText: 'Delete' }).click();
      await page.locator('[data-testid=confirm-yes]').click();
      await page.locator('[data-testid=put-result]', { hasText: 'deleted 1' }).waitFor();
      t.equal((await get(c.url(0), 'ui/from-page')).status, 404, 'deleted');
    });

    await t.test("a watch on the page sees the API's writes", async (t) => {
      await page.click('a[data-tab=watch]');
      await page.fill('[data-testid=watch-prefix]', 'tail/');
      await page.click('[data-testid=watch-start]');
      await page.locator('[data-testid=watch-state]', { hasText: 'watching' }).waitFor();
      await put(c.url(2), 'tail/a', 'one');
      await put(c.url(1), 'tail/b', 'two');
      await put(c.url(0), 'other/c', 'not watched');
      await page.locator('[data-testid=watch-tail] tr[data-key="tail/b"]').waitFor();
      const keys = await page
        .locator('[data-testid=watch-tail] tbody tr')
        .evaluateAll((rows) => rows.map((r) => r.getAttribute('data-key')));
      t.same(keys, ['tail/b', 'tail/a'], 'both writes, newest first, nothing outside the prefix');
      t.same(log.errors, [], 'no console errors so far');
      // Expected: the 409s of the compare-and-swap refusals above, and 404 for a read of the
      // key deleted above (the page re-reads an open key when its watch reports a change, and
      // that read may land after the delete).
      const unexpected = log.errorAnswers.filter(
        (e) => !/^409 /.test(e) && !/^404 GET \/v1\/kv\/ui\/from-page(\?|$)/.test(e),
      );
      t.same(
        unexpected,
        [],
        `no other error answers while every member is up (${unexpected.join(' | ')})`,
      );
      t.ok(
        log.errorAnswers.some((e) => /^409 PUT \/v1\/kv\/ui\/from-page$/.test(e)),
        'the refused compare-and-swap was seen, so answers are being recorded',
      );
      // Chromium logs each error answer; anything else it logs is a request with no answer.
      const unanswered = log.failedRequests.filter((e) => !/responded with a status of/.test(e));
      t.same(unanswered, [], `no request went unanswered (${unanswered.join(' | ')})`);
    });

    await t.test('coordination: leases, registry, lock queues, elections', async (t) => {
      const grant = async () =>
        (await request(url, 'POST', '/v1/leases', { ttl: 60 })).body.id as string;
      const [a, b] = [await grant(), await grant()];
      await request(url, 'PUT', '/v1/kv/svc%2Fa', { value: 'x', lease: a });
      await request(url, 'PUT', '/v1/registry/web-1', { value: '10.0.0.1:80', lease: a });
      const held = await request(url, 'POST', '/v1/locks/nightly', { lease: a });
      const waiting = request(url, 'POST', '/v1/locks/nightly', { lease: b, timeoutMs: 20_000 });
      await request(url, 'POST', '/v1/elections/primary/campaign', { lease: a, value: 'host-a' });
      await page.click('a[data-tab=coordination]');
      const lock = page.locator('tr[data-lock=nightly]');
      await lock.locator('code', { hasText: b }).waitFor();
      t.equal(
        await lock.locator('[data-field=fencingToken]').textContent(),
        String(held.body.fencingToken),
        'the holder and its fencing token',
      );
      t.match(await lock.textContent(), a, 'the holder is lease a');
      await page.locator('[data-testid=leases] code', { hasText: 'svc/a' }).waitFor();
      t.pass('a lease is listed with its key');
      t.match(await page.locator('[data-testid=registry]').textContent(), '10.0.0.1:80');
      t.match(await page.locator('tr[data-election=primary]').textContent(), 'host-a');
      await request(url, 'DELETE', `/v1/locks/nightly?key=${encodeURIComponent(held.body.key)}`);
      const handedOver = await waiting;
      t.equal(handedOver.status, 200);
      // The page follows the hand-over by itself: the next holder and its larger token.
      await lock
        .locator('[data-field=fencingToken]', { hasText: String(handedOver.body.fencingToken) })
        .waitFor();
      t.ok(handedOver.body.fencingToken > held.body.fencingToken, 'the token grew');
    });

    await t.test('operations: move leadership, after a confirmation', async (t) => {
      const before = c.leaderIndex();
      const to = [0, 1, 2].find((i) => i !== home && i !== before)!;
      await page.click('a[data-tab=operations]');
      await page
        .locator(`[data-testid=ops-members] tr[data-member="n${to + 1}"] button`, {
          hasText: 'Make leader',
        })
        .click();
      t.match(
        await page.locator('[data-testid=confirm]').textContent(),
        `Move leadership to n${to + 1}`,
      );
      await page.locator('[data-testid=confirm-yes]').click();
      await page.locator('[data-testid=ops-result]', { hasText: 'done' }).waitFor();
      const status = (await (await fetch(`${c.url(home)}/v1/status`)).json()) as NodeStatus;
      t.equal(
        status.leader,
        ((await (await fetch(`${c.url(to)}/v1/status`)).json()) as NodeStatus).id,
        `n${to + 1} leads`,
      );
      leaderIndex = to;

      // A backup downloads GET /v1/snapshot, after a confirmation.
      await page.locator('[data-testid=backup]').click();
      const download = page.waitForEvent('download');
      await page.locator('[data-testid=confirm-yes]').click();
      t.match((await download).suggestedFilename(), /^raftkv-r\d+\.snap$/, 'a backup file');
    });

    await t.test('operations: add a learner, promote it, remove it', async (t) => {
      const [peerPort, clientPort] = [await freePort(), await freePort()];
      const peerUrl = `http://127.0.0.1:${peerPort}`;
      const clientUrl = `http://127.0.0.1:${clientPort}`;
      const add = page.locator('form.addmember');
      await add.locator('input[name=name]').fill('n4');
      await add.locator('input[name=peerUrl]').fill(peerUrl);
      await add.locator('input[name=clientUrl]').fill(clientUrl);
      await add.locator('button[type=submit]').click();
      t.match(await page.locator('[data-testid=confirm]').textContent(), 'Add n4');
      await page.locator('[data-testid=confirm-yes]').click();
      await page.locator('[data-testid=ops-result]', { hasText: 'done: Add n4' }).waitFor();
      const listed = async () =>
        (await request(c.url(home), 'GET', '/v1/cluster/members')).body.members as {
          name: string;
          id: string;
          role: string;
        }[];
      const n4 = (await listed()).find((m) => m.name === 'n4');
      t.equal(n4?.role, 'learner', 'the API lists n4 as a learner');

      // The new member starts with --join, as the page's hint says.
      let joined: StartedNode | undefined = await startJoiner(c, 'n4', peerPort, clientPort);
      t.teardown(() => joined?.stop());
      await page.click('a[data-tab=cluster]');
      await page.locator('tr[data-member=n4][data-state=healthy]').waitFor({ timeout: 30_000 });
      // Until its first snapshot brings the configuration, the joiner calls itself a follower.
      await page.locator('tr[data-member=n4] [data-role]', { hasText: 'learner' }).waitFor();
      t.pass('the page shows the learner');

      await page.click('a[data-tab=operations]');
      await page
        .locator('[data-testid=ops-members] tr[data-member=n4] button', { hasText: 'Promote' })
        .click();
      await page.locator('[data-testid=confirm-yes]').click();
      await page
        .locator('[data-testid=ops-result]', { hasText: 'done: Promote n4 to voter' })
        .waitFor();
      t.equal((await listed()).find((m) => m.name === 'n4')?.role, 'voter', 'n4 is a voter');
      t.equal((await put(clientUrl, 'ui/through-n4', 'x')).status, 200, 'n4 takes writes');

      await page
        .locator('[data-testid=ops-members] tr[data-member=n4] button', { hasText: 'Remove' })
        .click();
      t.match(
        await page.locator('[data-testid=confirm]').textContent(),
        'Remove n4 from the cluster',
      );
      await page.locator('[data-testid=confirm-yes]').click();
      await page.locator('[data-testid=ops-result]', { hasText: 'done: Remove n4' }).waitFor();
      t.same(
        (await listed()).map((m) => m.name).sort(),
        ['n1', 'n2', 'n3'],
        'n4 is gone from the member list',
      );
      await page
        .locator('[data-testid=ops-members] tr[data-member=n4]')
        .waitFor({ state: 'detached' });
      t.pass('and from the page');
      await joined.stop();
      joined = undefined;
    });

    await t.test('a stopped member is marked down', async (t) => {
      await page.click('a[data-tab=cluster]');
      // Neither the page's member nor the leader.
      const victim = [0, 1, 2].find((i) => i !== home && i !== leaderIndex)!;
      await c.stopNode(victim);
      await page.locator(`tr[data-member="n${victim + 1}"][data-state=down]`).waitFor();
      t.pass(`n${victim + 1} is shown down`);
      await c.restartNode(victim);
      await page
        .locator(`tr[data-member="n${victim + 1}"][data-state=healthy]`)
        .waitFor({ timeout: 30_000 });
      t.pass(`n${victim + 1} is shown healthy again after its restart`);
    });

    await t.test(
      'the member that served the page goes away: the page says so and moves',
      async (t) => {
        // A watch open on the page's member carries on through the next one.
        await page.click('a[data-tab=watch]');
        await page.fill('[data-testid=watch-prefix]', 'resume/');
        await page.click('[data-testid=watch-start]');
        const state = page.locator('[data-testid=watch-state]');
        await state.filter({ hasText: `watching on ${url}` }).waitFor();
        await put(c.url(leaderIndex), 'resume/a', 'before');
        await page.locator('[data-testid=watch-tail] tr[data-key="resume/a"]').waitFor();

        await c.stopNode(home);
        // Written while the page's watch has no member: it must come when the watch resumes.
        await put(c.url(leaderIndex), 'resume/b', 'while moving');
        const banner = page.locator('[data-testid=banner]', { hasText: 'reconnected to' });
        await banner.waitFor();
        t.match(await banner.textContent(), `n${home + 1} is unreachable`);
        await page.locator('[data-testid=connected]', { hasNotText: `n${home + 1}` }).waitFor();
        t.pass('the page talks to another member');
        await state.filter({ hasText: 'watching on http' }).filter({ hasNotText: url }).waitFor();
        t.pass('the watch resumed on another member');
        await put(c.url(leaderIndex), 'resume/c', 'after');
        await page.locator('[data-testid=watch-tail] tr[data-key="resume/c"]').waitFor();
        const tail = await page
          .locator('[data-testid=watch-tail] tbody tr')
          .evaluateAll((rows) => rows.map((r) => r.getAttribute('data-key')));
        t.same(
          tail,
          ['resume/c', 'resume/b', 'resume/a'],
          'every change once, none lost across the move',
        );

        await page.click('a[data-tab=cluster]');
        await page.locator(`tr[data-member="n${home + 1}"][data-state=down]`).waitFor();
        // And it still writes, through the other member.
        await page.click('a[data-tab=keys]');
        const form = page.locator('[data-testid=put-form]');
        await form.locator('input[name=key]').fill('ui/after-failover');
        await form.locator('textarea[name=value]').fill('still here');
        await form.locator('[data-testid=put]').click();
        await page.locator('[data-testid=put-result]', { hasText: 'at revision' }).waitFor();
        t.equal((await get(c.url(leaderIndex), 'ui/after-failover')).body.kv.value, 'still here');
        t.same(log.errors, [], `no console errors (${log.errors.join(' | ')})`);
        t.ok(
          log.failedRequests.every((e) => /ERR_CONNECTION_REFUSED|Failed to load resource/.test(e)),
          'the only failed requests are to the stopped members',
        );
      },
    );

    await t.test('the member in use loses its leader: the page says so', async (t) => {
      await page.click('a[data-tab=cluster]');
      const connected = (await page.locator('[data-testid=connected]').textContent()) ?? '';
      const using = [0, 1, 2].find((i) => i !== home && connected.includes(`n${i + 1}`))!;
      const other = [0, 1, 2].find((i) => i !== home && i !== using)!;
      await c.stopNode(other);
      const banner = page.locator('[data-testid=banner]', { hasText: 'has no leader' });
      await banner.waitFor();
      t.match(await banner.textContent(), `n${using + 1} has no leader`);
      await page.locator('[data-testid=leader]', { hasText: 'none known' }).waitFor();
      t.pass('no leader is shown');
    });
  });
}

if (missing === undefined) {
  t.test(
    'with authentication on: a login form, and the token kept in memory only',
    { timeout: 120_000 },
    async (t) => {
      const c = await startCluster(1);
      t.teardown(() => c.close());
      await c.waitForLeader();
      const url = c.url(0);
      const password = 'correct horse';
      t.equal(
        (await request(url, 'PUT', '/v1/auth/users/root', { password, roles: ['root'] })).status,
        201,
      );
      t.equal((await request(url, 'POST', '/v1/auth/enable')).status, 200);
      const browser = await launchBrowser();
      t.teardown(() => browser.close());
      const page = await browser.newPage();
      page.setDefaultTimeout(15_000);
      const log = recordConsole(page);
      await page.goto(`${url}/ui/`);
      const login = page.locator('[data-testid=login]');
      await login.waitFor();
      await login.locator('input[name=user]').fill('root');
      await login.locator('input[name=password]').fill('wrong');
      await login.locator('button[type=submit]').click();
      await login.locator('.error').waitFor();
      t.pass('a wrong password is refused on the form');
      await login.locator('input[name=password]').fill(password);
      await login.locator('button[type=submit]').click();
      await page.locator('tr[data-member=n1][data-state=healthy]').waitFor();
      t.pass('logged in, the cluster shows');
      await page.click('a[data-tab=keys]');
      const form = page.locator('[data-testid=put-form]');
      await form.locator('input[name=key]').fill('secured');
      await form.locator('textarea[name=value]').fill('with a token');
      await form.locator('[data-testid=put]').click();
      await page.locator('[data-testid=put-result]', { hasText: 'at revision' }).waitFor();
      const basic = `Basic ${Buffer.from(`root:${password}`).toString('base64')}`;
      const r = await fetch(`${url}/v1/kv/secured`, { headers: { authorization: basic } });
      t.equal(
        ((await r.json()) as { kv: { value: string } }).kv.value,
        'with a token',
        'the write carried the token',
      );
      const stored = await page.evaluate(
        'JSON.stringify([localStorage.length, sessionStorage.length, document.cookie])',
      );
      t.equal(stored, '[0,0,""]', 'nothing kept in storage or cookies');
      // Only the refused login and the first 401s before it.
      const unexpected = log.failedRequests.filter((e) => !/status of 401/.test(e));
      t.same(unexpected, [], 'no failed requests but the 401s');
      t.same(log.errors, [], 'no console errors');
    },
  );
}
