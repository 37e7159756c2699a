/**
 * Keys: a browser by prefix (one page at a time, `after` continues), a key's
 * value, metadata and history of revisions, and put/delete with
 * compare-and-swap. A watch of the prefix keeps the listing current.
 */
import { useEffect, useRef, useState } from 'preact/hooks';
import { Confirm } from './confirm.js';
import { keyPath, prefixCrumbs } from './lib/format.js';
import { html } from './lib/html.js';

const PAGE = 50;
const HISTORY_MAX = 20;

export function KeysPanel({ api }) {
  const [prefix, setPrefix] = useState('');
  // What is typed, kept apart: the page re-renders every second and must not undo typing.
  const [draft, setDraft] = useState('');
  const [pages, setPages] = useState(['']); // `after` of each page seen, for going back
  const [listing, setListing] = useState(undefined);
  const [selected, setSelected] = useState(undefined);
  const [live, setLive] = useState('');
  const [refresh, setRefresh] = useState(0);
  const after = pages[pages.length - 1];

  useEffect(() => {
    let gone = false;
    const q = new URLSearchParams({ prefix, limit: String(PAGE), keysOnly: 'true' });
    if (after !== '') q.set('after', after);
    api.call('GET', `/v1/kv?${q}`).then(
      (r) => !gone && setListing(r.ok ? r.body : { error: r.body?.error?.message }),
      (err) => !gone && setListing({ error: err.message }),
    );
    return () => {
      gone = true;
    };
  }, [prefix, after, refresh]);

  // Live: a key created or deleted under the prefix refreshes the listing; a change to the
  // open key refreshes it. Coalesced, so a busy prefix costs a few requests a second at most.
  const timer = useRef(undefined);
  const [detailRefresh, setDetailRefresh] = useState(0);
  const open = useRef(undefined);
  open.current = selected;
  useEffect(() => {
    const stop = api.watch(prefix, {
      onChange: (change) => {
        const created = change.events.some((e) => e.type === 'delete' || e.kv.version === 1);
        const touched = change.events.some((e) => e.kv.key === open.current);
        if (!created && !touched) return;
        clearTimeout(timer.current);
        timer.current = setTimeout(() => {
          if (created) setRefresh((n) => n + 1);
          if (touched) setDetailRefresh((n) => n + 1);
        }, 250);
      },
      onState: (s) => setLive(s.live ? 'live' : s.text),
    });
    return () => {
      stop();
      clearTimeout(timer.current);
    };
  }, [prefix]);

  const go = (p) => {
    setPrefix(p);
    setDraft(p);
    setPages(['']);
  };
  const folders = new Set();
  const keys = [];
  for (const kv of listing?.kvs ?? []) {
    const rest = kv.key.slice(prefix.length);
    const slash = rest.indexOf('/');
    if (slash >= 0 && slash < rest.length - 1) folders.add(prefix + rest.slice(0, slash + 1));
    else keys.push(kv.key);
  }
  return html`
    <section class="card grid2 keys">
      <div>
        <h2>Keys</h2>
        <form class="row" onSubmit=${(e) => {
          e.preventDefault();
          go(draft);
        }}>
          <input
            name="prefix"
            placeholder="prefix (empty: all keys)"
            value=${draft}
            onInput=${(e) => setDraft(e.target.value)}
            data-testid="prefix"
          />
          <button type="submit">List</button>
          <span class=${`live ${live === 'live' ? 'on' : ''}`} title=${live}>● ${live === 'live' ? 'live' : 'not live'}</span>
        </form>
        <div class="crumbs" data-testid="crumbs">
          <a href="#keys" onClick=${(e) => {
            e.preventDefault();
            go('');
          }}>(all)</a>
          ${prefixCrumbs(prefix).map(
            ([p, label]) =>
              html` / <a href="#keys" onClick=${(e) => {
                e.preventDefault();
                go(p);
              }}>${label}</a>`,
          )}
        </div>
        ${listing?.error ? html`<p class="error">${listing.error}</p>` : ''}
        <ul class="keylist" data-testid="keylist">
          ${[...folders].map(
            (f) =>
              html`<li class="folder"><a href="#keys" onClick=${(e) => {
                e.preventDefault();
                go(f);
              }}>📁 ${f.slice(prefix.length)}</a></li>`,
          )}
          ${keys.map(
            (k) => html`<li class=${k === selected ? 'selected' : ''}><a href="#keys" data-key=${k}
              onClick=${(e) => {
                e.preventDefault();
                setSelected(k);
              }}>${k.slice(prefix.length) || k}</a></li>`,
          )}
        </ul>
        <div class="row">
          <button disabled=${pages.length <= 1} onClick=${() => setPages(pages.slice(0, -1))}>‹ previous</button>
          <span>page ${pages.length}${listing ? ` · revision ${listing.revision}` : ''}</span>
          <button disabled=${!listing?.more} onClick=${() =>
            setPages([...pages, listing.kvs[listing.kvs.length - 1].key])}>next ›</button>
        </div>
      </div>
      <div>
        <${KeyDetail} api=${api} keyName=${selected} refresh=${refresh + detailRefresh} />
        <${PutForm} api=${api} keyName=${selected} onDone=${(k) => {
          setSelected(k);
          setRefresh((n) => n + 1);
        }} />
      </div>
    </section>
  `;
}

function KeyDetail({ api, keyName, refresh }) {
  const [state, setState] = useState(undefined);
  useEffect(() => {
    if (keyName === undefined) return;
    let gone = false;
    (async () => {
      const r = await api.call('GET', `/v1/kv/${keyPath(keyName)}`);
      if (!r.ok) return !gone && setState({ error: r.body?.error?.message ?? `HTTP ${r.status}` });
      const kv = r.body.kv;
      const history = [kv];
      let note = '';
      // Each older version is the key as it was just before the next one's modRevision.
      let at = kv;
      while (history.length < HISTORY_MAX && at.version > 1) {
        const h = await api.call(
          'GET',
          `/v1/kv/${keyPath(keyName)}?revision=${at.modRevision - 1}`,
        );
        if (h.status === 410) {
          note = 'older revisions were compacted';
          break;
        }
        if (!h.ok) break;
        at = h.body.kv;
        history.push(at);
      }
      if (!gone) setState({ kv, history, note });
    })().catch((err) => !gone && setState({ error: err.message }));
    return () => {
      gone = true;
    };
  }, [keyName, refresh]);
  if (keyName === undefined) return html`<p class="muted">Select a key to see it.</p>`;
  if (state?.error) return html`<h3>${keyName}</h3><p class="error">${state.error}</p>`;
  const kv = state?.kv;
  return html`
    <div data-testid="key-detail">
      <h3><code>${keyName}</code></h3>
      ${
        kv
          ? html`
        <pre class="value" data-testid="key-value">${kv.value}</pre>
        <dl class="meta">
          <dt>modRevision</dt><dd data-field="modRevision">${kv.modRevision}</dd>
          <dt>createRevision</dt><dd>${kv.createRevision}</dd>
          <dt>version</dt><dd>${kv.version}</dd>
          <dt>lease</dt><dd>${kv.lease ?? 'none'}</dd>
        </dl>
        <h4>History</h4>
        <table class="history" data-testid="history">
          <thead><tr><th>modRevision</th><th>version</th><th>value</th></tr></thead>
          <tbody>${state.history.map(
            (h) =>
              html`<tr><td>${h.modRevision}</td><td>${h.version}</td><td><code>${h.value}</code></td></tr>`,
          )}</tbody>
        </table>
        ${state.note ? html`<small>${state.note}</small>` : ''}
      `
          : html`<p class="muted">loading…</p>`
      }
    </div>
  `;
}

/** Put or delete, with an optional guard (API.md compare-and-swap). */
function PutForm({ api, keyName, onDone }) {
  const [key, setKey] = useState('');
  const [value, setValue] = useState('');
  const [lease, setLease] = useState('');
  const [guard, setGuard] = useState('none');
  const [guardValue, setGuardValue] = useState('');
  const [result, setResult] = useState(undefined);
  const [confirming, setConfirming] = useState(false);
  useEffect(() => {
    if (keyName !== undefined) setKey(keyName);
  }, [keyName]);

  const report = (r, what) => {
    if (r.ok) setResult({ ok: true, text: `${what} at revision ${r.body.revision}` });
    else if (r.body?.error?.code === 'compare_failed')
      setResult({
        ok: false,
        text: `compare failed: the key is now ${r.body.kv ? `modRevision ${r.body.kv.modRevision}, value "${r.body.kv.value}"` : 'missing'}`,
      });
    else setResult({ ok: false, text: r.body?.error?.message ?? `HTTP ${r.status}` });
  };
  const put = async (e) => {
    e.preventDefault();
    const body = { value };
    if (lease !== '') body.lease = lease;
    if (guard === 'revision') body.prevRevision = Number(guardValue);
    if (guard === 'absent') body.prevRevision = 0;
    if (guard === 'value') body.prevValue = guardValue;
    try {
      const r = await api.call('PUT', `/v1/kv/${keyPath(key)}`, { body });
      report(r, `put ${key}`);
      if (r.ok) onDone(key);
    } catch (err) {
      setResult({ ok: false, text: err.message });
    }
  };
  const del = async () => {
    setConfirming(false);
    const q = guard === 'revision' ? `?prevRevision=${Number(guardValue)}` : '';
    try {
      const r = await api.call('DELETE', `/v1/kv/${keyPath(key)}${q}`);
      report(r, `deleted ${r.body?.deleted ?? 0} key(s)`);
      if (r.ok) onDone(undefined);
    } catch (err) {
      setResult({ ok: false, text: err.message });
    }
  };
  return html`
    <form class="putform" onSubmit=${put} data-testid="put-form">
      <h4>Put / delete</h4>
      <label>key <input name="key" value=${key} onInput=${(e) => setKey(e.target.value)} required /></label>
      <label>value <textarea name="value" value=${value} onInput=${(e) => setValue(e.target.value)}></textarea></label>
      <label>lease <input name="lease" value=${lease} placeholder="none" onInput=${(e) => setLease(e.target.value)} /></label>
      <label>only if
        <select name="guard" value=${guard} onChange=${(e) => setGuard(e.target.value)}>
          <option value="none">always</option>
          <option value="revision">modRevision is</option>
          <option value="absent">the key does not exist</option>
          <option value="value">the value is</option>
        </select>
        ${
          guard === 'revision' || guard === 'value'
            ? html`<input name="guardValue" value=${guardValue}
          onInput=${(e) => setGuardValue(e.target.value)} />`
            : ''
        }
      </label>
      <div class="row">
        <button type="submit" data-testid="put">Put</button>
        <button type="button" class="danger" onClick=${() => setConfirming(true)}
          disabled=${key === '' || guard === 'absent' || guard === 'value'}>Delete</button>
      </div>
      ${
        confirming
          ? html`<${Confirm} text=${`Delete ${key}${guard === 'revision' ? ` if its modRevision is ${guardValue}` : ''}?`}
        onYes=${del} onNo=${() => setConfirming(false)} />`
          : ''
      }
      ${result ? html`<p class=${result.ok ? 'ok' : 'error'} data-testid="put-result">${result.text}</p>` : ''}
    </form>
  `;
}
