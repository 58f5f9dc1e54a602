import { useState, type FormEvent } from 'react';
import { api, type Settings as SettingsShape } from '../api';
import { normalize } from '../money';
import { ErrorNote, Field, LoadError, Toggle, useAction, useLoad, useSession } from '../ui';

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

type TextSetting = Exclude<keyof SettingsShape, 'billing_enabled'>;
type Draft = Record<TextSetting, string> & { billing_enabled: boolean };

function draftOf(s: SettingsShape): Draft {
  return {
    billing_enabled: s.billing_enabled,
    starter_credits: normalize(s.starter_credits),
    credit_price_usd: normalize(s.credit_price_usd),
    margin_percent: normalize(s.margin_percent),
    currency_prefix: s.currency_prefix,
    payment_link: s.payment_link ?? '',
    max_attempts: String(s.max_attempts),
    default_max_output_tokens: String(s.default_max_output_tokens),
    hold_ttl_seconds: String(s.hold_ttl_seconds),
    app_name: s.app_name,
  };
}

const INTEGERS = new Set(['max_attempts', 'default_max_output_tokens', 'hold_ttl_seconds']);

function SettingsForm({ initial, onSaved }: { initial: SettingsShape; onSaved(): void }) {
  const session = useSession();
  const [draft, setDraft] = useState(() => draftOf(initial));
  const [saved, setSaved] = useState(false);
  const { busy, error, run } = useAction();
  const base = draftOf(initial);
  const changed = (Object.keys(draft) as (keyof Draft)[]).filter((k) => draft[k] !== base[k]);
  const text = (k: TextSetting) => ({
    name: k,
    value: draft[k],
    onChange: (e: { target: { value: string } }) => {
      setSaved(false);
      setDraft({ ...draft, [k]: e.target.value });
    },
  });

  function submit(e: FormEvent) {
    e.preventDefault();
    void run(async () => {
      const body = Object.fromEntries(
        changed.map((k) => {
          const v = draft[k];
          if (typeof v === 'boolean') return [k, v];
          if (k === 'payment_link') return [k, v.trim() || null];
          return [k, INTEGERS.has(k) ? Number(v) : v.trim()];
        }),
      );
      await api('/api/admin/settings', { method: 'PATCH', body });
      setSaved(true);
      onSaved();
      session.refresh();
    });
  }

  return (
    <form className="card settings" onSubmit={submit}>
      <h2>Billing</h2>
      <Toggle
        label="Billing on: calls need credits and are charged to balances"
        checked={draft.billing_enabled}
        onChange={(v) => (setSaved(false), setDraft({ ...draft, billing_enabled: v }))}
      />
      <div className="grid2">
        <Field label="Starter credits" hint="Granted to each new user while billing is on.">
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
        <Field label="App name">
          <input {...text('app_name')} />
        </Field>
      </div>
      <ErrorNote error={error} />
      {saved && (
        <p className="notice" role="status">
          Settings saved.
        </p>
      )}
      <footer>
        <button type="button" disabled={!changed.length} onClick={() => setDraft(base)}>
          Discard changes
        </button>
        <button type="submit" className="primary" disabled={busy || !changed.length}>
          Save {changed.length ? `(${changed.length})` : ''}
        </button>
      </footer>
    </form>
  );
}
