/** Coordination: leases (TTL, remaining, keys) and registry entries, refreshed every few seconds. */
import { useEffect, useState } from 'preact/hooks';
import { html } from './lib/html.js';

const REFRESH_MS = 3000;
/** Leases whose keys are looked up, per refresh (one request each). */
const LEASE_DETAILS_MAX = 50;

export function CoordinationPanel({ api }) {
  const [leases, setLeases] = useState(undefined);
  const [registry, setRegistry] = useState(undefined);
  const [election, setElection] = useState({ name: '', result: undefined });
  useEffect(() => {
    let gone = false;
    let timer;
    const load = async () => {
      try {
        const l = await api.call('GET', '/v1/leases');
        const list = l.ok ? l.body.leases : [];
        const details = await Promise.all(
          list.slice(0, LEASE_DETAILS_MAX).map((x) =>
            api.call('GET', `/v1/leases/${encodeURIComponent(x.id)}`).then(
              (r) => (r.ok ? r.body : x),
              () => x,
            ),
          ),
        );
        const r = await api.call('GET', '/v1/registry?prefix=');
        if (!gone) {
          setLeases(
            l.ok
              ? [...details, ...list.slice(LEASE_DETAILS_MAX)]
              : { error: l.body?.error?.message },
          );
          setRegistry(r.ok ? r.body.entries : { error: r.body?.error?.message });
        }
      } catch (err) {
        if (!gone) setLeases({ error: err.message });
      }
      if (!gone) timer = setTimeout(load, REFRESH_MS);
    };
    load();
    return () => {
      gone = true;
      clearTimeout(timer);
    };
  }, []);
  const lookUp = async (e) => {
    e.preventDefault();
    const name = e.target.elements.election.value;
    const r = await api.call('GET', `/v1/elections/${encodeURIComponent(name)}`);
    setElection({
      name,
      result: r.ok ? r.body.leader : (r.body?.error?.code ?? `HTTP ${r.status}`),
    });
  };
  return html`
    <section class="card">
      <h2>Leases</h2>
      ${leases?.error ? html`<p class="error">${leases.error}</p>` : ''}
      <table data-testid="leases">
        <thead><tr><th>id</th><th>TTL</th><th>remaining</th><th>keys</th></tr></thead>
        <tbody>${(Array.isArray(leases) ? leases : []).map(
          (l) => html`<tr><td><code>${l.id}</code></td><td>${l.ttl} s</td><td>${l.remaining} s</td>
            <td>${l.keys ? l.keys.map((k) => html`<code>${k}</code> `) : '…'}</td></tr>`,
        )}</tbody>
      </table>
    </section>
    <section class="card">
      <h2>Registry</h2>
      <table data-testid="registry">
        <thead><tr><th>name</th><th>value</th><th>lease</th><th>since revision</th></tr></thead>
        <tbody>${(Array.isArray(registry) ? registry : []).map(
          (r) => html`<tr><td><b>${r.name}</b></td><td><code>${r.value}</code></td>
            <td><code>${r.lease}</code></td><td>${r.createRevision}</td></tr>`,
        )}</tbody>
      </table>
    </section>
    <section class="card">
      <h2>Elections</h2>
      <form class="row" onSubmit=${lookUp}>
        <input name="election" placeholder="election name" />
        <button type="submit">Who leads?</button>
      </form>
      ${
        election.result === undefined
          ? ''
          : typeof election.result === 'string'
            ? html`<p>${election.name}: <b>${election.result}</b></p>`
            : html`<p data-testid="election-leader">${election.name}: led by <code>${election.result.key}</code>
            with value <code>${election.result.value}</code> since revision ${election.result.revision}</p>`
      }
    </section>
  `;
}
