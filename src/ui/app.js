/**
 * The raftkv operators' dashboard: one page, served by every member at /ui,
 * that reads and changes the cluster only through the public HTTP API.
 */
import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { ClusterPanel } from './cluster.js';
import { lazyPanel } from './lazy.js';
import { Api } from './lib/api.js';
import { html } from './lib/html.js';
import { Monitor } from './lib/monitor.js';

// The other tabs load when first opened (lazy.js).
const KeysPanel = lazyPanel(() => import('./keys.js'), 'KeysPanel');
const WatchPanel = lazyPanel(() => import('./watch.js'), 'WatchPanel');
const CoordinationPanel = lazyPanel(() => import('./coordination.js'), 'CoordinationPanel');
const OperationsPanel = lazyPanel(() => import('./operations.js'), 'OperationsPanel');
const LoginForm = lazyPanel(() => import('./login.js'), 'LoginForm');

const TABS = [
  ['cluster', 'Cluster'],
  ['keys', 'Keys'],
  ['watch', 'Watch'],
  ['coordination', 'Coordination'],
  ['operations', 'Operations'],
];

const api = new Api(window.location.origin);
const monitor = new Monitor(api);

// Polling starts before the first render rather than in an effect (preact runs
// effects after a frame): the members' status is what the page is opened for.
// With authentication on, its first answer is a 401, remembered for the login form.
let unauthorizedBeforeMount = false;
api.onUnauthorized = () => {
  unauthorizedBeforeMount = true;
  api.token = undefined;
  monitor.stop();
};
monitor.start();

function tabFromHash() {
  const name = window.location.hash.replace(/^#/, '');
  return TABS.some(([id]) => id === name) ? name : 'cluster';
}

function App() {
  performance.mark('render');
  const [, setTick] = useState(0);
  const [tab, setTab] = useState(tabFromHash());
  const [auth, setAuth] = useState({ checked: false, enabled: false, user: undefined });
  const [needLogin, setNeedLogin] = useState(false);

  useEffect(() => {
    const off = monitor.subscribe(() => setTick((n) => n + 1));
    const onHash = () => setTab(tabFromHash());
    window.addEventListener('hashchange', onHash);
    api.onUnauthorized = () => {
      api.token = undefined;
      monitor.stop();
      setNeedLogin(true);
    };
    if (unauthorizedBeforeMount) setNeedLogin(true);
    // What the monitor learned before this effect ran.
    setTick((n) => n + 1);
    api.call('GET', '/v1/auth/status').then(
      (r) => setAuth({ checked: true, enabled: r.ok && r.body.enabled === true, user: undefined }),
      () => setAuth({ checked: true, enabled: false, user: undefined }),
    );
    return () => {
      off();
      window.removeEventListener('hashchange', onHash);
    };
  }, []);

  const onLogin = (user, token) => {
    api.token = token;
    setAuth({ checked: true, enabled: true, user });
    setNeedLogin(false);
    monitor.start();
  };
  const logout = () => {
    api.token = undefined;
    monitor.stop();
    setAuth({ ...auth, user: undefined });
    setNeedLogin(true);
  };

  const here = monitor.current();
  const banner = monitor.banner;
  return html`
    <header>
      <h1>raftkv</h1>
      <nav>
        ${TABS.map(
          ([id, label]) =>
            html`<a href=${`#${id}`} class=${tab === id ? 'active' : ''} data-tab=${id}>${label}</a>`,
        )}
      </nav>
      <div class="whoami">
        <span data-testid="connected">
          ${here ? html`via <b>${here.name}</b> ${here.url}` : api.base}
        </span>
        ${
          auth.enabled && auth.user
            ? html` · ${auth.user} <button class="link" onClick=${logout}>log out</button>`
            : ''
        }
      </div>
    </header>
    ${
      banner
        ? html`<div class=${`banner ${banner.level}`} role="alert" data-testid="banner">
            ${banner.text}
          </div>`
        : ''
    }
    <main>
      ${
        needLogin
          ? html`<${LoginForm} api=${api} onLogin=${onLogin} />`
          : html`
              ${tab === 'cluster' ? html`<${ClusterPanel} monitor=${monitor} />` : ''}
              ${tab === 'keys' ? html`<${KeysPanel} api=${api} monitor=${monitor} />` : ''}
              ${tab === 'watch' ? html`<${WatchPanel} api=${api} />` : ''}
              ${tab === 'coordination' ? html`<${CoordinationPanel} api=${api} monitor=${monitor} />` : ''}
              ${tab === 'operations' ? html`<${OperationsPanel} api=${api} monitor=${monitor} />` : ''}
            `
      }
    </main>
  `;
}

const root = document.getElementById('root');
root.textContent = '';
render(html`<${App} />`, root);
