/** A customer's notification choices, on their account page (`/api/me/notifications`). */

import { useState, type FormEvent } from 'react';
import { api, type NotificationPrefs } from './api';
import { t } from './i18n';
import { prefsDraft, prefsPatch, type PrefsDraft, type ThresholdMode } from './prefs';
import { ErrorNote, LoadError, Toggle, useAction, useLoad, useMoney, useSession } from './ui';

export function NotificationsPanel() {
  const prefs = useLoad(() => api<NotificationPrefs>('/api/me/notifications'), []);
  return (
    <section>
      <h2>{t('prefs.title')}</h2>
      <LoadError state={prefs} />
      {prefs.data && <PrefsForm initial={prefs.data} />}
    </section>
  );
}

/** Whether the draft differs from what is saved; an invalid amount counts as a change (saving explains it). */
function changed(saved: NotificationPrefs, draft: PrefsDraft): boolean {
  try {
    return Object.keys(prefsPatch(saved, draft)).length > 0;
  } catch {
    return true;
  }
}

function PrefsForm({ initial }: { initial: NotificationPrefs }) {
  const { me } = useSession();
  const [saved, setSaved] = useState(initial);
  const [draft, setDraft] = useState(() => prefsDraft(initial));
  const [done, setDone] = useState(false);
  const { busy, error, run } = useAction();
  const edit = (patch: Partial<PrefsDraft>) => {
    setDone(false);
    setDraft({ ...draft, ...patch });
  };

  function submit(e: FormEvent) {
    e.preventDefault();
    void run(async () => {
      const next = await api<NotificationPrefs>('/api/me/notifications', { method: 'PATCH', body: prefsPatch(saved, draft) });
      setSaved(next);
      setDraft(prefsDraft(next));
      setDone(true);
    });
  }

  return (
    <form className="card" onSubmit={submit} data-testid="notifications">
      {!saved.email_available && <p className="muted small">{t('prefs.noMail')}</p>}
      {saved.email_available && !me.user.email && <p className="muted small">{t('prefs.noAddress')}</p>}
      <Toggle label={t('prefs.lowBalance')} checked={draft.email_low_balance} onChange={(v) => edit({ email_low_balance: v })} />
      <Toggle label={t('prefs.receipts')} checked={draft.email_receipts} onChange={(v) => edit({ email_receipts: v })} />
      <ThresholdChoice draft={draft} fallback={saved.default_low_balance_threshold} onChange={edit} />
      <ErrorNote error={error} />
      {done && (
        <p className="notice" role="status">
          {t('prefs.saved')}
        </p>
      )}
      <footer>
        <button type="submit" className="primary" disabled={busy || !changed(saved, draft)}>
          {t('prefs.save')}
        </button>
      </footer>
    </form>
  );
}

/** When the balance counts as low: the operator's default, never, or below an amount of the customer's own. */
function ThresholdChoice(props: { draft: PrefsDraft; fallback: string | null; onChange(p: Partial<PrefsDraft>): void }) {
  const money = useMoney();
  const radio = (mode: ThresholdMode, label: string) => (
    <label>
      <input type="radio" name="threshold_mode" value={mode} checked={props.draft.mode === mode} onChange={() => props.onChange({ mode })} />
      {label}
    </label>
  );
  return (
    <fieldset>
      <legend>{t('prefs.thresholdLegend')}</legend>
      <div className="threshold">
        {radio('default', props.fallback ? t('prefs.default', { amount: money(props.fallback) }) : t('prefs.defaultNone'))}
        {radio('custom', t('prefs.custom'))}
        <input
          type="text"
          name="low_balance_threshold"
          inputMode="decimal"
          aria-label={t('prefs.thresholdField')}
          value={props.draft.amount}
          placeholder="2.5"
          onFocus={() => props.onChange({ mode: 'custom' })}
          onChange={(e) => props.onChange({ mode: 'custom', amount: e.target.value })}
        />
        {radio('never', t('prefs.never'))}
      </div>
    </fieldset>
  );
}
