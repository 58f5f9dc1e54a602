import { useState, type FormEvent, type ReactNode } from 'react';
import { api, type AuditEntry, type Page } from '../api';
import { ACTIONS, actionName, changedFields, RESOURCES, resourceName, shortValue } from '../audit';
import { t } from '../i18n';
import { href, useRoute } from '../router';
import { formatTime, fromLocalInput, toLocalInput } from '../time';
import { UserPicker, useUserNames } from '../people';
import { Badge, Drawer, Field, MoreButton, usePaged, type Tone } from '../ui';

const FILTERS = ['from', 'to', 'actor', 'resource', 'resource_id', 'action'] as const;
type Filters = Partial<Record<(typeof FILTERS)[number], string>>;

/** The audit log: every admin write, newest first, filtered and paged by Hub. */
export function Audit() {
  const route = useRoute();
  const filters: Filters = Object.fromEntries(FILTERS.flatMap((f) => (route.query.get(f) ? [[f, route.query.get(f)!]] : [])));
  const key = JSON.stringify(filters);
  const entries = usePaged((cursor) => api<Page<AuditEntry>>('/api/admin/audit', { query: { ...filters, cursor } }), [key]);
  const who = useUserNames(entries.items.map((e) => e.actor.user_id));
  const [open, setOpen] = useState<AuditEntry | null>(null);

  return (
    <>
      <div className="toolbar">
        <h1>{t('nav.audit')}</h1>
      </div>
      <FilterForm key={key} filters={filters} />
      <table className="audit">
        <thead>
          <tr>
            <th>{t('call.time')}</th>
            <th>{t('audit.who')}</th>
            <th>{t('audit.action')}</th>
            <th>{t('audit.resource')}</th>
            <th>{t('events.outcome')}</th>
          </tr>
        </thead>
        <tbody>
          {entries.items.length === 0 && !entries.loading && (
            <tr>
              <td colSpan={5} className="muted">
                {t('audit.none')}
              </td>
            </tr>
          )}
          {entries.items.map((e) => (
            <tr key={e.id} className="clickable" data-audit={e.id} onClick={() => setOpen(e)}>
              <td>{formatTime(e.at)}</td>
              <td>{who(e.actor.user_id)}</td>
              <td>{actionName(e.action)}</td>
              <td>
                {resourceName(e.resource)} <code>{e.resource_id ?? ''}</code>
              </td>
              <td>
                <Outcome status={e.status} />
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <MoreButton list={entries} />
      {open && <EntryDrawer entry={open} who={who} onClose={() => setOpen(null)} />}
    </>
  );
}

function Outcome({ status }: { status: number | null }) {
  if (status === null) return <Badge tone="warn">{t('audit.unfinished')}</Badge>;
  const tone: Tone = status < 300 ? 'ok' : status < 500 ? 'muted' : 'bad';
  return <Badge tone={tone}>{t(status < 300 ? 'audit.done' : 'audit.refused', { status: String(status) })}</Badge>;
}

function EntryDrawer(props: { entry: AuditEntry; who(id: string): string; onClose(): void }) {
  const e = props.entry;
  const actor = e.actor.key_id ? t('audit.withKey', { id: e.actor.key_id }) : t('audit.withSession', { id: e.actor.session_id ?? '' });
  const rows: [string, ReactNode][] = [
    [t('call.time'), formatTime(e.at)],
    [t('audit.who'), `${props.who(e.actor.user_id)} (${e.actor.user_id})`],
    [t('audit.with'), actor],
    [t('audit.request'), <code>{`${e.method} ${e.path}`}</code>],
    [t('call.requestId'), <code>{e.request_id}</code>],
    [t('audit.resource'), `${resourceName(e.resource)} ${e.resource_id ?? ''}`],
    [t('audit.action'), actionName(e.action)],
    [t('events.outcome'), <Outcome status={e.status} />],
  ];
  const changes = changedFields(e.before, e.after);
  return (
    <Drawer title={t('audit.drawer')} onClose={props.onClose}>
      <dl className="details">
        {rows.map(([k, v]) => (
          <div key={k}>
            <dt>{k}</dt>
            <dd>{v}</dd>
          </div>
        ))}
      </dl>
      <h3>{t('audit.changed')}</h3>
      {changes.length === 0 ? (
        <p className="muted">{t('audit.nothingChanged')}</p>
      ) : (
        <table className="compact changes">
          <thead>
            <tr>
              <th>{t('audit.field')}</th>
              <th>{t('audit.before')}</th>
              <th>{t('audit.after')}</th>
            </tr>
          </thead>
          <tbody>
            {changes.map((c) => (
              <tr key={c.field}>
                <td>{c.field}</td>
                <td>{shortValue(c.before)}</td>
                <td>{shortValue(c.after)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <h3>{t('audit.body')}</h3>
      <pre>{e.request === null || e.request === undefined ? '—' : JSON.stringify(e.request, null, 2)}</pre>
    </Drawer>
  );
}

function FilterForm({ filters }: { filters: Filters }) {
  const [draft, setDraft] = useState<Filters>({
    ...filters,
    from: filters.from && toLocalInput(Date.parse(filters.from)),
    to: filters.to && toLocalInput(Date.parse(filters.to)),
  });
  const set = (k: keyof Filters) => (e: { target: { value: string } }) => setDraft({ ...draft, [k]: e.target.value });

  function apply(e: FormEvent) {
    e.preventDefault();
    location.hash = href('audit', { ...draft, from: fromLocalInput(draft.from ?? ''), to: fromLocalInput(draft.to ?? '') });
  }

  return (
    <form className="filters" onSubmit={apply}>
      <Field label={t('calls.from')}>
        <input type="datetime-local" name="from" value={draft.from ?? ''} onChange={set('from')} />
      </Field>
      <Field label={t('calls.to')}>
        <input type="datetime-local" name="to" value={draft.to ?? ''} onChange={set('to')} />
      </Field>
      <Field label={t('audit.who')}>
        <UserPicker name="actor" value={draft.actor ?? ''} placeholder={t('audit.actorPlaceholder')} onChange={(actor) => setDraft({ ...draft, actor })} />
      </Field>
      <Field label={t('audit.resource')}>
        <select name="resource" value={draft.resource ?? ''} onChange={set('resource')}>
          <option value="">{t('common.any')}</option>
          {RESOURCES.map((r) => (
            <option key={r} value={r}>
              {resourceName(r)}
            </option>
          ))}
        </select>
      </Field>
      <Field label={t('audit.resourceId')}>
        <input name="resource_id" value={draft.resource_id ?? ''} onChange={set('resource_id')} />
      </Field>
      <Field label={t('audit.action')}>
        <select name="action" value={draft.action ?? ''} onChange={set('action')}>
          <option value="">{t('common.any')}</option>
          {ACTIONS.map((a) => (
            <option key={a} value={a}>
              {actionName(a)}
            </option>
          ))}
        </select>
      </Field>
      <div className="filter-actions">
        <button type="submit" className="primary">
          {t('common.apply')}
        </button>
        <a className="button" href={href('audit')}>
          {t('common.reset')}
        </a>
      </div>
    </form>
  );
}
