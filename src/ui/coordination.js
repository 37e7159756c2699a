/**
 * Coordination: leases (TTL, remaining, keys), registry entries, lock queues
 * (holder, fencing token, waiters) and elections. Read again as soon as the
 * store's revision moves (the monitor's poll of the members' status: every
 * lock, election and registry change is a write), and every few seconds for
 * the leases' time remaining, which moves without a write.
 */
import { useEffect, useRef, useState } from 'preact/hooks';
import { html } from './lib/html.js';

const REFRESH_MS = 3000;
/** Leases whose keys are looked up, per refresh (one request each). */
const LEASE_DETAILS_MAX = 50;

export function CoordinationPanel({ api, monitor }) {
  const [leases, setLeases] = useState(undefined);
  const [registry, setRegistry] = useState(undefined);
  const [locks, setLocks] = useState(undefined);
  const [elections, setElections] = useState(undefined);
  const reload = useRef(() => {});
  const revision = (monitor.leader() ?? monitor.current())?.status?.revision;
  useEffect(() => {
    let gone = false;
    let timer;
    /** One read at a time; a reload asked for during one runs right after it. */
    let loading = false;
    let again = false;
    reload.current = () => {
      if (loading) again = true;
      else {
        clearTimeout(timer);
        load();
      }
    };
    const load = async () => {
      loading = true;
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
        const [r, lk, el] = await Promise.all([
          api.call('GET', '/v1/registry?prefix='),
          api.call('GET', '/v1/locks'),
          api.call('GET', '/v1/elections'),
        ]);
        if (!gone) {
          setLocks(lk.ok ? lk.body.locks : { error: lk.body?.error?.message });
          setElections(el.ok ? el.body.elections : { error: el.body?.error?.message });
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
      loading = false;
      if (gone) return;
      if (again) {
        again = false;
        load();
      } else timer = setTimeout(load, REFRESH_MS);
    };
    load();
    return () => {
      gone = true;
      clearTimeout(timer);
    };
  }, []);
  // A write somewhere: read again now rather than at the next tick.
  const seenRevision = useRef(revision);
  useEffect(() => {
    if (revision === seenRevision.current) return;
    seenRevision.current = revision;
    reload.current();
  }, [revision]);
  return html`
    <section class="card">
      <h2>Locks</h2>
      ${locks?.error ? html`<p class="error">${locks.error}</p>` : ''}
      <table data-testid="locks">
        <thead><tr><th>lock</th><th>holder (lease)</th><th>fencing token</th><th>waiting, in order</th></tr></thead>
        <tbody>${(Array.isArray(locks) ? locks : []).map(
          (
            l,
          ) => html`<tr data-lock=${l.name}><td><b>${l.name}</b></td><td><code>${l.holder.lease}</code></td>
            <td data-field="fencingToken">${l.holder.fencingToken}</td>
            <td>${l.waiters.length === 0 ? 'nobody' : l.waiters.map((w) => html`<code>${w.lease}</code> `)}</td></tr>`,
        )}</tbody>
      </table>
    </section>
    <section class="card">
      <h2>Elections</h2>
      ${elections?.error ? html`<p class="error">${elections.error}</p>` : ''}
      <table data-testid="elections">
        <thead><tr><th>election</th><th>leader's value</th><th>since revision</th><th>candidates</th></tr></thead>
        <tbody>${(Array.isArray(elections) ? elections : []).map(
          (
            e,
          ) => html`<tr data-election=${e.name}><td><b>${e.name}</b></td><td><code>${e.leader.value}</code></td>
            <td>${e.leader.revision}</td><td>${e.candidates.length}</td></tr>`,
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
  `;
}
