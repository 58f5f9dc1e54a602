import { useEffect, useState, type FormEvent } from 'react';
import { api, keyConnection, saveKey, signInMethods, SITE, storedBase, type Me, type SignInMethods } from '../api';
import { t } from '../i18n';
import { LanguagePicker } from '../LanguagePicker';
import { ErrorNote, Field, useAction } from '../ui';

/**
 * Where single sign-on comes back to: the page the person was on (a deep
 * link survives the detour), else the start page.
 */
export function returnPath(hash: string): string {
  const route = hash.replace(/^#\/?/, '');
  return route && !route.startsWith('signin') ? `/#/${route}` : '/#/';
}

export function SignIn({ onSignedIn }: { onSignedIn(me: Me): void }) {
  // undefined while asking; null where the site is not served by a Hub (only keys then).
  const [methods, setMethods] = useState<SignInMethods | null | undefined>(undefined);
  useEffect(() => {
    void signInMethods().then(setMethods);
  }, []);
  const appName = methods?.app_name || 'Hub';
  useEffect(() => {
    document.title = `${t('signIn.title')} · ${appName}`;
  }, [appName]);

  const forPeople = !!methods && (methods.oidc || methods.email);
  return (
    <div className="signin">
      <div className="card">
        <div className="card-corner">
          <LanguagePicker />
        </div>
        <h1>{t('signIn.heading', { app: appName })}</h1>
        {methods === undefined && <p className="muted">{t('common.loading')}</p>}
        {methods?.oidc && (
          <a className="button primary sso" href={`/auth/oidc/start?return_to=${encodeURIComponent(returnPath(location.hash))}`}>
            {t('signIn.sso')}
          </a>
        )}
        {methods?.email && <EmailLink />}
        {methods?.signup_open && <p className="muted">{t('signIn.signupOpen')}</p>}
        {methods !== undefined && (
          <details className="key-signin" open={!forPeople}>
            <summary>{t('signIn.withKey')}</summary>
            <KeyForm onSignedIn={onSignedIn} focus={!forPeople} />
          </details>
        )}
      </div>
    </div>
  );
}

/** Asks Hub to email a one-time sign-in link; the answer is the same whether or not the address has an account. */
function EmailLink() {
  const [email, setEmail] = useState('');
  const [sentTo, setSentTo] = useState<string | null>(null);
  const { busy, error, run } = useAction();

  function submit(e: FormEvent) {
    e.preventDefault();
    void run(async () => {
      await api('/auth/email', { connection: SITE, body: { email: email.trim(), return_to: returnPath(location.hash) } });
      setSentTo(email.trim());
    });
  }

  if (sentTo) {
    return (
      <p className="notice" role="status">
        {t('signIn.emailSent', { email: sentTo })}
      </p>
    );
  }
  return (
    <form onSubmit={submit} className="email-signin">
      <Field label={t('signIn.email')}>
        <input type="email" name="email" autoComplete="email" placeholder="you@example.com" value={email} onChange={(e) => setEmail(e.target.value)} required />
      </Field>
      <ErrorNote error={error} />
      <button type="submit" disabled={busy || !email.trim()}>
        {busy ? t('signIn.sending') : t('signIn.emailMe')}
      </button>
    </form>
  );
}

/** For operators and programs: an API key, and which Hub it belongs to. */
function KeyForm({ onSignedIn, focus }: { onSignedIn(me: Me): void; focus: boolean }) {
  const [key, setKey] = useState('');
  const [base, setBase] = useState(storedBase);
  const { busy, error, run } = useAction();

  function submit(e: FormEvent) {
    e.preventDefault();
    void run(async () => {
      const connection = keyConnection(base, key);
      const me = await api<Me>('/api/me', { connection });
      saveKey(connection);
      onSignedIn(me);
    });
  }

  return (
    <form onSubmit={submit}>
      <Field label={t('signIn.apiKey')}>
        <input
          type="password"
          name="key"
          autoComplete="current-password"
          placeholder="hub_…"
          value={key}
          onChange={(e) => setKey(e.target.value)}
          autoFocus={focus}
          required
        />
      </Field>
      <Field
        label={t('signIn.hubUrl')}
        hint={t('signIn.hubUrlHint')}
      >
        <input type="url" name="api" placeholder={location.origin} value={base} onChange={(e) => setBase(e.target.value)} />
      </Field>
      <ErrorNote error={error} />
      <button type="submit" className="primary" disabled={busy || !key.trim()}>
        {busy ? t('signIn.signingIn') : t('signIn.submit')}
      </button>
    </form>
  );
}
