/** Cluster: members, leader and its changes, store and quota, request rates and latencies. */
import { lazyPanel } from './lazy.js';
import {
  formatAgo,
  formatBytes,
  formatPercent,
  formatRate,
  formatSeconds,
  lagOf,
} from './lib/format.js';
import { html } from './lib/html.js';

// The charts' library is the page's largest file: it loads when there is something to
// draw (the second metrics reading, two seconds in), after the first frame.
const Chart = lazyPanel(() => import('./chart.js'), 'Chart', '');

const COLORS = { read: '#2b7bb9', write: '#d9822b', watch: '#6a9f3a' };

export function ClusterPanel({ monitor }) {
  const nowMs = Date.now();
  const leader = monitor.leader();
  const store = (leader ?? monitor.current())?.status;
  const last = monitor.points[monitor.points.length - 1];
  return html`
    <section class="card">
      <h2>Members</h2>
      <p data-testid="leader">
        Leader: ${leader ? html`<b>${leader.name}</b> (${leader.id})` : html`<b class="bad">none known</b>`}
        ${leader?.status ? html` · term ${leader.status.term}` : ''}
      </p>
      <table class="members" data-testid="members">
        <thead>
          <tr>
            <th>member</th><th>id</th><th>role</th><th>term</th><th>commit</th><th>applied</th>
            <th>lag</th><th>last contact</th><th>health</th><th>version</th>
          </tr>
        </thead>
        <tbody>
          ${monitor.members.map((m) => {
            const s = m.status;
            const state = !m.reachable ? 'down' : m.healthy ? 'healthy' : 'unhealthy';
            const lag = lagOf(s, leader?.status);
            return html`<tr data-member=${m.name} data-state=${state} class=${state}>
              <td><b>${m.name}</b> <small>${m.url ?? ''}</small></td>
              <td><code>${m.id}</code></td>
              <td data-role>${s ? s.role : m.voter ? 'voter' : 'learner'}</td>
              <td>${s?.term ?? '–'}</td>
              <td>${s?.commitIndex ?? '–'}</td>
              <td>${s?.appliedIndex ?? '–'}</td>
              <td class=${lag > 100 ? 'bad' : ''}>${lag ?? '–'}</td>
              <td>${formatAgo(m.lastContactMs, nowMs)}</td>
              <td><span class=${`pill ${state}`} data-health>${state}</span>
                ${m.error ? html` <small class="error">${m.error}</small>` : ''}</td>
              <td>${s?.version ?? '–'}</td>
            </tr>`;
          })}
        </tbody>
      </table>
    </section>
    <section class="card grid2">
      <div>
        <h2>Store</h2>
        <dl data-testid="store">
          <dt>revision</dt><dd data-field="revision">${store?.revision ?? '–'}</dd>
          <dt>compacted to</dt><dd>${store?.compactRevision ?? '–'}</dd>
          <dt>DB size</dt><dd>${formatBytes(store?.dbSizeBytes)}</dd>
          <dt>state / quota</dt>
          <dd>${formatBytes(store?.stateSizeBytes)} of ${formatBytes(store?.quotaBytes)}
            (${formatPercent(store?.stateSizeBytes, store?.quotaBytes)})
            <meter min="0" max=${store?.quotaBytes ?? 1} value=${store?.stateSizeBytes ?? 0}
              high=${(store?.quotaBytes ?? 1) * 0.8}></meter></dd>
          <dt>alarms</dt>
          <dd>${store?.alarms?.length ? store.alarms.map((a) => `${a.alarm} on ${a.memberId}`).join(', ') : 'none'}</dd>
        </dl>
      </div>
      <div>
        <h2>Leader changes</h2>
        <ol class="changes" data-testid="leader-changes" reversed>
          ${[...monitor.leaderChanges].reverse().map(
            (c) => html`<li>${new Date(c.atMs).toLocaleTimeString()} —
              ${c.id === null ? html`<b class="bad">no leader</b>` : html`<b>${c.name}</b>`}
              ${c.term !== undefined ? ` (term ${c.term})` : ''}</li>`,
          )}
        </ol>
        <small>Seen by this page since it opened.</small>
      </div>
    </section>
    <section class="card">
      <h2>Requests, all members</h2>
      <table class="rates" data-testid="rates">
        <thead><tr><th></th><th>requests/s</th><th>p50</th><th>p99</th></tr></thead>
        <tbody>
          ${['read', 'write', 'watch'].map(
            (
              k,
            ) => html`<tr><td>${k === 'watch' ? 'watches' : `${k}s`}</td><td>${formatRate(last?.[k].rate)}</td>
              <td>${formatSeconds(last?.[k].p50)}</td><td>${formatSeconds(last?.[k].p99)}</td></tr>`,
          )}
        </tbody>
      </table>
      <small>A watch's latency is how long its stream stayed open.</small>
      ${
        monitor.points.length === 0
          ? html`<p class="loading" data-testid="charts-waiting">The charts start with the second reading of the members' metrics.</p>`
          : html`<div class="charts">
        <${Chart} title="Requests/s" testid="chart-rate" points=${monitor.points} format=${formatRate}
          series=${['read', 'write', 'watch'].map((k) => ({
            label: k === 'watch' ? 'watches' : `${k}s`,
            color: COLORS[k],
            value: (p) => p[k].rate,
          }))} />
        <${Chart} title="Latency p50 / p99" testid="chart-latency" points=${monitor.points}
          format=${formatSeconds}
          series=${['read', 'write'].flatMap((k) => [
            { label: `${k} p50`, color: COLORS[k], value: (p) => p[k].p50 },
            { label: `${k} p99`, color: `${COLORS[k]}88`, value: (p) => p[k].p99 },
          ])} />
      </div>`
      }
    </section>
  `;
}
