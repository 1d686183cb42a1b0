import { useEffect, useRef, useState, type FormEvent } from 'react';
import { ApiError } from '../lib/api';
import { useDocumentTitle } from '../lib/hooks';
import { useSession } from '../lib/session-context';

const ENDED: Record<string, string> = {
  'signed-out': 'You signed out. The token was removed from this browser tab.',
  expired: 'Your session expired. Sign in again with a valid admin token.',
  rejected: 'The API no longer accepts your token (it expired or was revoked). Sign in again.',
};

function signInError(error: unknown): string {
  if (error instanceof ApiError) {
    if (error.status === 401) {
      return 'The API refused this token: it is not valid for this installation, has expired, or was revoked.';
    }
    if (error.status === 403) return 'This token is not an admin token. The dashboard needs an admin token.';
    if (error.status === 0) return error.message;
    return `The API could not check the token (${error.status}): ${error.message}`;
  }
  return error instanceof Error ? error.message : String(error);
}

export function SignInPage() {
  const { signIn, ended } = useSession();
  const [token, setToken] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const input = useRef<HTMLTextAreaElement>(null);
  useDocumentTitle('Sign in');

  useEffect(() => input.current?.focus(), []);

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await signIn(token);
    } catch (caught) {
      setError(signInError(caught));
      input.current?.focus();
    } finally {
      setBusy(false);
    }
  };

  return (
    <main className="sign-in" id="main">
      <form className="sign-in-card" onSubmit={submit} noValidate aria-describedby="sign-in-help">
        <div className="brand brand-large">
          <img src="/favicon.svg" alt="" width="36" height="36" />
          <span>CloudLunacy</span>
        </div>
        <h1 tabIndex={-1}>Sign in</h1>
        {ended && !error && (
          <p
            className={`notice ${ended.reason === 'signed-out' ? 'notice-info' : 'notice-warn'}`}
            role="status"
          >
            {ENDED[ended.reason]}
            {ended.message && ended.reason !== 'signed-out' && (
              <span className="muted"> The API said: “{ended.message}”.</span>
            )}
          </p>
        )}
        {error && (
          <p className="notice notice-error" role="alert" id="sign-in-error">
            {error}
          </p>
        )}
        <div className={`field${error ? ' field-invalid' : ''}`}>
          <label htmlFor="token">Admin token</label>
          <textarea
            id="token"
            ref={input}
            name="token"
            rows={4}
            value={token}
            onChange={(event) => setToken(event.target.value)}
            autoComplete="off"
            autoCapitalize="off"
            autoCorrect="off"
            spellCheck={false}
            aria-invalid={error ? true : undefined}
            aria-describedby={error ? 'sign-in-error sign-in-help' : 'sign-in-help'}
            placeholder="eyJhbGciOiJFUzI1NiIs…"
            onKeyDown={(event) => {
              if (event.key === 'Enter' && !event.shiftKey) {
                event.preventDefault();
                event.currentTarget.form?.requestSubmit();
              }
            }}
          />
        </div>
        <p className="hint" id="sign-in-help">
          Create one on the front server with{' '}
          <code>npm run cli -- admin token create --name &lt;you&gt;</code>. The token stays in this browser
          tab only, until it expires or you sign out.
        </p>
        <button type="submit" className="button-primary" disabled={busy}>
          {busy ? 'Checking…' : 'Sign in'}
        </button>
      </form>
    </main>
  );
}
