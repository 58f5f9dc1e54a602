import { useState, type FormEvent } from 'react';
import { api, listAll, type Call, type Model, type Page, type Provider, type Team } from '../api';
import { CALL_STATUS, callsCsv, CallTable } from '../calls';
import { download } from '../csv';
import { t } from '../i18n';
import { href, useRoute } from '../router';
import { fromLocalInput, toLocalInput } from '../time';
import { UserPicker, useUserNames } from '../people';
import { ErrorNote, Field, MoreButton, useAction, useLoad, usePaged } from '../ui';

const FILTERS = ['from', 'to', 'user', 'team', 'key', 'app', 'provider', 'model', 'status'] as const;
type Filters = Partial<Record<(typeof FILTERS)[number], string>>;

export function Calls() {
  const route = useRoute();
  const filters: Filters = Object.fromEntries(FILTERS.flatMap((f) => (route.query.get(f) ? [[f, route.query.get(f)!]] : [])));
  const key = JSON.stringify(filters);
  const calls = usePaged((cursor) => api<Page<Call>>('/api/admin/calls', { query: { ...filters, cursor } }), [key]);
  const userName = useUserNames(calls.items.map((c) => c.user_id));
  const exporting = useAction();

  function exportCsv() {
    void exporting.run(async () => {
      const all = await listAll<Call>('/api/admin/calls', filters, 50_000);
      download(`hub-calls-${new Date().toISOString().slice(0, 19).replace(/:/g, '')}.csv`, callsCsv(all));
    });
  }

  return (
    <>
      <div className="toolbar">
        <h1>{t('nav.calls')}</h1>
        <button type="button" onClick={exportCsv} disabled={exporting.busy}>
          {exporting.busy ? t('calls.exporting') : t('calls.export')}
        </button>
      </div>
      <FilterForm key={key} filters={filters} />
      <ErrorNote error={exporting.error} />
      <CallTable calls={calls.items} userName={(id) => (id ? userName(id) : '—')} />
      <MoreButton list={calls} />
    </>
  );
}

function FilterForm({ filters }: { filters: Filters }) {
  const [draft, setDraft] = useState<Filters>({
    ...filters,
    from: filters.from && toLocalInput(Date.parse(filters.from)),
    to: filters.to && toLocalInput(Date.parse(filters.to)),
  });
  const providers = useLoad(() => api<Page<Provider>>('/api/admin/providers').then((r) => r.data), []);
  const models = useLoad(() => listAll<Model>('/api/admin/models'), []);
  const teams = useLoad(() => api<{ data: Team[] }>('/api/teams').then((r) => r.data), []);
  const set = (k: keyof Filters) => (e: { target: { value: string } }) => setDraft({ ...draft, [k]: e.target.value });

  function apply(e: FormEvent) {
    e.preventDefault();
    location.hash = href('calls', { ...draft, from: fromLocalInput(draft.from ?? ''), to: fromLocalInput(draft.to ?? '') });
  }

  return (
    <form className="filters" onSubmit={apply}>
      <Field label={t('calls.from')}>
        <input type="datetime-local" name="from" value={draft.from ?? ''} onChange={set('from')} />
      </Field>
      <Field label={t('calls.to')}>
        <input type="datetime-local" name="to" value={draft.to ?? ''} onChange={set('to')} />
      </Field>
      <Field label={t('call.user')}>
        <UserPicker name="user" value={draft.user ?? ''} onChange={(user) => setDraft({ ...draft, user })} />
      </Field>
      <Field label={t('calls.team')}>
        <select name="team" value={draft.team ?? ''} onChange={set('team')}>
          <option value="">{t('common.any')}</option>
          {teams.data?.map((team) => (
            <option key={team.id} value={team.id}>
              {team.name}
            </option>
          ))}
        </select>
      </Field>
      <Field label={t('calls.keyId')}>
        <input name="key" value={draft.key ?? ''} onChange={set('key')} placeholder="key_…" />
      </Field>
      <Field label={t('call.app')}>
        <input name="app" value={draft.app ?? ''} onChange={set('app')} />
      </Field>
      <Field label={t('call.provider')}>
        <select name="provider" value={draft.provider ?? ''} onChange={set('provider')}>
          <option value="">{t('common.any')}</option>
          {providers.data?.map((p) => (
            <option key={p.id}>{p.name}</option>
          ))}
        </select>
      </Field>
      <Field label={t('call.model')}>
        <input name="model" list="call-models" value={draft.model ?? ''} onChange={set('model')} />
        <datalist id="call-models">
          {models.data?.map((m) => (
            <option key={m.id} value={m.name ?? m.model} />
          ))}
        </datalist>
      </Field>
      <Field label={t('call.status')}>
        <select name="status" value={draft.status ?? ''} onChange={set('status')}>
          <option value="">{t('common.any')}</option>
          {(['success', 'failed', 'aborted'] as const).map((s) => (
            <option key={s} value={s}>
              {t(CALL_STATUS[s])}
            </option>
          ))}
        </select>
      </Field>
      <div className="filter-actions">
        <button type="submit" className="primary">
          {t('common.apply')}
        </button>
        <a className="button" href={href('calls')}>
          {t('common.reset')}
        </a>
      </div>
    </form>
  );
}
