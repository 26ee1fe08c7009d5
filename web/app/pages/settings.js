// Settings: the credentials this tab sends (never stored beyond the tab, never served by
// the server) and what the connection to the API looks like.
import { html } from 'htm/preact';
import { useState } from 'preact/hooks';
import { auth, connection, setAuth, GRAPHQL_PATH } from '../lib/graphql.js';
import { can, capabilities } from '../lib/api.js';
import { useStore } from '../lib/store.js';
import { useTitle } from '../lib/hooks.js';
import { THEME_MODES, setThemeMode, theme } from '../lib/theme.js';
import { Card } from '../components/ui.js';

/** Who the API takes this tab for, from what it sent and the schema it got back. */
function credentialsLabel(current, caps) {
  const sent = current.adminSecret ? `admin secret set${current.role ? `, role ${current.role}` : ''}` : current.role ? `role ${current.role}, no secret` : 'none sent';
  if (caps.status !== 'ready') return `${sent}; waiting for the API`;
  if (caps.admin) return current.adminSecret ? `${sent}: the API answers as admin` : `${sent}: the API answers as admin (it has no admin secret configured)`;
  return `${sent}: the API answers with a restricted role`;
}

export function SettingsPage() {
  useTitle('Settings');
  const appearance = useStore(theme);
  const current = useStore(auth);
  const conn = useStore(connection);
  const caps = useStore(capabilities);
  const [secret, setSecret] = useState(current.adminSecret);
  const [role, setRole] = useState(current.role);
  const [saved, setSaved] = useState(false);
  const save = (event) => {
    event.preventDefault();
    setAuth({ adminSecret: secret.trim(), role: role.trim() });
    setSaved(true);
  };
  const clear = () => {
    setSecret('');
    setRole('');
    setAuth({ adminSecret: '', role: '' });
    setSaved(false);
  };
  const hidden = caps.status === 'ready' ? ['source_event_payload', 'context_data', 'error_stack'].filter((f) => !can('invocations', f)) : [];
  return html`<div class="page settings">
    <div class="grid-2">
      <${Card} title="Credentials">
        <form class="form" onSubmit=${save} data-auth-form>
          <p class="muted small">The console sends no credential unless you enter one here. Then the API answers as its
            unauthorized role, if the service has one (for example <code>viewer</code>, which cannot read payloads,
            contexts, options, results or stacks). The secret stays in this browser tab (sessionStorage) and is sent
            as <code>x-hasura-admin-secret</code>.</p>
          <label><span>Admin secret</span><input type="password" class="input" autocomplete="off" name="admin-secret" value=${secret} onInput=${(e) => setSecret(e.target.value)} /></label>
          <label><span>Role (optional, sent as <code>x-hasura-role</code>)</span><input type="text" class="input" name="role" placeholder="admin" value=${role} onInput=${(e) => setRole(e.target.value)} /></label>
          <div class="row-actions"><button type="submit" class="btn primary">Use these credentials</button><button type="button" class="btn" onClick=${clear}>Forget</button></div>
          ${saved && !conn.authError ? html`<div class="ok-text small" data-auth-saved>Saved for this tab.</div>` : null}
          ${conn.authError ? html`<div class="form-error">${conn.authError}</div>` : null}
        </form>
      </${Card}>
      <${Card} title="Connection">
        <dl class="meta compact">
          <div><dt>GraphQL</dt><dd class="mono">${location.origin}${GRAPHQL_PATH}</dd></div>
          <div><dt>HTTP</dt><dd>${conn.http === 'ok' ? 'reachable' : conn.http === 'down' ? html`<span class="bad-text">${conn.httpError}</span>` : 'not asked yet'}</dd></div>
          <div><dt>WebSocket</dt><dd>${conn.ws}</dd></div>
          <div><dt>Live updates</dt><dd>${conn.live === 'push' ? 'pushed by live queries' : conn.live === 'poll' ? 'polled every second (the server answers subscriptions once)' : 'starting'}</dd></div>
          <div><dt>Credentials</dt><dd data-credentials=${caps.admin ? 'admin' : 'restricted'}>${credentialsLabel(current, caps)}</dd></div>
          <div><dt>Hidden fields</dt><dd>${hidden.length ? hidden.join(', ') : caps.status === 'ready' ? 'none' : '—'}</dd></div>
        </dl>
      </${Card}>
      <${Card} title="Appearance">
        <div class="form" role="radiogroup" aria-label="Theme">
          ${THEME_MODES.map(
            (mode) => html`<label class="check"><input type="radio" name="theme" value=${mode} checked=${appearance.mode === mode} onChange=${() => setThemeMode(mode)} data-theme-mode=${mode} />
              ${mode === 'system' ? `Follow the system (now ${appearance.theme})` : mode === 'light' ? 'Light' : 'Dark'}</label>`,
          )}
          <p class="muted small">Kept in this browser (localStorage), like the folded sidebar; credentials never are.</p>
        </div>
      </${Card}>
    </div>
  </div>`;
}
