import { useState, type FormEvent } from 'react';
import { formatTargets, parseTargets, ROUTING_NAMES, ROUTINGS, type Alias, type Routing } from '../aliases';
import { api } from '../api';
import { t } from '../i18n';
import { Badge, ErrorNote, Field, LoadError, Modal, Toggle, useAction, useLoad } from '../ui';

export function Aliases() {
  const aliases = useLoad(() => api<{ data: Alias[] }>('/api/admin/aliases').then((r) => r.data), []);
  const [editing, setEditing] = useState<Alias | 'new' | null>(null);
  const action = useAction();

  function setEnabled(a: Alias, enabled: boolean) {
    void action.run(async () => {
      await api(`/api/admin/aliases/${a.id}`, { method: 'PATCH', body: { enabled } });
      aliases.reload();
    });
  }

  function remove(a: Alias) {
    if (!confirm(t('aliases.confirmDelete', { name: a.name }))) return;
    void action.run(async () => {
      await api(`/api/admin/aliases/${a.id}`, { method: 'DELETE' });
      aliases.reload();
    });
  }

  return (
    <>
      <div className="toolbar">
        <h1>{t('nav.aliases')}</h1>
        <button type="button" className="primary" onClick={() => setEditing('new')}>
          {t('aliases.add')}
        </button>
      </div>
      <p className="muted">{t('aliases.intro')}</p>
      <LoadError state={aliases} />
      <ErrorNote error={action.error} />
      {aliases.data && (
        <table>
          <thead>
            <tr>
              <th>{t('users.name')}</th>
              <th>{t('aliases.targets')}</th>
              <th>{t('aliases.routing')}</th>
              <th>{t('aliases.onRefusal')}</th>
              <th>{t('providers.enabled')}</th>
              <th>
                <span className="sr-only">{t('common.edit')}</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {aliases.data.length === 0 && (
              <tr>
                <td colSpan={6} className="muted">
                  {t('aliases.none')}
                </td>
              </tr>
            )}
            {aliases.data.map((a) => (
              <tr key={a.id} data-alias={a.name}>
                <td>
                  <strong>{a.name}</strong>
                  {a.description && <small className="muted"> · {a.description}</small>}
                </td>
                <td className="mono">
                  <ol className="targets">
                    {a.targets.map((target, i) => (
                      <li key={i}>
                        {target.model}
                        {target.overrides && <small> {JSON.stringify(target.overrides)}</small>}
                      </li>
                    ))}
                  </ol>
                </td>
                <td>{t(ROUTING_NAMES[a.routing])}</td>
                <td>
                  <Badge tone={a.fallback_on_refusal ? 'ok' : 'muted'}>{a.fallback_on_refusal ? t('aliases.nextTarget') : t('aliases.refusalReturned')}</Badge>
                </td>
                <td>
                  <Toggle quiet label={t('providers.enabledOf', { name: a.name })} checked={a.enabled} onChange={(v) => setEnabled(a, v)} disabled={action.busy} />
                </td>
                <td className="actions">
                  <button type="button" onClick={() => setEditing(a)}>
                    {t('common.edit')}
                  </button>
                  <button type="button" className="danger" onClick={() => remove(a)}>
                    {t('common.delete')}
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {editing && (
        <AliasForm
          alias={editing === 'new' ? null : editing}
          onClose={() => setEditing(null)}
          onSaved={() => {
            setEditing(null);
            aliases.reload();
          }}
        />
      )}
    </>
  );
}

function AliasForm(props: { alias: Alias | null; onClose(): void; onSaved(): void }) {
  const a = props.alias;
  const [name, setName] = useState(a?.name ?? '');
  const [description, setDescription] = useState(a?.description ?? '');
  const [targets, setTargets] = useState(a ? formatTargets(a.targets) : '');
  const [routing, setRouting] = useState<Routing>(a?.routing ?? 'priority');
  const [onRefusal, setOnRefusal] = useState(a?.fallback_on_refusal ?? false);
  const [enabled, setEnabled] = useState(a?.enabled ?? true);
  const [invalid, setInvalid] = useState<string | null>(null);
  const { busy, error, run } = useAction();

  function submit(e: FormEvent) {
    e.preventDefault();
    const parsed = parseTargets(targets);
    if ('badLine' in parsed) {
      setInvalid(t('aliases.badLine', { line: parsed.badLine }));
      return;
    }
    setInvalid(null);
    void run(async () => {
      const body = { name: name.trim(), description: description.trim() || null, targets: parsed.targets, routing, fallback_on_refusal: onRefusal, enabled };
      if (a) await api(`/api/admin/aliases/${a.id}`, { method: 'PATCH', body });
      else await api('/api/admin/aliases', { body });
      props.onSaved();
    });
  }

  return (
    <Modal title={a ? t('users.editTitle', { name: a.name }) : t('aliases.add')} onClose={props.onClose}>
      <form onSubmit={submit}>
        <Field label={t('users.name')} hint={t('aliases.nameHint')}>
          <input name="name" value={name} required autoFocus placeholder="smart" onChange={(e) => setName(e.target.value)} />
        </Field>
        <Field label={t('aliases.description')}>
          <input name="description" value={description} onChange={(e) => setDescription(e.target.value)} />
        </Field>
        <Field label={t('aliases.targets')} hint={t('aliases.targetsHint')}>
          <textarea name="targets" rows={4} className="mono" value={targets} required placeholder={'anthropic/claude-sonnet-4-5\nopenai/gpt-5 {"reasoning_effort": "high"}'} onChange={(e) => setTargets(e.target.value)} />
        </Field>
        <Field label={t('aliases.routing')} hint={t('aliases.routingHint')}>
          <select name="routing" value={routing} onChange={(e) => setRouting(e.target.value as Routing)}>
            {ROUTINGS.map((r) => (
              <option key={r} value={r}>
                {t(ROUTING_NAMES[r])}
              </option>
            ))}
          </select>
        </Field>
        <Toggle label={t('aliases.fallbackOnRefusal')} checked={onRefusal} onChange={setOnRefusal} />
        <Toggle label={t('providers.enabled')} checked={enabled} onChange={setEnabled} />
        <ErrorNote error={invalid ?? error} />
        <footer>
          <button type="button" onClick={props.onClose}>
            {t('common.cancel')}
          </button>
          <button type="submit" className="primary" disabled={busy}>
            {t('common.save')}
          </button>
        </footer>
      </form>
    </Modal>
  );
}
