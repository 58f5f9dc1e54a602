import { describeAgent } from '../agent';
import { api, signInMethods, signOut, type Call, type Identity, type Page, type Session } from '../api';
import { CallTable } from '../calls';
import { CreditsPanel } from '../credits';
import { KeysPanel } from '../keys';
import { NotificationsPanel } from '../notifications';
import { compare } from '../money';
import { formatTime } from '../time';
import { Badge, ErrorNote, LoadError, MoreButton, Stat, useAction, useLoad, useMoney, usePaged, useSession } from '../ui';
import { UsageBlock } from '../usage';

export function Account() {
  const { me } = useSession();
  const money = useMoney();
  const calls = usePaged((cursor) => api<Page<Call>>('/api/me/calls', { query: { cursor } }), []);
  const models = useLoad(() => api<{ data: { id: string }[] }>('/v1/models').then((r) => r.data.map((m) => m.id)), []);
  const email = me.user.email && me.user.email !== me.user.name ? me.user.email : null;

  return (
    <>
      <div className="toolbar">
        <h1>My account</h1>
        {me.payment_link && (
          <a className="button primary" href={me.payment_link} target="_blank" rel="noreferrer">
            Buy credits
          </a>
        )}
      </div>
      <p className="muted" data-testid="who">
        {me.user.name}
        {email && ` · ${email}`} · {me.role} · {me.key ? `signed in with key ${me.key.label}` : 'signed in with this browser'}
      </p>
      <div className="stats">
        <Stat label="Balance" value={<span data-testid="my-balance">{money(me.balance)}</span>} sub={<ExpiringSoon />} />
        <Stat label="On hold" value={money(me.held)} sub="reserved by calls in flight" />
        <Stat label="Available" value={money(me.available)} sub={me.billing_enabled ? undefined : 'billing is off: calls are not charged'} />
      </div>
      <CreditsPanel />
      <NotificationsPanel />
      <UsageBlock path="/api/me/usage" title="My usage" lists={[{ group: 'model', title: 'Models' }, { group: 'app', title: 'Apps' }]} />
      <section>
        <h2>My calls</h2>
        <CallTable calls={calls.items} />
        <MoreButton list={calls} />
      </section>
      <KeysPanel path="/api/me/keys" revokeBase="/api/me/keys" models={models.data ?? []} />
      <Identities />
      <Sessions />
    </>
  );
}

/** The credit that expires within the next days (see "Expiring credits" below); nothing when none does. */
function ExpiringSoon() {
  const { me } = useSession();
  const money = useMoney();
  const e = me.expiring;
  if (!e || compare(e.amount, '0') <= 0) return null;
  return (
    <span data-testid="expiring-soon">
      {money(e.amount)} expires within {e.within_days} days
    </span>
  );
}

const METHOD_NAMES: Record<string, string> = { oidc: 'Single sign-on', email: 'Email link' };

function issuerHost(issuer: string): string {
  try {
    return new URL(issuer).host;
  } catch {
    return issuer;
  }
}

/** The ways this person signs in, and linking another provider identity (which needs a session). */
function Identities() {
  const { me } = useSession();
  const identities = useLoad(() => api<{ data: Identity[] }>('/api/me/identities').then((r) => r.data), []);
  const methods = useLoad(signInMethods, []);
  const action = useAction();
  const canLink = !!me.session && !!methods.data?.oidc;

  function unlink(i: Identity) {
    const what = `${METHOD_NAMES[i.method] ?? i.method}${i.email ? ` as ${i.email}` : ''}`;
    if (!confirm(`Unlink ${what}? You will no longer sign in this way.`)) return;
    void action.run(async () => {
      await api(`/api/me/identities/${encodeURIComponent(i.id)}`, { method: 'DELETE' });
      identities.reload();
    });
  }

  return (
    <section>
      <div className="toolbar">
        <h2>Sign-in methods</h2>
        {canLink && (
          <a className="button" href={`/auth/oidc/start?link=1&return_to=${encodeURIComponent('/#/account')}`}>
            Link another sign-in
          </a>
        )}
      </div>
      <LoadError state={identities} />
      <ErrorNote error={action.error} />
      {identities.data && (
        <table data-testid="identities">
          <thead>
            <tr>
              <th>Method</th>
              <th>Email</th>
              <th>Provider</th>
              <th>Linked</th>
              <th>Last used</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {identities.data.length === 0 && (
              <tr>
                <td colSpan={6} className="muted">
                  None: {me.key ? 'this account signs in with API keys only.' : 'sign in again to link one.'}
                </td>
              </tr>
            )}
            {identities.data.map((i) => (
              <tr key={i.id} data-identity={i.id}>
                <td>{METHOD_NAMES[i.method] ?? i.method}</td>
                <td>{i.email ?? '—'}</td>
                <td>{i.method === 'oidc' ? issuerHost(i.issuer) : '—'}</td>
                <td>{formatTime(i.created_at)}</td>
                <td>{formatTime(i.last_used_at)}</td>
                <td className="actions">
                  <button type="button" className="danger" onClick={() => unlink(i)} disabled={action.busy}>
                    Unlink
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}

/** The browsers signed in to this account; ending one signs that browser out. */
function Sessions() {
  const sessions = useLoad(() => api<{ data: Session[] }>('/api/me/sessions').then((r) => r.data), []);
  const action = useAction();

  function end(s: Session) {
    if (s.current) {
      if (confirm('Sign this browser out?')) void signOut();
      return;
    }
    if (!confirm(`End the session of ${describeAgent(s.user_agent)}? That browser is signed out.`)) return;
    void action.run(async () => {
      await api(`/api/me/sessions/${encodeURIComponent(s.id)}`, { method: 'DELETE' });
      sessions.reload();
    });
  }

  return (
    <section>
      <h2>Sessions</h2>
      <LoadError state={sessions} />
      <ErrorNote error={action.error} />
      {sessions.data && (
        <table data-testid="sessions">
          <thead>
            <tr>
              <th>Browser</th>
              <th>Signed in with</th>
              <th>Started</th>
              <th>Last active</th>
              <th>Ends unless used</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {sessions.data.length === 0 && (
              <tr>
                <td colSpan={6} className="muted">
                  No browser is signed in to this account.
                </td>
              </tr>
            )}
            {sessions.data.map((s) => (
              <tr key={s.id} data-session={s.id} className={s.current ? 'current' : undefined}>
                <td title={s.user_agent ?? undefined}>
                  {describeAgent(s.user_agent)} {s.current && <Badge tone="ok">this browser</Badge>}
                </td>
                <td>{METHOD_NAMES[s.method] ?? s.method}</td>
                <td>{formatTime(s.created_at)}</td>
                <td>{formatTime(s.last_seen_at)}</td>
                <td>{formatTime(s.expires_at)}</td>
                <td className="actions">
                  <button type="button" className="danger" onClick={() => end(s)} disabled={action.busy}>
                    {s.current ? 'Sign out' : 'End'}
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}
