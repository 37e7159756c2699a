/** Watch: a live tail of the changes under a prefix (API.md "Watch", read as a stream). */
import { useEffect, useState } from 'preact/hooks';
import { html } from './lib/html.js';

const TAIL_MAX = 200;

export function WatchPanel({ api }) {
  const [prefix, setPrefix] = useState(undefined);
  const [events, setEvents] = useState([]);
  const [state, setState] = useState('stopped');
  useEffect(() => {
    if (prefix === undefined) return;
    setEvents([]);
    const stop = api.watch(prefix, {
      onChange: (c) =>
        setEvents((old) =>
          [
            ...c.events.map((e) => ({ revision: c.revision, type: e.type, kv: e.kv })).reverse(),
            ...old,
          ].slice(0, TAIL_MAX),
        ),
      onState: (s) => setState(s.text),
    });
    return () => {
      stop();
      setState('stopped');
    };
  }, [prefix]);
  return html`
    <section class="card">
      <h2>Watch</h2>
      <form class="row" onSubmit=${(e) => {
        e.preventDefault();
        setPrefix(e.target.elements.prefix.value);
      }}>
        <input name="prefix" placeholder="prefix (empty: all keys)" data-testid="watch-prefix" />
        <button type="submit" data-testid="watch-start">Watch</button>
        <button type="button" onClick=${() => setPrefix(undefined)}>Stop</button>
        <span data-testid="watch-state">${state}</span>
      </form>
      <table class="tail" data-testid="watch-tail">
        <thead><tr><th>revision</th><th>event</th><th>key</th><th>value</th></tr></thead>
        <tbody>${events.map(
          (
            e,
          ) => html`<tr class=${e.type} data-key=${e.kv.key}><td>${e.revision}</td><td>${e.type}</td>
            <td><code>${e.kv.key}</code></td><td><code>${e.type === 'put' ? e.kv.value : ''}</code></td></tr>`,
        )}</tbody>
      </table>
    </section>
  `;
}
