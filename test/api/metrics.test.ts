/**
 * GET /metrics carries what operators alert on (README "Metrics"): each metric
 * has a HELP text, and the ones a write, a watch and a scrape touch have moved.
 */
import { readFileSync } from 'node:fs';
import t from 'tap';
import { http, inject, type SingleNode, startSingleNode } from './helpers.js';

let n: SingleNode;
t.before(async () => {
  n = await startSingleNode();
});
t.teardown(() => n?.close());

/** name → value of each unlabelled sample, and every sample line by name with its labels. */
function parse(text: string) {
  const help = new Set<string>();
  const types = new Map<string, string>();
  const samples: { name: string; labels: string; value: number }[] = [];
  for (const line of text.split('\n')) {
    const h = /^# HELP (\S+) (.+)$/.exec(line);
    if (h) help.add(h[1]!);
    const ty = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (ty) types.set(ty[1]!, ty[2]!);
    const s = /^([a-zA-Z_:][\w:]*)(\{[^}]*\})? (\S+)$/.exec(line);
    if (s) samples.push({ name: s[1]!, labels: s[2] ?? '', value: Number(s[3]) });
  }
  const value = (name: string, labels = '') =>
    samples.find((s) => s.name === name && s.labels.includes(labels))?.value;
  return { help, types, samples, value };
}

t.test('the metrics operators alert on are there, each with a HELP text', async (t) => {
  await inject(n.app, 'PUT', '/v1/kv/metrics-key', { body: { value: 'x' } });
  const m = parse((await inject(n.app, 'GET', '/metrics')).text);
  const expected: Record<string, string> = {
    raftkv_disk_sync_duration_seconds: 'histogram',
    raftkv_apply_duration_seconds: 'histogram',
    raftkv_slow_applies_total: 'counter',
    raftkv_proposals_total: 'counter',
    raftkv_proposals_pending: 'gauge',
    raftkv_proposals_failed_total: 'counter',
    raftkv_raft_commit_index: 'gauge',
    raftkv_raft_applied_index: 'gauge',
    raftkv_leader_changes_seen_total: 'counter',
    raftkv_has_leader: 'gauge',
    raftkv_is_leader: 'gauge',
    raftkv_raft_term: 'gauge',
    raftkv_peer_send_failures_total: 'counter',
    raftkv_peer_round_trip_time_seconds: 'histogram',
    raftkv_snapshot_save_duration_seconds: 'histogram',
    raftkv_snapshot_send_duration_seconds: 'histogram',
    raftkv_snapshot_install_duration_seconds: 'histogram',
    raftkv_http_request_duration_seconds: 'histogram',
    raftkv_watchers: 'gauge',
    raftkv_watch_events_sent_total: 'counter',
    raftkv_watch_slow_consumers_closed_total: 'counter',
    raftkv_leases: 'gauge',
    raftkv_db_size_bytes: 'gauge',
    raftkv_state_size_bytes: 'gauge',
    raftkv_quota_bytes: 'gauge',
    // The latency accounting (src/server/write-accounting.ts) and the process histograms beside it.
    raftkv_write_stage_seconds: 'histogram',
    raftkv_write_duration_seconds: 'histogram',
    raftkv_eventloop_delay_seconds: 'histogram',
    raftkv_gc_pause_seconds: 'histogram',
    // prom-client's process and Node.js metrics.
    process_cpu_seconds_total: 'counter',
    process_resident_memory_bytes: 'gauge',
    nodejs_eventloop_lag_p99_seconds: 'gauge',
    nodejs_gc_duration_seconds: 'histogram',
    nodejs_heap_size_used_bytes: 'gauge',
  };
  for (const [name, type] of Object.entries(expected)) {
    t.equal(m.types.get(name), type, `${name} is a ${type}`);
  }
  const withoutHelp = [...m.types.keys()].filter((name) => !m.help.has(name));
  t.strictSame(withoutHelp, [], 'every metric has a HELP text');
  t.ok(m.types.size >= Object.keys(expected).length);
});

t.test('a write, a watch and a request move their metrics', async (t) => {
  const before = parse((await inject(n.app, 'GET', '/metrics')).text);
  await inject(n.app, 'PUT', '/v1/kv/moved', { body: { value: '1' } });
  // A watch from the revision before: it is sent that write's event at once.
  const revision = (await inject(n.app, 'GET', '/v1/status')).body.revision as number;
  const ac = new AbortController();
  const res = await fetch(`${n.url}/v1/watch/moved?fromRevision=${revision}`, {
    signal: ac.signal,
  });
  const reader = res.body!.getReader();
  const first = await reader.read();
  t.ok(first.value && first.value.byteLength > 0, 'the watch sent its event');
  const during = parse((await http(n.url, 'GET', '/metrics')).text);
  ac.abort();
  await reader.cancel().catch(() => {});

  const grew = (name: string, labels = '') =>
    (during.value(name, labels) ?? 0) > (before.value(name, labels) ?? 0);
  t.ok(grew('raftkv_disk_sync_duration_seconds_count'), 'the write was synced and timed');
  t.ok(grew('raftkv_apply_duration_seconds_count'), 'and applied and timed');
  t.ok(grew('raftkv_proposals_total'), 'and counted as proposed');
  t.ok(grew('raftkv_watch_events_sent_total'), 'the watch event was counted');
  t.equal(during.value('raftkv_watchers'), 1, 'one watch is open');
  t.ok(
    (during.value('raftkv_http_request_duration_seconds_count', 'route="/v1/kv/*"') ?? 0) >= 2,
    'puts are timed under their route pattern, not their path',
  );
  t.notOk(
    during.samples.some((s) => s.labels.includes('/v1/kv/moved')),
    'no label carries a raw path',
  );
  t.equal(during.value('raftkv_has_leader'), 1);
  t.equal(during.value('raftkv_is_leader'), 1);
  t.ok((during.value('raftkv_quota_bytes') ?? 0) > 0, 'the quota is shown');
  t.ok((during.value('raftkv_db_size_bytes') ?? 0) > 0, 'and the size on disk');
});

t.test('the Grafana dashboard in docs/ only uses metrics the server exports', async (t) => {
  const m = parse((await inject(n.app, 'GET', '/metrics')).text);
  const dashboard = JSON.parse(
    readFileSync(new URL('../../docs/grafana-dashboard.json', import.meta.url), 'utf8'),
  ) as { panels: { title: string; targets: { expr: string }[] }[] };
  const used = new Set<string>();
  for (const panel of dashboard.panels)
    for (const target of panel.targets)
      for (const name of target.expr.match(/\b(raftkv|nodejs|process)_\w+/g) ?? [])
        used.add(name.replace(/_(bucket|count|sum)$/, ''));
  t.ok(used.size >= 15, `the dashboard uses ${used.size} metrics`);
  const missing = [...used].filter((name) => !m.types.has(name));
  t.strictSame(missing, [], 'each of them is exported');
});
