import { useState, type FormEvent, type ReactNode } from 'react';
import { api, type Settings as SettingsShape } from '../api';
import { callbackUrl, changes, draftOf, NO_SECRETS, stripeWebhookUrl, type Draft, type SwitchKey, type TextKey } from '../settings';
import { Badge, ErrorNote, Field, LoadError, Toggle, useAction, useLoad, useSession } from '../ui';

export function Settings() {
  const settings = useLoad(() => api<SettingsShape>('/api/admin/settings'), []);
  return (
    <>
      <h1>Settings</h1>
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
      <h2>Billing</h2>
      {toggle('billing_enabled', 'Billing on: calls need credits and are charged to balances')}
      <div className="grid2">
        <Field label="Starter credits" hint="Granted once to each new user (also those who sign up themselves) while billing is on.">
          <input inputMode="decimal" {...text('starter_credits')} />
        </Field>
        <Field label="Credit price (USD)" hint="What one credit sells for; rates are set from costs with it.">
          <input inputMode="decimal" {...text('credit_price_usd')} />
        </Field>
        <Field label="Default margin %" hint="Proposed when setting rates from provider costs.">
          <input inputMode="decimal" {...text('margin_percent')} />
        </Field>
        <Field label="Currency prefix" hint="Shown before amounts of credits, such as $ or €.">
          <input maxLength={8} {...text('currency_prefix')} />
        </Field>
        <Field label="Payment link" hint="Where users buy credits; shown on their account page.">
          <input type="url" placeholder="https://…" {...text('payment_link')} />
        </Field>
      </div>
      <h2>Calls</h2>
      <div className="grid2">
        <Field label="Max attempts" hint="Providers tried per call, failover included (1–10).">
          <input type="number" min={1} max={10} {...text('max_attempts')} />
        </Field>
        <Field label="Default max output tokens" hint="Held for calls that set no max_tokens when the model sets none.">
          <input type="number" min={1} {...text('default_max_output_tokens')} />
        </Field>
        <Field label="Hold lifetime (seconds)" hint="Holds of calls that never settle are released after this.">
          <input type="number" min={1} {...text('hold_ttl_seconds')} />
        </Field>
        <Field label="Call log retention (days)" hint="Call log rows older than this are deleted; usage totals are kept. 0 keeps them forever.">
          <input type="number" min={0} {...text('call_retention_days')} />
        </Field>
        <Field label="App name" hint="Shown on the sign-in page.">
          <input {...text('app_name')} />
        </Field>
      </div>
      <SignInSection draft={draft} initial={initial} text={text} toggle={toggle} edit={edit} />
      <PaymentsSection draft={draft} initial={initial} text={text} toggle={toggle} edit={edit} />
      <ErrorNote error={error} />
      {saved && (
        <p className="notice" role="status">
          Settings saved.
        </p>
      )}
      <footer>
        <button type="button" disabled={!changed} onClick={() => setDraft(draftOf(initial))}>
          Discard changes
        </button>
        <button type="submit" className="primary" disabled={busy || !changed}>
          Save {changed ? `(${changed})` : ''}
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
    <Field label={props.label} hint={props.isSet ? 'Set. Type a new one to replace it; empty keeps it.' : 'Not set.'}>
      <span className="secret-input">
        <input type="password" autoComplete="new-password" placeholder={props.isSet ? '••••••••' : ''} {...props.input} />
        {props.isSet && <Badge tone="ok">set</Badge>}
      </span>
    </Field>
  );
}

/** How people sign in: the OpenID provider, who may sign up, the SMTP server for email links, sessions. */
function SignInSection({ draft, initial, text, toggle, edit }: SectionProps) {
  return (
    <section data-testid="sign-in-settings" aria-labelledby="sign-in-heading">
      <h2 id="sign-in-heading">Sign-in</h2>
      <p className="muted">
        People sign in with your identity provider or an emailed link; API keys stay the way programs call Hub.
      </p>
      <div className="grid2">
        <Field label="Public URL" hint="This Hub's https:// address, for redirects and links. Empty: the address each request came to.">
          <input type="url" placeholder={location.origin} {...text('app_url')} />
        </Field>
        <Field label="Session lifetime (days)" hint="A session ends after this long unused.">
          <input type="number" min={1} max={365} {...text('session_days')} />
        </Field>
      </div>
      <h3>Single sign-on (OpenID Connect)</h3>
      <p className="muted">
        Register this redirect URI with the provider: <code data-testid="callback-url">{callbackUrl(draft.app_url, location.origin)}</code>
      </p>
      <div className="grid2">
        <Field label="Issuer URL" hint="Its discovery document is at {issuer}/.well-known/openid-configuration.">
          <input type="url" placeholder="https://id.example.com" {...text('oidc_issuer')} />
        </Field>
        <Field label="Scopes" hint="Must include openid.">
          <input {...text('oidc_scopes')} />
        </Field>
        <Field label="Client ID">
          <input autoComplete="off" {...text('oidc_client_id')} />
        </Field>
        <SecretField label="Client secret" isSet={initial.oidc_client_secret_set} input={text('oidc_client_secret')} />
      </div>
      <h3>Sign-up</h3>
      {toggle('signup_open', 'Anyone who signs in may create an account')}
      <div className="grid2">
        <Field label="Allowed email domains" hint="Comma-separated, like example.com, example.org. Empty: any domain.">
          <input placeholder="any" {...text('signup_email_domains')} />
        </Field>
      </div>
      <h3>Email links (SMTP)</h3>
      <div className="grid2">
        <Field label="SMTP host">
          <input placeholder="smtp.example.com" {...text('smtp_host')} />
        </Field>
        <Field label="SMTP port">
          <input type="number" min={1} max={65535} {...text('smtp_port')} />
        </Field>
        <Field label="Security" hint="STARTTLS on 587, TLS on 465; none only to a relay on this machine.">
          <select name="smtp_security" value={draft.smtp_security} onChange={(e) => edit({ smtp_security: e.target.value })}>
            <option value="starttls">STARTTLS</option>
            <option value="tls">TLS</option>
            <option value="none">None (loopback relay)</option>
          </select>
        </Field>
        <Field label="From address" hint="Like Hub <hub@example.com>.">
          <input {...text('smtp_from')} />
        </Field>
        <Field label="SMTP username">
          <input autoComplete="off" {...text('smtp_username')} />
        </Field>
        <SecretField label="SMTP password" isSet={initial.smtp_password_set} input={text('smtp_password')} />
      </div>
    </section>
  );
}

/** Selling credits through Stripe Checkout: the API keys and where Stripe sends its events. */
function PaymentsSection({ draft, initial, text }: SectionProps) {
  return (
    <section data-testid="payment-settings" aria-labelledby="payments-heading">
      <h2 id="payments-heading">Payments (Stripe)</h2>
      <p className="muted">
        Customers buy the credit packs of <a href="#/billing">Billing</a> through Stripe Checkout. In Stripe, add a webhook
        endpoint at <code data-testid="stripe-webhook-url">{stripeWebhookUrl(draft.app_url, location.origin)}</code> for the{' '}
        <code>checkout.session.*</code> and <code>charge.refunded</code> events, and paste its signing secret here.
      </p>
      <div className="grid2">
        <SecretField label="Secret key" isSet={initial.stripe_secret_key_set} input={text('stripe_secret_key')} />
        <SecretField label="Webhook signing secret" isSet={initial.stripe_webhook_secret_set} input={text('stripe_webhook_secret')} />
        <Field label="Stripe API address" hint="Stripe's own unless you test against a stand-in. Empty: Stripe's.">
          <input type="url" placeholder="https://api.stripe.com" {...text('stripe_api_base')} />
        </Field>
      </div>
    </section>
  );
}
