import { useEffect, useState } from 'react';
import { api, signOut, type Me } from '../api';
import { useRoute } from '../router';
import { t } from '../i18n';
import { LanguagePicker } from '../LanguagePicker';
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
    document.title = t('connect.title', { app: title });
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
        <div className="card-corner">
          <LanguagePicker />
        </div>
        <h1>{t('connect.heading', { app: title })}</h1>
        {!token && <ErrorNote error={t('connect.noToken')} />}
        {token && <LoadError state={session} />}
        {session.data && session.data.status !== 'pending' && !decided && (
          <ErrorNote error={t(session.data.status === 'approved' ? 'connect.alreadyApproved' : 'connect.alreadyDenied')} />
        )}
        {waiting && (
          <>
            <p>
              {t('connect.signedInAs', { who: me.user.email ? `${me.user.name} (${me.user.email})` : me.user.name })}{' '}
              {t('connect.explain', { label: appName?.trim() || 'AIGNE CLI' })}
            </p>
            <p className="muted">{t('connect.onlyIf')}</p>
            <ErrorNote error={error} />
            <div className="actions">
              <button type="button" className="primary" disabled={busy} onClick={() => decide(true)}>
                {t('connect.approve')}
              </button>
              <button type="button" disabled={busy} onClick={() => decide(false)}>
                {t('connect.deny')}
              </button>
            </div>
            <p className="muted">
              {t('connect.notYou')}{' '}
              <button type="button" className="link" onClick={() => void signOut()}>
                {t('connect.someoneElse')}
              </button>
            </p>
          </>
        )}
        {decided?.status === 'approved' && (
          <p className="notice" role="status">
            {t('connect.approved', { hint: decided.key?.key_hint ?? '' })}
          </p>
        )}
        {decided?.status === 'denied' && (
          <p className="notice" role="status">
            {t('connect.denied')}
          </p>
        )}
      </div>
    </div>
  );
}
