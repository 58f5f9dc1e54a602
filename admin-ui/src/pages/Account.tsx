import { describeAgent } from '../agent';
import { api, signInMethods, signOut, type Call, type Identity, type Page, type Session } from '../api';
import { CallTable } from '../calls';
import { CreditsPanel } from '../credits';
import { t, tn, type MessageKey } from '../i18n';
import { KeysPanel } from '../keys';
import { NotificationsPanel } from '../notifications';
import { compare } from '../money';
import { formatTime } from '../time';
import { Badge, ErrorNote, LoadError, MoreButton, ROLE_NAMES, Stat, useAction, useLoad, useMoney, usePaged, useSession } from '../ui';
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
        <h1>{t('nav.account')}</h1>
        {me.payment_link && (
          <a className="button primary" href={me.payment_link} target="_blank" rel="noreferrer">
            {t('shop.buy')}
          </a>
        )}
      </div>
      <p className="muted" data-testid="who">
        {me.user.name}
        {email && ` · ${email}`} · {t(ROLE_NAMES[me.role])} · {me.key ? t('account.withKey', { label: me.key.label }) : t('account.withBrowser')}
      </p>
      <div className="stats">
        <Stat label={t('account.balance')} value={<span data-testid="my-balance">{money(me.balance)}</span>} sub={<ExpiringSoon />} />
        <Stat label={t('account.onHold')} value={money(me.held)} sub={t('account.onHoldSub')} />
        <Stat label={t('account.available')} value={money(me.available)} sub={me.billing_enabled ? undefined : t('account.billingOff')} />
      </div>
      <CreditsPanel />
      <NotificationsPanel />
      <UsageBlock
        path="/api/me/usage"
        title={t('usage.mine')}
        lists={[
          { group: 'model', title: t('usage.models') },
          { group: 'app', title: t('usage.apps') },
        ]}
      />
      <section>
        <h2>{t('account.myCalls')}</h2>
        <CallTable calls={calls.items} />
        <MoreButton list={calls} />
      </section>
      <KeysPanel path="/api/me/keys" revokeBase="/api/me/keys" models={models.data ?? []} teams={me.teams} />
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
      {tn('account.expiringSoon', e.within_days, { amount: money(e.amount) })}
    </span>
  );
}

const METHOD_NAMES: Record<string, MessageKey> = { oidc: 'account.method.oidc', email: 'account.method.email' };
const methodName = (method: string) => (METHOD_NAMES[method] ? t(METHOD_NAMES[method]) : method);

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
    const what = i.email ? t('account.methodAs', { method: methodName(i.method), email: i.email }) : methodName(i.method);
    if (!confirm(t('account.confirmUnlink', { what }))) return;
    void action.run(async () => {
      await api(`/api/me/identities/${encodeURIComponent(i.id)}`, { method: 'DELETE' });
      identities.reload();
    });
  }

  return (
    <section>
      <div className="toolbar">
        <h2>{t('account.methods')}</h2>
        {canLink && (
          <a className="button" href={`/auth/oidc/start?link=1&return_to=${encodeURIComponent('/#/account')}`}>
            {t('account.link')}
          </a>
        )}
      </div>
      <LoadError state={identities} />
      <ErrorNote error={action.error} />
      {identities.data && (
        <table data-testid="identities">
          <thead>
            <tr>
              <th>{t('account.method')}</th>
              <th>{t('signIn.email')}</th>
              <th>{t('call.provider')}</th>
              <th>{t('account.linked')}</th>
              <th>{t('account.lastUsed')}</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {identities.data.length === 0 && (
              <tr>
                <td colSpan={6} className="muted">
                  {me.key ? t('account.noMethodsKey') : t('account.noMethods')}
                </td>
              </tr>
            )}
            {identities.data.map((i) => (
              <tr key={i.id} data-identity={i.id}>
                <td>{methodName(i.method)}</td>
                <td>{i.email ?? '—'}</td>
                <td>{i.method === 'oidc' ? issuerHost(i.issuer) : '—'}</td>
                <td>{formatTime(i.created_at)}</td>
                <td>{formatTime(i.last_used_at)}</td>
                <td className="actions">
                  <button type="button" className="danger" onClick={() => unlink(i)} disabled={action.busy}>
                    {t('account.unlink')}
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
      if (confirm(t('account.confirmSignOut'))) void signOut();
      return;
    }
    if (!confirm(t('account.confirmEnd', { browser: describeAgent(s.user_agent) }))) return;
    void action.run(async () => {
      await api(`/api/me/sessions/${encodeURIComponent(s.id)}`, { method: 'DELETE' });
      sessions.reload();
    });
  }

  return (
    <section>
      <h2>{t('account.sessions')}</h2>
      <LoadError state={sessions} />
      <ErrorNote error={action.error} />
      {sessions.data && (
        <table data-testid="sessions">
          <thead>
            <tr>
              <th>{t('account.browser')}</th>
              <th>{t('account.signedInWith')}</th>
              <th>{t('payment.started')}</th>
              <th>{t('account.lastActive')}</th>
              <th>{t('account.endsUnlessUsed')}</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {sessions.data.length === 0 && (
              <tr>
                <td colSpan={6} className="muted">
                  {t('account.noSessions')}
                </td>
              </tr>
            )}
            {sessions.data.map((s) => (
              <tr key={s.id} data-session={s.id} className={s.current ? 'current' : undefined}>
                <td title={s.user_agent ?? undefined}>
                  {describeAgent(s.user_agent)} {s.current && <Badge tone="ok">{t('account.thisBrowser')}</Badge>}
                </td>
                <td>{methodName(s.method)}</td>
                <td>{formatTime(s.created_at)}</td>
                <td>{formatTime(s.last_seen_at)}</td>
                <td>{formatTime(s.expires_at)}</td>
                <td className="actions">
                  <button type="button" className="danger" onClick={() => end(s)} disabled={action.busy}>
                    {s.current ? t('nav.signOut') : t('account.end')}
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
