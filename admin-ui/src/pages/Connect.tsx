import { useEffect, useState } from 'react';
import { api, signOut, type Me } from '../api';
import { useRoute } from '../router';
import { ErrorNote, LoadError, useAction, useLoad } from '../ui';

interface ConnectSession {
  status: 'pending' | 'approved' | 'denied';
  created_at: string;
  expires_at: string;
}

interface Decided {
  status: 'approved' | 'denied';
  key?: { id: string; label: string; key_hint: string };
}

/**
 * The app name the CLI put in the address (`aigne hub connect` sends
 * ` AIGNE CLI` with a leading space), as the page names it.
 */
export function appTitle(appName: string | null): string {
  const name = (appName ?? '').trim();
  return !name || name === 'AIGNE CLI' ? 'AIGNE CLI' : `AIGNE CLI (${name})`;
}

/**
 * `#/connect?__token__=…&appName=…`: where `aigne hub connect` sends the
 * person (through /.well-known/service/gen-simple-access-key). Approving
 * mints a key for the signed-in person and hands it to the waiting CLI.
 */
export function Connect({ me }: { me: Me }) {
  const { query } = useRoute();
  const token = query.get('__token__') ?? '';
  const appName = query.get('appName');
  const title = appTitle(appName);
  const session = useLoad(() => api<ConnectSession>('/api/me/connect', { query: { token } }), [token]);
  const [decided, setDecided] = useState<Decided | null>(null);
  const { busy, error, run } = useAction();

  useEffect(() => {
    document.title = `Connect ${title}`;
  }, [title]);

  function decide(approve: boolean) {
    void run(async () => {
      setDecided(await api<Decided>('/api/me/connect', { body: { token, approve, app_name: appName?.trim() || null } }));
    });
  }

  const waiting = session.data?.status === 'pending' && !decided;
  return (
    <div className="signin connect">
      <div className="card">
        <h1>{title} wants an access key</h1>
        {!token && <ErrorNote error="This page needs the link the AIGNE CLI opened; run `aigne hub connect` again." />}
        {token && <LoadError state={session} />}
        {session.data && session.data.status !== 'pending' && !decided && (
          <ErrorNote error={`This request was already ${session.data.status}. Run \`aigne hub connect\` again for a new one.`} />
        )}
        {waiting && (
          <>
            <p>
              Signed in as <strong>{me.user.name}</strong>
              {me.user.email ? ` (${me.user.email})` : ''}. Approving creates an API key for your account, labelled “
              {appName?.trim() || 'AIGNE CLI'}”, and hands it to the AIGNE CLI that opened this page. Calls it makes are billed to you.
            </p>
            <p className="muted">Approve only if you just ran <code>aigne hub connect</code> yourself. You can revoke the key any time under My account.</p>
            <ErrorNote error={error} />
            <div className="actions">
              <button type="button" className="primary" disabled={busy} onClick={() => decide(true)}>
                Approve
              </button>
              <button type="button" disabled={busy} onClick={() => decide(false)}>
                Deny
              </button>
            </div>
            <p className="muted">
              Not you?{' '}
              <button type="button" className="link" onClick={() => void signOut()}>
                Sign in as someone else
              </button>
            </p>
          </>
        )}
        {decided?.status === 'approved' && (
          <p className="notice" role="status">
            Approved: the AIGNE CLI now has a key for your account ({decided.key?.key_hint}). You can close this window.
          </p>
        )}
        {decided?.status === 'denied' && (
          <p className="notice" role="status">
            Denied: the AIGNE CLI gets no key. You can close this window.
          </p>
        )}
      </div>
    </div>
  );
}
