/** Operations: move leadership, add/promote/remove members, take a backup; each asks first. */
import { useState } from 'preact/hooks';
import { Confirm } from './confirm.js';
import { html } from './lib/html.js';

export function OperationsPanel({ api, monitor }) {
  const [pending, setPending] = useState(undefined); // {text, run}
  const [result, setResult] = useState(undefined);
  const [form, setForm] = useState({ name: '', peerUrl: '', clientUrl: '', learner: true });

  const ask = (text, run) => setPending({ text, run });
  const doIt = async () => {
    const { run, text } = pending;
    setPending(undefined);
    setResult({ ok: true, text: `${text} …` });
    try {
      const r = await run();
      setResult(
        r.ok
          ? { ok: true, text: `done: ${text}` }
          : { ok: false, text: r.body?.error?.message ?? `HTTP ${r.status}` },
      );
    } catch (err) {
      setResult({ ok: false, text: err.message });
    }
  };
  const backup = async () => {
    const res = await api.blob('/v1/snapshot');
    if (!res.ok)
      return { ok: false, status: res.status, body: await res.json().catch(() => undefined) };
    const blob = await res.blob();
    const name =
      /filename="([^"]+)"/.exec(res.headers.get('content-disposition') ?? '')?.[1] ?? 'raftkv.snap';
    const a = document.createElement('a');
    a.href = URL.createObjectURL(blob);
    a.download = name;
    a.click();
    setTimeout(() => URL.revokeObjectURL(a.href), 10_000);
    return { ok: true };
  };
  const leaderId = monitor.leaderId;
  return html`
    <section class="card">
      <h2>Members</h2>
      <table data-testid="ops-members">
        <thead><tr><th>member</th><th>role</th><th></th></tr></thead>
        <tbody>${monitor.members.map(
          (m) => html`<tr data-member=${m.name}>
            <td><b>${m.name}</b> <code>${m.id}</code></td>
            <td>${m.id === leaderId ? 'leader' : m.voter ? 'voter' : 'learner'}</td>
            <td>
              ${
                m.voter && m.id !== leaderId
                  ? html`<button onClick=${() =>
                      ask(`Move leadership to ${m.name}`, () =>
                        api.call('POST', '/v1/cluster/leader', {
                          body: { to: m.id },
                          timeoutMs: 15000,
                        }),
                      )}>Make leader</button>`
                  : ''
              }
              ${
                !m.voter
                  ? html`<button onClick=${() =>
                      ask(`Promote ${m.name} to voter`, () =>
                        api.call('POST', `/v1/cluster/members/${m.id}/promote`, {
                          timeoutMs: 15000,
                        }),
                      )}>Promote</button>`
                  : ''
              }
              <button class="danger" onClick=${() =>
                ask(`Remove ${m.name} from the cluster`, () =>
                  api.call('DELETE', `/v1/cluster/members/${m.id}`, { timeoutMs: 15000 }),
                )}>Remove</button>
            </td>
          </tr>`,
        )}</tbody>
      </table>
      <div class="row">
        <button onClick=${() =>
          ask('Move leadership to another member', () =>
            api.call('POST', '/v1/cluster/leader', { timeoutMs: 15000 }),
          )}>Move leadership</button>
        <button onClick=${() => ask('Take a backup (download a snapshot)', backup)} data-testid="backup">Take a backup</button>
      </div>
    </section>
    <section class="card">
      <h2>Add a member</h2>
      <form class="addmember" onSubmit=${(e) => {
        e.preventDefault();
        ask(`Add ${form.name} (${form.peerUrl})${form.learner ? ' as a learner' : ''}`, () =>
          api.call('POST', '/v1/cluster/members', { body: form, timeoutMs: 15000 }),
        );
      }}>
        ${['name', 'peerUrl', 'clientUrl'].map(
          (f) => html`<label>${f} <input name=${f} value=${form[f]} required
            onInput=${(e) => setForm({ ...form, [f]: e.target.value })} /></label>`,
        )}
        <label><input type="checkbox" checked=${form.learner}
          onChange=${(e) => setForm({ ...form, learner: e.target.checked })} /> as a learner (promote it once caught up)</label>
        <button type="submit">Add member</button>
      </form>
      <small>Start the new member with <code>--join</code> first (README "Adding and removing members").</small>
    </section>
    ${pending ? html`<${Confirm} text=${`${pending.text}?`} onYes=${doIt} onNo=${() => setPending(undefined)} />` : ''}
    ${result ? html`<p class=${`card ${result.ok ? 'ok' : 'error'}`} data-testid="ops-result">${result.text}</p>` : ''}
  `;
}
