/** Sign in with a pasted token; it is checked with GET /v1/whoami before it is kept (in sessionStorage). */
import { useState } from 'preact/hooks';
import { call } from '../api';
import { ErrorLine } from '../components';
import { storeToken } from '../session';

export function SignIn({ onSignedIn }: { onSignedIn: () => void }) {
  const [token, setToken] = useState('');
  const [error, setError] = useState<unknown>();
  const [busy, setBusy] = useState(false);
  const submit = async (event: Event) => {
    event.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      await call('GET', '/v1/whoami', { token: token.trim() });
      storeToken(token.trim());
      setToken('');
      onSignedIn();
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };
  return (
    <main id="main" class="sign-in">
      <h1>lockbox console</h1>
      <form onSubmit={submit} class="card">
        <label for="token">API token</label>
        <input
          id="token"
          name="token"
          type="password"
          autoComplete="off"
          spellcheck={false}
          required
          placeholder="lbx_…"
          value={token}
          onInput={(e) => setToken(e.currentTarget.value)}
          aria-describedby="token-help"
        />
        <p id="token-help" class="help">
          Paste a token (lockbox token create, or the bootstrap token in the data dir). It is kept in this tab only and sent as a header, never in a URL.
        </p>
        <ErrorLine error={error} />
        <button type="submit" disabled={busy || !token.trim()}>
          Sign in
        </button>
      </form>
    </main>
  );
}
