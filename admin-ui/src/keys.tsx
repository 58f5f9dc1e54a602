/** API keys of one user: list, create (shown once), revoke. Admins and users themselves share it. */

import { useState, type FormEvent } from 'react';
import { api, type ApiKey, type NewApiKey, type Page } from './api';
import { count } from './format';
import { formatTime, fromLocalInput } from './time';
import { Badge, ErrorNote, Field, LoadError, Modal, SecretOnce, useAction, useLoad, useMoney } from './ui';

function limits(k: ApiKey, money: (v: string | null) => string): string {
  const parts = [
    k.rpm_limit !== null && `${count(k.rpm_limit)} rpm`,
    k.tpm_limit !== null && `${count(k.tpm_limit)} tpm`,
    k.daily_spend_cap !== null && `${money(k.daily_spend_cap)}/day`,
    k.monthly_spend_cap !== null && `${money(k.monthly_spend_cap)}/month`,
  ].filter(Boolean);
  return parts.length ? parts.join(' · ') : 'none';
}

/**
 * `path` lists and creates (`/api/admin/users/{id}/keys` or `/api/me/keys`);
 * `revokeBase` + `/{id}` revokes. `models` are offered as the allowed list.
 */
export function KeysPanel(props: { path: string; revokeBase: string; models: string[] }) {
  const keys = useLoad(() => api<Page<ApiKey>>(props.path).then((r) => r.data), [props.path]);
  const [creating, setCreating] = useState(false);
  const [created, setCreated] = useState<NewApiKey | null>(null);
  const action = useAction();
  const money = useMoney();

  function revoke(k: ApiKey) {
    if (!confirm(`Revoke key ${k.label} (${k.hint})? Calls with it fail from now on.`)) return;
    void action.run(async () => {
      await api(`${props.revokeBase}/${k.id}`, { method: 'DELETE' });
      keys.reload();
    });
  }

  return (
    <section>
      <div className="toolbar">
        <h2>API keys</h2>
        <button type="button" className="primary" onClick={() => setCreating(true)}>
          Create key
        </button>
      </div>
      <LoadError state={keys} />
      <ErrorNote error={action.error} />
      {keys.data && (
        <table>
          <thead>
            <tr>
              <th>Label</th>
              <th>Key</th>
              <th>Created</th>
              <th>Expires</th>
              <th>Models</th>
              <th>Limits</th>
              <th>Status</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {keys.data.length === 0 && (
              <tr>
                <td colSpan={8} className="muted">
                  No keys yet.
                </td>
              </tr>
            )}
            {keys.data.map((k) => (
              <tr key={k.id} data-key={k.label}>
                <td>{k.label}</td>
                <td className="mono">{k.hint}</td>
                <td>{formatTime(k.created_at)}</td>
                <td>{k.expires_at ? formatTime(k.expires_at) : 'never'}</td>
                <td>{k.allowed_models?.join(', ') ?? 'all'}</td>
                <td>{limits(k, money)}</td>
                <td>{k.active ? <Badge tone="ok">active</Badge> : <Badge tone="muted">revoked {formatTime(k.revoked_at)}</Badge>}</td>
                <td className="actions">
                  {k.active && (
                    <button type="button" className="danger" onClick={() => revoke(k)} disabled={action.busy}>
                      Revoke
                    </button>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {creating && (
        <KeyForm
          path={props.path}
          models={props.models}
          onClose={() => setCreating(false)}
          onCreated={(k) => {
            setCreating(false);
            setCreated(k);
            keys.reload();
          }}
        />
      )}
      {created && <SecretOnce title={`Key ${created.label}`} secret={created.key} onClose={() => setCreated(null)} />}
    </section>
  );
}

function KeyForm(props: { path: string; models: string[]; onClose(): void; onCreated(k: NewApiKey): void }) {
  const [label, setLabel] = useState('');
  const [expires, setExpires] = useState('');
  const [allowed, setAllowed] = useState<string[]>([]);
  const [rpm, setRpm] = useState('');
  const [tpm, setTpm] = useState('');
  const [daily, setDaily] = useState('');
  const [monthly, setMonthly] = useState('');
  const { busy, error, run } = useAction();
  const opt = (s: string) => s.trim() || undefined;

  function submit(e: FormEvent) {
    e.preventDefault();
    void run(async () => {
      const key = await api<NewApiKey>(props.path, {
        body: {
          label: opt(label),
          expires_at: fromLocalInput(expires),
          allowed_models: allowed.length ? allowed : undefined,
          rpm_limit: rpm ? Number(rpm) : undefined,
          tpm_limit: tpm ? Number(tpm) : undefined,
          daily_spend_cap: opt(daily),
          monthly_spend_cap: opt(monthly),
        },
      });
      props.onCreated(key);
    });
  }

  return (
    <Modal title="Create key" onClose={props.onClose}>
      <form onSubmit={submit}>
        <Field label="Label" hint="Calls made with the key show it as their app unless they name one.">
          <input name="label" value={label} placeholder="default" onChange={(e) => setLabel(e.target.value)} autoFocus />
        </Field>
        <Field label="Expires" hint="Empty: never.">
          <input name="expires_at" type="datetime-local" value={expires} onChange={(e) => setExpires(e.target.value)} />
        </Field>
        {props.models.length > 0 && (
          <fieldset>
            <legend>Allowed models (none checked: all)</legend>
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
          <Field label="Requests per minute">
            <input name="rpm_limit" type="number" min={1} value={rpm} onChange={(e) => setRpm(e.target.value)} />
          </Field>
          <Field label="Tokens per minute">
            <input name="tpm_limit" type="number" min={1} value={tpm} onChange={(e) => setTpm(e.target.value)} />
          </Field>
          <Field label="Daily spend cap (credits)">
            <input name="daily_spend_cap" inputMode="decimal" value={daily} onChange={(e) => setDaily(e.target.value)} />
          </Field>
          <Field label="Monthly spend cap (credits)">
            <input name="monthly_spend_cap" inputMode="decimal" value={monthly} onChange={(e) => setMonthly(e.target.value)} />
          </Field>
        </div>
        <ErrorNote error={error} />
        <footer>
          <button type="button" onClick={props.onClose}>
            Cancel
          </button>
          <button type="submit" className="primary" disabled={busy}>
            Create key
          </button>
        </footer>
      </form>
    </Modal>
  );
}

