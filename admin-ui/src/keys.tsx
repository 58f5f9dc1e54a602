/** API keys of one user: list, create (shown once), edit, revoke. Admins and users themselves share it. */

import { useState, type FormEvent } from 'react';
import { api, type ApiKey, type NewApiKey, type Page } from './api';
import { count } from './format';
import { t } from './i18n';
import { formatTime, fromLocalInput, toLocalInput } from './time';
import { Badge, ErrorNote, Field, Modal, MoreButton, SecretOnce, Toggle, useAction, useMoney, usePaged } from './ui';

function limits(k: ApiKey, money: (v: string | null) => string): string {
  const parts = [
    k.rpm_limit !== null && t('keys.rpm', { n: count(k.rpm_limit) }),
    k.tpm_limit !== null && t('keys.tpm', { n: count(k.tpm_limit) }),
    k.daily_spend_cap !== null && t('keys.perDay', { amount: money(k.daily_spend_cap) }),
    k.monthly_spend_cap !== null && t('keys.perMonth', { amount: money(k.monthly_spend_cap) }),
  ].filter(Boolean);
  return parts.length ? parts.join(' · ') : t('common.none');
}

/**
 * `path` lists and creates (`/api/admin/users/{id}/keys` or `/api/me/keys`);
 * `revokeBase` + `/{id}` edits (PATCH) and revokes (DELETE). `models` are
 * offered as the allowed list.
 */
export function KeysPanel(props: { path: string; revokeBase: string; models: string[]; teams?: { id: string; name: string }[] }) {
  const keys = usePaged((cursor) => api<Page<ApiKey>>(props.path, { query: { cursor } }), [props.path]);
  const [creating, setCreating] = useState(false);
  const [created, setCreated] = useState<NewApiKey | null>(null);
  const [editing, setEditing] = useState<ApiKey | null>(null);
  const action = useAction();
  const money = useMoney();

  function revoke(k: ApiKey) {
    if (!confirm(t('keys.confirmRevoke', { label: k.label, hint: k.hint }))) return;
    void action.run(async () => {
      await api(`${props.revokeBase}/${k.id}`, { method: 'DELETE' });
      keys.reload();
    });
  }

  return (
    <section>
      <div className="toolbar">
        <h2>{t('keys.title')}</h2>
        <button type="button" className="primary" onClick={() => setCreating(true)}>
          {t('keys.create')}
        </button>
      </div>
      <ErrorNote error={action.error} />
      <table>
        <thead>
          <tr>
            <th>{t('keys.label')}</th>
            <th>{t('keys.key')}</th>
            <th>{t('keys.created')}</th>
            <th>{t('keys.expires')}</th>
            <th>{t('keys.models')}</th>
            <th>{t('keys.limits')}</th>
            <th>{t('keys.status')}</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {!keys.loading && !keys.error && keys.items.length === 0 && (
            <tr>
              <td colSpan={8} className="muted">
                {t('keys.none')}
              </td>
            </tr>
          )}
          {keys.items.map((k) => (
            <tr key={k.id} data-key={k.label}>
              <td>{k.label}</td>
              <td className="mono">{k.hint}</td>
              <td>{formatTime(k.created_at)}</td>
              <td>{k.expires_at ? formatTime(k.expires_at) : t('common.never')}</td>
              <td>{k.allowed_models?.join(', ') ?? t('common.all')}</td>
              <td>{limits(k, money)}</td>
              <td>
                {k.active ? (
                  <Badge tone="ok">{t('common.active')}</Badge>
                ) : (
                  <Badge tone="muted">{t('keys.revokedAt', { time: formatTime(k.revoked_at) })}</Badge>
                )}
              </td>
              <td className="actions">
                {k.active && (
                  <>
                    <button type="button" onClick={() => setEditing(k)} aria-label={t('keys.editTitle', { label: k.label })}>
                      {t('common.edit')}
                    </button>
                    <button type="button" className="danger" onClick={() => revoke(k)} disabled={action.busy}>
                      {t('keys.revoke')}
                    </button>
                  </>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <MoreButton list={keys} />
      {creating && (
        <KeyForm
          path={props.path}
          models={props.models}
          teams={props.teams}
          onClose={() => setCreating(false)}
          onCreated={(k) => {
            setCreating(false);
            setCreated(k);
            keys.reload();
          }}
        />
      )}
      {editing && (
        <KeyForm
          path={`${props.revokeBase}/${editing.id}`}
          editing={editing}
          models={props.models}
          onClose={() => setEditing(null)}
          onCreated={() => {
            setEditing(null);
            keys.reload();
          }}
        />
      )}
      {created && <SecretOnce title={t('keys.secretTitle', { label: created.label })} secret={created.key} onClose={() => setCreated(null)} />}
    </section>
  );
}

/**
 * Creates a key (POST to `path`), or edits `editing` (PATCH to `path`): an
 * edit sends every field, emptied ones as null (no limit, all models, never
 * expires). Spend caps stay the exact decimal strings typed or stored.
 */
function KeyForm(props: {
  path: string;
  editing?: ApiKey;
  models: string[];
  /** Teams a new key may belong to (the user's); none: the field is not shown. */
  teams?: { id: string; name: string }[];
  onClose(): void;
  onCreated(k: NewApiKey): void;
}) {
  const k = props.editing;
  const [label, setLabel] = useState(k?.label ?? '');
  const [expires, setExpires] = useState(k?.expires_at ? toLocalInput(Date.parse(k.expires_at)) : '');
  const [allowed, setAllowed] = useState<string[]>(k?.allowed_models ?? []);
  const [rpm, setRpm] = useState(k?.rpm_limit?.toString() ?? '');
  const [tpm, setTpm] = useState(k?.tpm_limit?.toString() ?? '');
  const [daily, setDaily] = useState(k?.daily_spend_cap ?? '');
  const [monthly, setMonthly] = useState(k?.monthly_spend_cap ?? '');
  const teams = k ? [] : (props.teams ?? []);
  // As Hub decides when none is named: the user's only team.
  const [team, setTeam] = useState(teams.length === 1 ? teams[0].id : '');
  const [cached, setCached] = useState(k?.response_cache ?? true);
  const { busy, error, run } = useAction();
  // Creating leaves an empty field out; editing clears it.
  const none = k ? null : undefined;
  const opt = (s: string) => s.trim() || none;
  const num = (s: string) => (s.trim() ? Number(s) : none);

  function submit(e: FormEvent) {
    e.preventDefault();
    void run(async () => {
      const key = await api<NewApiKey>(props.path, {
        method: k ? 'PATCH' : 'POST',
        body: {
          label: k ? label.trim() : opt(label),
          expires_at: fromLocalInput(expires) ?? none,
          allowed_models: allowed.length ? allowed : none,
          rpm_limit: num(rpm),
          tpm_limit: num(tpm),
          daily_spend_cap: opt(daily),
          monthly_spend_cap: opt(monthly),
          team_id: teams.length ? team || null : undefined,
          // Sent only when changed, like a field left empty.
          response_cache: cached === (k?.response_cache ?? true) ? undefined : cached,
        },
      });
      props.onCreated(key);
    });
  }

  return (
    <Modal title={k ? t('keys.editTitle', { label: k.label }) : t('keys.create')} onClose={props.onClose}>
      <form onSubmit={submit}>
        <Field label={t('keys.label')} hint={t('keys.labelHint')}>
          <input name="label" value={label} placeholder="default" onChange={(e) => setLabel(e.target.value)} autoFocus />
        </Field>
        {teams.length > 0 && (
          <Field label={t('keys.team')} hint={t('keys.teamHint')}>
            <select name="team_id" value={team} onChange={(e) => setTeam(e.target.value)}>
              <option value="">{t('keys.noTeam')}</option>
              {teams.map((tm) => (
                <option key={tm.id} value={tm.id}>
                  {tm.name}
                </option>
              ))}
            </select>
          </Field>
        )}
        <Field label={t('keys.expires')} hint={t('keys.expiresHint')}>
          <input name="expires_at" type="datetime-local" value={expires} onChange={(e) => setExpires(e.target.value)} />
        </Field>
        {props.models.length > 0 && (
          <fieldset>
            <legend>{t('keys.allowedModels')}</legend>
            <div className="checks">
              {props.models.map((m) => (
                <label key={m}>
                  <input
                    type="checkbox"
                    checked={allowed.includes(m)}
                    onChange={(e) => setAllowed(e.target.checked ? [...allowed, m] : allowed.filter((x) => x !== m))}
                  />
                  {m}
                </label>
              ))}
            </div>
          </fieldset>
        )}
        <div className="grid2">
          <Field label={t('keys.rpmLabel')}>
            <input name="rpm_limit" type="number" min={1} value={rpm} onChange={(e) => setRpm(e.target.value)} />
          </Field>
          <Field label={t('keys.tpmLabel')}>
            <input name="tpm_limit" type="number" min={1} value={tpm} onChange={(e) => setTpm(e.target.value)} />
          </Field>
          <Field label={t('keys.dailyCap')}>
            <input name="daily_spend_cap" inputMode="decimal" value={daily} onChange={(e) => setDaily(e.target.value)} />
          </Field>
          <Field label={t('keys.monthlyCap')}>
            <input name="monthly_spend_cap" inputMode="decimal" value={monthly} onChange={(e) => setMonthly(e.target.value)} />
          </Field>
        </div>
        <Toggle label={t('keys.responseCache')} checked={cached} onChange={setCached} />
        <ErrorNote error={error} />
        <footer>
          <button type="button" onClick={props.onClose}>
            {t('common.cancel')}
          </button>
          <button type="submit" className="primary" disabled={busy}>
            {k ? t('common.save') : t('keys.create')}
          </button>
        </footer>
      </form>
    </Modal>
  );
}

