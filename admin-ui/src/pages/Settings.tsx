import { useState, type FormEvent, type ReactNode } from 'react';
import { api, type Settings as SettingsShape } from '../api';
import { t } from '../i18n';
import { callbackUrl, changes, draftOf, NO_SECRETS, stripeWebhookUrl, type Draft, type SwitchKey, type TextKey } from '../settings';
import { Badge, ErrorNote, Field, LoadError, Toggle, useAction, useLoad, useSession } from '../ui';

export function Settings() {
  const settings = useLoad(() => api<SettingsShape>('/api/admin/settings'), []);
  return (
    <>
      <h1>{t('nav.settings')}</h1>
      <LoadError state={settings} />
      {settings.data && <SettingsForm initial={settings.data} onSaved={settings.reload} />}
    </>
  );
}

function SettingsForm({ initial, onSaved }: { initial: SettingsShape; onSaved(): void }) {
  const session = useSession();
  const [draft, setDraft] = useState(() => draftOf(initial));
  const [saved, setSaved] = useState(false);
  const { busy, error, run } = useAction();
  const body = changes(draft, initial);
  const changed = Object.keys(body).length;
  const edit = (patch: Partial<Draft>) => {
    setSaved(false);
    setDraft({ ...draft, ...patch });
  };
  const text = (k: TextKey) => ({ name: k, value: draft[k], onChange: (e: { target: { value: string } }) => edit({ [k]: e.target.value }) });
  const toggle = (k: SwitchKey, label: string) => <Toggle label={label} checked={draft[k]} onChange={(v) => edit({ [k]: v })} />;

  function submit(e: FormEvent) {
    e.preventDefault();
    void run(async () => {
      await api('/api/admin/settings', { method: 'PATCH', body });
      // Stored sealed and never shown back: the fields go empty again.
      setDraft((d) => ({ ...d, ...NO_SECRETS }));
      setSaved(true);
      onSaved();
      session.refresh();
    });
  }

  return (
    <form className="card settings" onSubmit={submit}>
      <h2>{t('nav.billing')}</h2>
      {toggle('billing_enabled', t('settings.billingOn'))}
      <div className="grid2">
        <Field label={t('settings.starter')} hint={t('settings.starterHint')}>
          <input inputMode="decimal" {...text('starter_credits')} />
        </Field>
        <Field label={t('settings.creditPrice')} hint={t('settings.creditPriceHint')}>
          <input inputMode="decimal" {...text('credit_price_usd')} />
        </Field>
        <Field label={t('settings.margin')} hint={t('settings.marginHint')}>
          <input inputMode="decimal" {...text('margin_percent')} />
        </Field>
        <Field label={t('settings.prefix')} hint={t('settings.prefixHint')}>
          <input maxLength={8} {...text('currency_prefix')} />
        </Field>
        <Field label={t('settings.paymentLink')} hint={t('settings.paymentLinkHint')}>
          <input type="url" placeholder="https://…" {...text('payment_link')} />
        </Field>
      </div>
      <h2>{t('usage.calls')}</h2>
      <div className="grid2">
        <Field label={t('settings.maxAttempts')} hint={t('settings.maxAttemptsHint')}>
          <input type="number" min={1} max={10} {...text('max_attempts')} />
        </Field>
        <Field label={t('settings.maxOutput')} hint={t('settings.maxOutputHint')}>
          <input type="number" min={1} {...text('default_max_output_tokens')} />
        </Field>
        <Field label={t('settings.holdTtl')} hint={t('settings.holdTtlHint')}>
          <input type="number" min={1} {...text('hold_ttl_seconds')} />
        </Field>
        <Field label={t('settings.retention')} hint={t('settings.retentionHint')}>
          <input type="number" min={0} {...text('call_retention_days')} />
        </Field>
        <Field label={t('settings.appName')} hint={t('settings.appNameHint')}>
          <input {...text('app_name')} />
        </Field>
      </div>
      <h2>{t('settings.responseCache')}</h2>
      {toggle('response_cache_enabled', t('settings.responseCacheOn'))}
      <div className="grid2">
        <Field label={t('settings.responseCacheTtl')} hint={t('settings.responseCacheTtlHint')}>
          <input type="number" min={1} {...text('response_cache_ttl_seconds')} />
        </Field>
        <Field label={t('settings.responseCacheFraction')} hint={t('settings.responseCacheFractionHint')}>
          <input inputMode="decimal" {...text('response_cache_hit_fraction')} />
        </Field>
        <Field label={t('settings.responseCacheMax')} hint={t('settings.responseCacheMaxHint')}>
          <input type="number" min={1} {...text('response_cache_max_mb')} />
        </Field>
      </div>
      {toggle('response_cache_shared', t('settings.responseCacheShared'))}
      {toggle('response_cache_deterministic_only', t('settings.responseCacheDeterministic'))}
      <SignInSection draft={draft} initial={initial} text={text} toggle={toggle} edit={edit} />
      <PaymentsSection draft={draft} initial={initial} text={text} toggle={toggle} edit={edit} />
      <ErrorNote error={error} />
      {saved && (
        <p className="notice" role="status">
          {t('settings.saved')}
        </p>
      )}
      <footer>
        <button type="button" disabled={!changed} onClick={() => setDraft(draftOf(initial))}>
          {t('settings.discard')}
        </button>
        <button type="submit" className="primary" disabled={busy || !changed}>
          {changed ? t('settings.saveN', { n: changed }) : t('common.save')}
        </button>
      </footer>
    </form>
  );
}

interface SectionProps {
  draft: Draft;
  initial: SettingsShape;
  text(k: TextKey): { name: string; value: string; onChange(e: { target: { value: string } }): void };
  toggle(k: SwitchKey, label: string): ReactNode;
  edit(patch: Partial<Draft>): void;
}

/** A write-only secret: empty keeps the stored one, which is shown only as set. */
function SecretField(props: { label: string; isSet: boolean; input: ReturnType<SectionProps['text']> }) {
  return (
    <Field label={props.label} hint={props.isSet ? t('settings.secretSet') : t('settings.secretNotSet')}>
      <span className="secret-input">
        <input type="password" autoComplete="new-password" placeholder={props.isSet ? '••••••••' : ''} {...props.input} />
        {props.isSet && <Badge tone="ok">{t('common.set')}</Badge>}
      </span>
    </Field>
  );
}

/** How people sign in: the OpenID provider, who may sign up, the SMTP server for email links, sessions. */
function SignInSection({ draft, initial, text, toggle, edit }: SectionProps) {
  return (
    <section data-testid="sign-in-settings" aria-labelledby="sign-in-heading">
      <h2 id="sign-in-heading">{t('settings.signIn')}</h2>
      <p className="muted">{t('settings.signInExplain')}</p>
      <div className="grid2">
        <Field label={t('settings.publicUrl')} hint={t('settings.publicUrlHint')}>
          <input type="url" placeholder={location.origin} {...text('app_url')} />
        </Field>
        <Field label={t('settings.sessionDays')} hint={t('settings.sessionDaysHint')}>
          <input type="number" min={1} max={365} {...text('session_days')} />
        </Field>
      </div>
      <h3>{t('settings.sso')}</h3>
      <p className="muted">
        {t('settings.redirectUri')} <code data-testid="callback-url">{callbackUrl(draft.app_url, location.origin)}</code>
      </p>
      <div className="grid2">
        <Field label={t('settings.issuer')} hint={t('settings.issuerHint', { path: '{issuer}/.well-known/openid-configuration' })}>
          <input type="url" placeholder="https://id.example.com" {...text('oidc_issuer')} />
        </Field>
        <Field label={t('settings.scopes')} hint={t('settings.scopesHint')}>
          <input {...text('oidc_scopes')} />
        </Field>
        <Field label={t('settings.clientId')}>
          <input autoComplete="off" {...text('oidc_client_id')} />
        </Field>
        <SecretField label={t('settings.clientSecret')} isSet={initial.oidc_client_secret_set} input={text('oidc_client_secret')} />
      </div>
      <h3>{t('settings.signup')}</h3>
      {toggle('signup_open', t('settings.signupOpen'))}
      <div className="grid2">
        <Field label={t('settings.domains')} hint={t('settings.domainsHint')}>
          <input placeholder={t('settings.anyDomain')} {...text('signup_email_domains')} />
        </Field>
      </div>
      <h3>{t('settings.smtp')}</h3>
      <div className="grid2">
        <Field label={t('settings.smtpHost')}>
          <input placeholder="smtp.example.com" {...text('smtp_host')} />
        </Field>
        <Field label={t('settings.smtpPort')}>
          <input type="number" min={1} max={65535} {...text('smtp_port')} />
        </Field>
        <Field label={t('settings.security')} hint={t('settings.securityHint')}>
          <select name="smtp_security" value={draft.smtp_security} onChange={(e) => edit({ smtp_security: e.target.value })}>
            <option value="starttls">STARTTLS</option>
            <option value="tls">TLS</option>
            <option value="none">{t('settings.securityNone')}</option>
          </select>
        </Field>
        <Field label={t('settings.from')} hint={t('settings.fromHint')}>
          <input {...text('smtp_from')} />
        </Field>
        <Field label={t('settings.smtpUser')}>
          <input autoComplete="off" {...text('smtp_username')} />
        </Field>
        <SecretField label={t('settings.smtpPassword')} isSet={initial.smtp_password_set} input={text('smtp_password')} />
      </div>
    </section>
  );
}

/** Selling credits through Stripe Checkout: the API keys and where Stripe sends its events. */
function PaymentsSection({ draft, initial, text }: SectionProps) {
  return (
    <section data-testid="payment-settings" aria-labelledby="payments-heading">
      <h2 id="payments-heading">{t('settings.payments')}</h2>
      <p className="muted">
        {t('settings.paymentsExplain')} <a href="#/billing">{t('nav.billing')}</a>{' '}
        {t('settings.paymentsWebhook')} <code data-testid="stripe-webhook-url">{stripeWebhookUrl(draft.app_url, location.origin)}</code>{' '}
        {t('settings.paymentsEvents', { events: 'checkout.session.*, charge.refunded' })}
      </p>
      <div className="grid2">
        <SecretField label={t('settings.stripeKey')} isSet={initial.stripe_secret_key_set} input={text('stripe_secret_key')} />
        <SecretField label={t('settings.stripeWebhookSecret')} isSet={initial.stripe_webhook_secret_set} input={text('stripe_webhook_secret')} />
        <Field label={t('settings.stripeApi')} hint={t('settings.stripeApiHint')}>
          <input type="url" placeholder="https://api.stripe.com" {...text('stripe_api_base')} />
        </Field>
      </div>
    </section>
  );
}
