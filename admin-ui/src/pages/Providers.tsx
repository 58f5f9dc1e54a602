import { Fragment, useState, type FormEvent } from 'react';
import { api, providerKinds, type Credential, type CredentialTest, type Page, type Provider, type ProviderKind } from '../api';
import { ms } from '../format';
import { t, type MessageKey } from '../i18n';
import { formatTime } from '../time';
import { Badge, ErrorNote, Field, LoadError, Modal, Toggle, useAction, useLoad, type Tone } from '../ui';

export function Providers() {
  const kinds = useLoad(providerKinds, []);
  const providers = useLoad(() => api<Page<Provider>>('/api/admin/providers').then((r) => r.data), []);
  const [editing, setEditing] = useState<Provider | 'new' | null>(null);
  const [open, setOpen] = useState<string | null>(null);
  const toggle = useAction();
  const kindOf = (k: string) => kinds.data?.find((x) => x.kind === k);

  function setEnabled(p: Provider, enabled: boolean) {
    void toggle.run(async () => {
      await api(`/api/admin/providers/${p.id}`, { method: 'PATCH', body: { enabled } });
      providers.reload();
    });
  }

  function remove(p: Provider) {
    if (!confirm(t('providers.confirmDelete', { name: p.name }))) return;
    void toggle.run(async () => {
      await api(`/api/admin/providers/${p.id}`, { method: 'DELETE' });
      providers.reload();
    });
  }

  return (
    <>
      <div className="toolbar">
        <h1>{t('nav.providers')}</h1>
        <button type="button" className="primary" onClick={() => setEditing('new')} disabled={!kinds.data}>
          {t('providers.add')}
        </button>
      </div>
      <LoadError state={providers} />
      <LoadError state={kinds} />
      <ErrorNote error={toggle.error} />
      {providers.data && (
        <table>
          <thead>
            <tr>
              <th>{t('users.name')}</th>
              <th>{t('providers.kind')}</th>
              <th>{t('providers.baseUrl')}</th>
              <th>{t('providers.priority')}</th>
              <th>{t('providers.credentials')}</th>
              <th>{t('providers.enabled')}</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {providers.data.length === 0 && (
              <tr>
                <td colSpan={7} className="muted">
                  {t('providers.none')}
                </td>
              </tr>
            )}
            {providers.data.map((p) => (
              <Fragment key={p.id}>
                <tr data-provider={p.name}>
                  <td>
                    <strong>{p.name}</strong>
                  </td>
                  <td>{p.display_name ?? p.kind}</td>
                  <td className="mono">
                    {p.effective_base_url}
                    {p.region && <small> · {p.region}</small>}
                  </td>
                  <td>{p.priority}</td>
                  <td>
                    <Badge tone={p.active_credentials ? 'ok' : 'warn'}>
                      {t('providers.activeOf', { active: p.active_credentials, total: p.credentials })}
                    </Badge>
                  </td>
                  <td>
                    <Toggle quiet label={t('providers.enabledOf', { name: p.name })} checked={p.enabled} onChange={(v) => setEnabled(p, v)} disabled={toggle.busy} />
                  </td>
                  <td className="actions">
                    <button type="button" onClick={() => setOpen(open === p.id ? null : p.id)} aria-expanded={open === p.id}>
                      {t('providers.credentials')}
                    </button>
                    <button type="button" onClick={() => setEditing(p)}>
                      {t('common.edit')}
                    </button>
                    <button type="button" className="danger" onClick={() => remove(p)}>
                      {t('common.delete')}
                    </button>
                  </td>
                </tr>
                {open === p.id && (
                  <tr className="nested">
                    <td colSpan={7}>
                      <Credentials provider={p} kind={kindOf(p.kind)} onChanged={providers.reload} />
                    </td>
                  </tr>
                )}
              </Fragment>
            ))}
          </tbody>
        </table>
      )}
      {editing && kinds.data && (
        <ProviderForm
          provider={editing === 'new' ? null : editing}
          kinds={kinds.data}
          onClose={() => setEditing(null)}
          onSaved={(p) => {
            setEditing(null);
            setOpen(p.id);
            providers.reload();
          }}
        />
      )}
    </>
  );
}

function baseUrlHint(k: ProviderKind | undefined): string {
  if (k?.default_base_url) return t('providers.baseUrlDefault', { url: k.default_base_url });
  return k?.needs_region ? t('providers.baseUrlRegion') : t('providers.baseUrlRequired');
}

/** What a credential's secret is for each kind that takes something other than an API key. */
const SECRET_HINTS: Record<string, MessageKey> = {
  bedrock: 'providers.secretBedrock',
};

function ProviderForm(props: { provider: Provider | null; kinds: ProviderKind[]; onClose(): void; onSaved(p: Provider): void }) {
  const p = props.provider;
  const [kind, setKind] = useState(p?.kind ?? props.kinds[0].kind);
  const [name, setName] = useState(p?.name ?? '');
  const [baseUrl, setBaseUrl] = useState(p?.base_url ?? '');
  const [region, setRegion] = useState(p?.region ?? '');
  const [priority, setPriority] = useState(String(p?.priority ?? 0));
  const [enabled, setEnabled] = useState(p?.enabled ?? true);
  const { busy, error, run } = useAction();
  const k = props.kinds.find((x) => x.kind === kind);

  function submit(e: FormEvent) {
    e.preventDefault();
    void run(async () => {
      const body = {
        kind,
        name: name.trim() || kind,
        base_url: baseUrl.trim() || (p ? null : undefined),
        region: region.trim() || (p ? null : undefined),
        priority: Number(priority),
        enabled,
      };
      const saved = p
        ? await api<Provider>(`/api/admin/providers/${p.id}`, { method: 'PATCH', body })
        : await api<Provider>('/api/admin/providers', { body });
      props.onSaved(saved);
    });
  }

  return (
    <Modal title={p ? t('users.editTitle', { name: p.name }) : t('providers.add')} onClose={props.onClose}>
      <form onSubmit={submit}>
        <Field label={t('providers.kind')}>
          <select name="kind" value={kind} onChange={(e) => setKind(e.target.value)}>
            {props.kinds.map((x) => (
              <option key={x.kind} value={x.kind}>
                {x.display_name}
              </option>
            ))}
          </select>
        </Field>
        <Field label={t('users.name')} hint={t('providers.nameHint')}>
          <input name="name" value={name} placeholder={kind} onChange={(e) => setName(e.target.value)} />
        </Field>
        <Field label={t('providers.baseUrl')} hint={baseUrlHint(k)}>
          <input
            name="base_url"
            type="url"
            value={baseUrl}
            placeholder={k?.default_base_url || 'https://…'}
            required={!!k && !k.default_base_url && !k.needs_region}
            onChange={(e) => setBaseUrl(e.target.value)}
          />
        </Field>
        {(k?.needs_region || region) && (
          <Field label={t('providers.region')} hint={t('providers.regionHint')}>
            <input name="region" value={region} placeholder="us-east-1" onChange={(e) => setRegion(e.target.value)} />
          </Field>
        )}
        <Field label={t('providers.priority')} hint={t('providers.priorityHint')}>
          <input name="priority" type="number" min={-1000} max={1000} value={priority} onChange={(e) => setPriority(e.target.value)} />
        </Field>
        <Toggle label={t('providers.enabled')} checked={enabled} onChange={setEnabled} />
        <ErrorNote error={error} />
        <footer>
          <button type="button" onClick={props.onClose}>
            {t('common.cancel')}
          </button>
          <button type="submit" className="primary" disabled={busy}>
            {p ? t('common.save') : t('providers.add')}
          </button>
        </footer>
      </form>
    </Modal>
  );
}

const STATUS_TONE: Record<string, Tone> = { active: 'ok', error: 'bad', disabled: 'muted' };
const STATUS_NAMES: Record<string, MessageKey> = { active: 'common.active', error: 'providers.status.error', disabled: 'users.disabled' };

function Credentials(props: { provider: Provider; kind: ProviderKind | undefined; onChanged(): void }) {
  const { provider } = props;
  const list = useLoad(
    () => api<Page<Credential>>(`/api/admin/providers/${provider.id}/credentials`).then((r) => r.data),
    [provider.id],
  );
  const [editing, setEditing] = useState<Credential | 'new' | null>(null);
  const [tests, setTests] = useState<Record<string, CredentialTest>>({});
  const [saved, setSaved] = useState<Credential | null>(null);
  const action = useAction();
  const changed = () => {
    list.reload();
    props.onChanged();
  };

  function test(c: Credential) {
    void action.run(async () => {
      const result = await api<CredentialTest>(`/api/admin/credentials/${c.id}/test`, { method: 'POST' });
      setTests((all) => ({ ...all, [c.id]: result }));
      changed();
    });
  }

  function patch(c: Credential, body: object) {
    void action.run(async () => {
      await api(`/api/admin/credentials/${c.id}`, { method: 'PATCH', body });
      changed();
    });
  }

  function remove(c: Credential) {
    if (!confirm(t('providers.confirmDeleteCredential', { name: c.name }))) return;
    void action.run(async () => {
      await api(`/api/admin/credentials/${c.id}`, { method: 'DELETE' });
      changed();
    });
  }

  return (
    <div className="credentials">
      <div className="toolbar">
        <h3>{t('providers.credentialsOf', { name: provider.name })}</h3>
        <button type="button" onClick={() => setEditing('new')}>
          {t('providers.addCredential')}
        </button>
      </div>
      {props.kind && !props.kind.needs_secret && <p className="muted">{t('providers.noSecretNeeded')}</p>}
      <LoadError state={list} />
      <ErrorNote error={action.error} />
      {saved && (
        <p className="notice" role="status">
          {t('providers.savedCredential', { name: saved.name })} <code>{saved.secret_hint}</code>
        </p>
      )}
      {list.data && list.data.length > 0 && (
        <table>
          <thead>
            <tr>
              <th>{t('users.name')}</th>
              <th>{t('providers.secret')}</th>
              <th>{t('providers.weight')}</th>
              <th>{t('call.status')}</th>
              <th>{t('providers.enabled')}</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {list.data.map((c) => (
              <Fragment key={c.id}>
                <tr data-credential={c.name}>
                  <td>{c.name}</td>
                  <td className="mono">{c.secret_hint}</td>
                  <td>{c.weight}</td>
                  <td>
                    <Badge tone={STATUS_TONE[c.status] ?? 'muted'}>{STATUS_NAMES[c.status] ? t(STATUS_NAMES[c.status]) : c.status}</Badge>
                    {c.last_error && <div className="error small">{c.last_error}</div>}
                    <small className="muted">{t('providers.updated', { time: formatTime(c.updated_at) })}</small>
                  </td>
                  <td>
                    <Toggle quiet label={t('providers.enabledOf', { name: c.name })} checked={c.enabled} onChange={(enabled) => patch(c, { enabled })} disabled={action.busy} />
                  </td>
                  <td className="actions">
                    <button type="button" onClick={() => test(c)} disabled={action.busy}>
                      {t('providers.test')}
                    </button>
                    <button type="button" onClick={() => setEditing(c)}>
                      {t('common.edit')}
                    </button>
                    <button type="button" className="danger" onClick={() => remove(c)}>
                      {t('common.delete')}
                    </button>
                  </td>
                </tr>
                {tests[c.id] && (
                  <tr>
                    <td colSpan={6}>
                      <div className="test-result" data-testid="test-result">
                        <Badge tone={tests[c.id].ok ? 'ok' : 'bad'}>{tests[c.id].ok ? t('providers.passed') : t('providers.failed')}</Badge>{' '}
                        {t('providers.httpIn', { status: tests[c.id].status ?? '—', time: ms(tests[c.id].latency_ms) })}
                        <pre>{tests[c.id].message}</pre>
                      </div>
                    </td>
                  </tr>
                )}
              </Fragment>
            ))}
          </tbody>
        </table>
      )}
      {editing && (
        <CredentialForm
          provider={provider}
          credential={editing === 'new' ? null : editing}
          secretHint={t(SECRET_HINTS[provider.kind] ?? 'providers.secretApiKey')}
          onClose={() => setEditing(null)}
          onSaved={(c) => {
            setEditing(null);
            setSaved(c);
            changed();
          }}
        />
      )}
    </div>
  );
}

function CredentialForm(props: {
  provider: Provider;
  credential: Credential | null;
  secretHint: string;
  onClose(): void;
  onSaved(c: Credential): void;
}) {
  const c = props.credential;
  const [name, setName] = useState(c?.name ?? '');
  const [secret, setSecret] = useState('');
  const [reveal, setReveal] = useState(false);
  const [weight, setWeight] = useState(String(c?.weight ?? 100));
  const { busy, error, run } = useAction();
  const hasSecret = !!secret.trim();

  function submit(e: FormEvent) {
    e.preventDefault();
    void run(async () => {
      const body = { name: name.trim() || undefined, weight: Number(weight), secret: hasSecret ? secret.trim() : undefined };
      const saved = c
        ? await api<Credential>(`/api/admin/credentials/${c.id}`, { method: 'PATCH', body })
        : await api<Credential>(`/api/admin/providers/${props.provider.id}/credentials`, { body });
      props.onSaved(saved);
    });
  }

  return (
    <Modal title={c ? t('users.editTitle', { name: c.name }) : t('providers.addCredentialTo', { name: props.provider.name })} onClose={props.onClose}>
      <form onSubmit={submit}>
        <Field label={t('users.name')}>
          <input name="name" value={name} placeholder="default" onChange={(e) => setName(e.target.value)} />
        </Field>
        <Field
          label={t('providers.secret')}
          hint={`${props.secretHint} ${c ? t('providers.secretNow', { hint: c.secret_hint }) : t('providers.secretNew')}`}
        >
          <div className="inline">
            <input
              name="secret"
              type={reveal ? 'text' : 'password'}
              autoComplete="off"
              value={secret}
              required={!c}
              onChange={(e) => setSecret(e.target.value)}
            />
            <button type="button" onClick={() => setReveal(!reveal)}>
              {reveal ? t('providers.hide') : t('providers.show')}
            </button>
          </div>
        </Field>
        <Field label={t('providers.weight')} hint={t('providers.weightHint')}>
          <input name="weight" type="number" min={1} max={10000} value={weight} onChange={(e) => setWeight(e.target.value)} />
        </Field>
        <ErrorNote error={error} />
        <footer>
          <button type="button" onClick={props.onClose}>
            {t('common.cancel')}
          </button>
          <button type="submit" className="primary" disabled={busy || (!c && !hasSecret)}>
            {c ? t('common.save') : t('providers.addCredential')}
          </button>
        </footer>
      </form>
    </Modal>
  );
}
