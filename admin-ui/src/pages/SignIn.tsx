import { useState, type FormEvent } from 'react';
import { api, cleanBase, saveConnection, storedBase, type Me } from '../api';
import { ErrorNote, Field, useAction } from '../ui';

export function SignIn({ onSignedIn }: { onSignedIn(me: Me): void }) {
  const [key, setKey] = useState('');
  const [base, setBase] = useState(storedBase);
  const { busy, error, run } = useAction();

  function submit(e: FormEvent) {
    e.preventDefault();
    void run(async () => {
      const connection = { base: cleanBase(base), key: key.trim() };
      const me = await api<Me>('/api/me', { connection });
      saveConnection(connection);
      onSignedIn(me);
    });
  }

  return (
    <div className="signin">
      <form onSubmit={submit} className="card">
        <h1>Sign in to Hub</h1>
        <Field label="API key">
          <input
            type="password"
            name="key"
            autoComplete="current-password"
            placeholder="hub_…"
            value={key}
            onChange={(e) => setKey(e.target.value)}
            autoFocus
            required
          />
        </Field>
        <Field
          label="Hub URL"
          hint="Leave empty when this site is served by Hub itself. Another origin must allow this site (CORS)."
        >
          <input
            type="url"
            name="api"
            placeholder={location.origin}
            value={base}
            onChange={(e) => setBase(e.target.value)}
          />
        </Field>
        <ErrorNote error={error} />
        <button type="submit" className="primary" disabled={busy || !key.trim()}>
          {busy ? 'Signing in…' : 'Sign in'}
        </button>
      </form>
    </div>
  );
}
