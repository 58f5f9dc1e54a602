/**
 * Webhooks, for operators: endpoints that receive Hub's events signed as
 * Standard Webhooks specifies. Create, edit, delete, rotate the signing secret
 * (shown once), send a test, and follow each delivery's attempts.
 */

import { useEffect, useState, type FormEvent } from 'react';
import { api, type Page, type Webhook, type WebhookDelivery, type WebhookWithSecret, type DeliveryState } from '../api';
import { t, type MessageKey } from '../i18n';
import { href, useRoute } from '../router';
import { formatTime } from '../time';
import { Badge, ErrorNote, Field, LoadError, Modal, SecretOnce, Toggle, useAction, useLoad, type Loaded, type Tone } from '../ui';
import { anyPending, attemptOutcome, describeEvents, draftOf, EVENT_TYPES, lastAttempt, toggleEvent, webhookBody, type WebhookDraft } from '../webhooks';

export function Webhooks() {
  const id = useRoute().path[1];
  return id ? <WebhookDetail id={id} /> : <WebhookList />;
}

function StatusBadge({ w }: { w: Webhook }) {
  if (w.enabled) return <Badge tone="ok">{t('webhooks.enabled')}</Badge>;
  return <Badge tone={w.disabled_reason ? 'bad' : 'muted'}>{w.disabled_reason ? t('webhooks.disabledByHub') : t('users.disabled')}</Badge>;
}

function WebhookList() {
  const hooks = useLoad(() => api<Page<Webhook>>('/api/admin/webhooks').then((r) => r.data), []);
  const [adding, setAdding] = useState(false);
  const [created, setCreated] = useState<WebhookWithSecret | null>(null);

  return (
    <>
      <div className="toolbar">
        <h1>{t('nav.webhooks')}</h1>
        <button type="button" className="primary" onClick={() => setAdding(true)}>
          {t('webhooks.add')}
        </button>
      </div>
      <p className="muted">
        {t('webhooks.explain')}{' '}
        <a href="https://www.standardwebhooks.com/" target="_blank" rel="noreferrer">
          Standard Webhooks
        </a>{' '}
        {t('webhooks.explainEnd')}
      </p>
      <LoadError state={hooks} />
      {hooks.data && <WebhookTable hooks={hooks.data} />}
      {adding && (
        <WebhookForm
          webhook={null}
          onClose={() => setAdding(false)}
          onSaved={(w) => {
            setAdding(false);
            setCreated(w as WebhookWithSecret);
            hooks.reload();
          }}
        />
      )}
      {created && (
        <SigningSecret
          webhook={created}
          onClose={() => {
            setCreated(null);
            location.hash = href(`webhooks/${created.id}`);
          }}
        />
      )}
    </>
  );
}

function WebhookTable({ hooks }: { hooks: Webhook[] }) {
  return (
    <table data-testid="webhooks">
      <thead>
        <tr>
          <th>URL</th>
          <th>{t('webhooks.events')}</th>
          <th>{t('webhooks.description')}</th>
          <th>{t('call.status')}</th>
          <th>{t('providers.secret')}</th>
          <th>{t('keys.created')}</th>
        </tr>
      </thead>
      <tbody>
        {hooks.length === 0 && (
          <tr>
            <td colSpan={6} className="muted">
              {t('webhooks.none')}
            </td>
          </tr>
        )}
        {hooks.map((w) => (
          <tr key={w.id} data-webhook={w.url}>
            <td className="mono">
              <a href={href(`webhooks/${w.id}`)}>{w.url}</a>
            </td>
            <td>{describeEvents(w.events)}</td>
            <td>{w.description ?? ''}</td>
            <td>
              <StatusBadge w={w} />
            </td>
            <td className="mono">{w.secret_hint}</td>
            <td>{formatTime(w.created_at)}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

/** The signing secret, once: after creating the webhook or rotating its secret. */
function SigningSecret({ webhook, onClose }: { webhook: WebhookWithSecret; onClose(): void }) {
  return (
    <SecretOnce title={t('webhooks.signingSecret')} secret={webhook.secret} onClose={onClose}>
      <p className="muted small">
        {t('webhooks.verify', { url: webhook.url })}
        {webhook.previous_secret_until && ` ${t('webhooks.previousUntil', { time: formatTime(webhook.previous_secret_until) })}`}
      </p>
    </SecretOnce>
  );
}

/** The events fieldset: every event (those Hub adds later too), or the ones checked. */
function EventPicker({ draft, onChange }: { draft: WebhookDraft; onChange(d: WebhookDraft): void }) {
  const choice = draft.events;
  return (
    <fieldset>
      <legend>{t('webhooks.events')}</legend>
      <Toggle
        label={t('webhooks.allEvents')}
        checked={choice.all}
        onChange={(all) => onChange({ ...draft, events: all ? { all: true } : { all: false, chosen: new Set() } })}
      />
      <div className="checks events">
        {EVENT_TYPES.map((e) => (
          <label key={e.type} title={t(e.label)}>
            <input
              type="checkbox"
              name="event"
              value={e.type}
              disabled={choice.all}
              checked={choice.all || choice.chosen.has(e.type)}
              onChange={(ev) => onChange({ ...draft, events: toggleEvent(choice, e.type, ev.target.checked) })}
            />
            <span>
              <span className="mono">{e.type}</span> <small className="muted">{t(e.label)}</small>
            </span>
          </label>
        ))}
      </div>
    </fieldset>
  );
}

function WebhookForm(props: { webhook: Webhook | null; onClose(): void; onSaved(w: Webhook): void }) {
  const w = props.webhook;
  const [draft, setDraft] = useState(() => draftOf(w));
  const { busy, error, run } = useAction();

  function submit(e: FormEvent) {
    e.preventDefault();
    void run(async () => {
      const body = webhookBody(draft, w);
      const saved = w
        ? await api<Webhook>(`/api/admin/webhooks/${encodeURIComponent(w.id)}`, { method: 'PATCH', body })
        : await api<WebhookWithSecret>('/api/admin/webhooks', { body });
      props.onSaved(saved);
    });
  }

  return (
    <Modal title={w ? t('webhooks.edit') : t('webhooks.add')} onClose={props.onClose} wide>
      <form onSubmit={submit}>
        <Field label="URL" hint={t('webhooks.urlHint')}>
          <input
            name="url"
            type="url"
            value={draft.url}
            required
            autoFocus
            placeholder="https://example.com/hub-events"
            onChange={(e) => setDraft({ ...draft, url: e.target.value })}
          />
        </Field>
        <Field label={t('webhooks.description')}>
          <input
            name="description"
            value={draft.description}
            maxLength={500}
            placeholder={t('webhooks.descriptionPlaceholder')}
            onChange={(e) => setDraft({ ...draft, description: e.target.value })}
          />
        </Field>
        <EventPicker draft={draft} onChange={setDraft} />
        <Toggle label={t('providers.enabled')} checked={draft.enabled} onChange={(enabled) => setDraft({ ...draft, enabled })} />
        {w?.disabled_reason && <p className="muted small">{t('webhooks.turnedOff', { reason: w.disabled_reason })}</p>}
        <ErrorNote error={error} />
        <footer>
          <button type="button" onClick={props.onClose}>
            {t('common.cancel')}
          </button>
          <button type="submit" className="primary" disabled={busy}>
            {w ? t('common.save') : t('webhooks.add')}
          </button>
        </footer>
      </form>
    </Modal>
  );
}

/** How many times, and how often, the deliveries list is asked again while one is on its way. */
const WATCH_POLLS = 30;
const WATCH_MS = 1_000;
const PAGE = 50;

/** A webhook's deliveries, newest first, asked again every second while one is on its way (a bounded while after each `watch()`). */
function useDeliveries(path: string) {
  const [shown, setShown] = useState(PAGE);
  const list = useLoad(() => api<Page<WebhookDelivery>>(`${path}/deliveries`, { query: { limit: shown } }), [path, shown]);
  const [polls, setPolls] = useState(WATCH_POLLS);
  const items = list.data?.data ?? [];

  useEffect(() => {
    if (list.loading || polls <= 0 || !anyPending(items)) return;
    const timer = setTimeout(() => {
      setPolls((p) => p - 1);
      list.reload();
    }, WATCH_MS);
    return () => clearTimeout(timer);
  }, [list.data, list.loading, polls]);

  const watch = () => {
    setPolls(WATCH_POLLS);
    list.reload();
  };
  return { list, items, watch, more: () => setShown((n) => n + PAGE) };
}

/** What the operator does on a webhook's page; each action's outcome, and the deliveries watched again after it. */
function useWebhookActions(path: string, hook: Loaded<Webhook>, watch: () => void, show: (d: WebhookWithSecret | 'edit') => void) {
  const [notice, setNotice] = useState<string | null>(null);
  const action = useAction();

  function act(what: () => Promise<string | void>) {
    setNotice(null);
    void action.run(async () => {
      const said = await what();
      if (said) setNotice(said);
      watch();
    });
  }
  const actions: HeaderActions = {
    edit: () => show('edit'),
    test: () =>
      act(async () => {
        await api(`${path}/test`, { method: 'POST' });
        return t('webhooks.testSent');
      }),
    rotate: () =>
      act(async () => {
        if (!confirm(t('webhooks.confirmRotate'))) return;
        show(await api<WebhookWithSecret>(`${path}/rotate`, { method: 'POST' }));
        hook.reload();
      }),
    remove: () => {
      if (!confirm(t('webhooks.confirmDelete', { url: hook.data?.url ?? '' }))) return;
      void action.run(async () => {
        await api(path, { method: 'DELETE' });
        location.hash = href('webhooks');
      });
    },
  };
  const resend = (d: WebhookDelivery) =>
    act(async () => {
      await api(`${path}/deliveries/${encodeURIComponent(d.id)}/resend`, { method: 'POST' });
      return t('webhooks.resending', { event: d.event_type });
    });
  return { actions, resend, notice, busy: action.busy, error: action.error };
}

function WebhookDetail({ id }: { id: string }) {
  const path = `/api/admin/webhooks/${encodeURIComponent(id)}`;
  const hook = useLoad(() => api<Webhook>(path), [id]);
  const deliveries = useDeliveries(path);
  const [dialog, setDialog] = useState<'edit' | WebhookWithSecret | null>(null);
  const { actions, resend, notice, ...action } = useWebhookActions(path, hook, deliveries.watch, setDialog);

  const w = hook.data;
  return (
    <>
      <p>
        <a href={href('webhooks')}>← {t('nav.webhooks')}</a>
      </p>
      <LoadError state={hook} />
      {w && <WebhookHeader w={w} busy={action.busy} actions={actions} />}
      <ErrorNote error={action.error} />
      {notice && (
        <p className="notice" role="status">
          {notice}
        </p>
      )}
      {w && <Deliveries list={deliveries.list} items={deliveries.items} busy={action.busy} onResend={resend} onMore={deliveries.more} onRefresh={deliveries.watch} />}
      {w && dialog === 'edit' && (
        <WebhookForm
          webhook={w}
          onClose={() => setDialog(null)}
          onSaved={() => {
            setDialog(null);
            hook.reload();
          }}
        />
      )}
      {dialog && dialog !== 'edit' && <SigningSecret webhook={dialog} onClose={() => setDialog(null)} />}
    </>
  );
}

interface HeaderActions {
  edit(): void;
  test(): void;
  rotate(): void;
  remove(): void;
}

function WebhookHeader({ w, busy, actions }: { w: Webhook; busy: boolean; actions: HeaderActions }) {
  return (
    <>
      <div className="toolbar">
        <h1 className="mono wrap">{w.url}</h1>
        <button type="button" onClick={actions.edit}>
          {t('common.edit')}
        </button>
        <button type="button" onClick={actions.test} disabled={busy}>
          {t('webhooks.sendTest')}
        </button>
        <button type="button" onClick={actions.rotate} disabled={busy}>
          {t('webhooks.rotate')}
        </button>
        <button type="button" className="danger" onClick={actions.remove} disabled={busy}>
          {t('common.delete')}
        </button>
      </div>
      <p className="muted" data-testid="webhook-summary">
        <StatusBadge w={w} /> {w.disabled_reason && `${w.disabled_reason} · `}
        {describeEvents(w.events)} · {t('webhooks.secretHint', { hint: w.secret_hint })}
        {w.description && ` · ${w.description}`} · {t('users.since', { time: formatTime(w.created_at) })}
      </p>
    </>
  );
}

const STATE_TONES: Record<DeliveryState, Tone> = { delivered: 'ok', pending: 'warn', failed: 'bad' };
const STATE_NAMES: Record<DeliveryState, MessageKey> = {
  delivered: 'webhooks.state.delivered',
  pending: 'webhooks.state.pending',
  failed: 'webhooks.state.failed',
};

function Deliveries(props: {
  list: { data?: Page<WebhookDelivery>; error?: string; loading: boolean };
  items: WebhookDelivery[];
  busy: boolean;
  onResend(d: WebhookDelivery): void;
  onMore(): void;
  onRefresh(): void;
}) {
  return (
    <section>
      <div className="toolbar">
        <h2>{t('webhooks.deliveries')}</h2>
        <button type="button" onClick={props.onRefresh} disabled={props.list.loading}>
          {t('webhooks.refresh')}
        </button>
      </div>
      <ErrorNote error={props.list.error} />
      <table data-testid="deliveries">
        <thead>
          <tr>
            <th>{t('keys.created')}</th>
            <th>{t('events.event')}</th>
            <th>{t('codes.state')}</th>
            <th className="num">{t('webhooks.attempts')}</th>
            <th>{t('webhooks.lastResponse')}</th>
            <th>{t('webhooks.nextAttempt')}</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {props.items.length === 0 && !props.list.loading && (
            <tr>
              <td colSpan={7} className="muted">
                {t('webhooks.noDeliveries')}
              </td>
            </tr>
          )}
          {props.items.map((d) => (
            <DeliveryRow key={d.id} d={d} busy={props.busy} onResend={props.onResend} />
          ))}
        </tbody>
      </table>
      {props.list.data?.next_cursor !== null && props.list.data?.next_cursor !== undefined && (
        <button type="button" className="more" onClick={props.onMore}>
          {t('common.loadMore')}
        </button>
      )}
    </section>
  );
}

function DeliveryRow({ d, busy, onResend }: { d: WebhookDelivery; busy: boolean; onResend(d: WebhookDelivery): void }) {
  const last = lastAttempt(d);
  const history = d.attempts.map((a) => `#${a.attempt} ${formatTime(a.at)}: ${attemptOutcome(a)}`).join('\n');
  return (
    <tr data-delivery={d.id} data-event={d.event_type} data-state={d.state}>
      <td>{formatTime(d.created_at)}</td>
      <td>
        {d.event_type} <span className="mono muted small">{d.event_id}</span>
      </td>
      <td>
        <Badge tone={STATE_TONES[d.state] ?? 'muted'}>{STATE_NAMES[d.state] ? t(STATE_NAMES[d.state]) : d.state}</Badge>
      </td>
      <td className="num" title={history || undefined} data-testid="attempts">
        {d.attempts.length}
      </td>
      <td title={d.last_error ?? undefined}>
        {attemptOutcome(last)}
        {last && <small className="muted"> · {formatTime(last.at)}</small>}
      </td>
      <td>{d.next_attempt_at ? formatTime(d.next_attempt_at) : '—'}</td>
      <td className="actions">
        <button type="button" onClick={() => onResend(d)} disabled={busy} aria-label={t('webhooks.resendLabel', { event: d.event_type, id: d.event_id })}>
          {t('webhooks.resend')}
        </button>
      </td>
    </tr>
  );
}
