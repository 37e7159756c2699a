/** The login form (authentication on): the token is kept in memory only, never in storage. */
import { useState } from 'preact/hooks';
import { html } from './lib/html.js';

export function LoginForm({ api, onLogin }) {
  const [name, setName] = useState('');
  const [password, setPassword] = useState('');
  const [error, setError] = useState(undefined);
  const [busy, setBusy] = useState(false);
  const submit = async (e) => {
    e.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      const r = await api.call('POST', '/v1/auth/token', { body: { name, password } });
      if (r.ok) onLogin(name, r.body.token);
      else setError(r.body?.error?.message ?? `HTTP ${r.status}`);
    } catch (err) {
      setError(err.message);
    } finally {
      setBusy(false);
    }
  };
  return html`
    <form class="card login" onSubmit=${submit} data-testid="login">
      <h2>Log in</h2>
      <p>Authentication is on for this cluster.</p>
      <label>User <input name="user" autocomplete="username" value=${name}
        onInput=${(e) => setName(e.target.value)} /></label>
      <label>Password <input name="password" type="password" autocomplete="current-password"
        value=${password} onInput=${(e) => setPassword(e.target.value)} /></label>
      <button type="submit" disabled=${busy}>Log in</button>
      ${error ? html`<p class="error">${error}</p>` : ''}
    </form>
  `;
}
