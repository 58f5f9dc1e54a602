/** Selling credits, for operators: credit packs, redemption codes, purchases and Stripe's webhook deliveries. */

import { useState, type FormEvent } from 'react';
import { api, type CreditPack, type Page, type Payment, type PaymentEvent, type PaymentStatus } from '../api';
import { useUserNames } from '../people';
import { exponent, formatPrice, majorToMinor, minorToMajor } from '../billing';
import { PAYMENT_WORDS, PaymentHead, PaymentRows } from '../credits';
import { t, type MessageKey } from '../i18n';
import { href, useRoute } from '../router';
import { formatTime } from '../time';
import { Badge, ErrorNote, Field, LoadError, Modal, MoreButton, Toggle, useAction, useLoad, useMoney, usePaged, type Tone } from '../ui';
import { Codes } from './Codes';

const TABS = [
  { id: 'packs', label: 'billing.tab.packs' },
  { id: 'codes', label: 'billing.tab.codes' },
  { id: 'payments', label: 'billing.tab.payments' },
  { id: 'events', label: 'billing.tab.events' },
] as const satisfies readonly { id: string; label: MessageKey }[];

type TabId = (typeof TABS)[number]['id'];

export function Billing() {
  const query = useRoute().query;
  const tab: TabId = TABS.find((x) => x.id === query.get('tab'))?.id ?? 'packs';
  return (
    <>
      <h1>{t('nav.billing')}</h1>
      <nav className="tabs" aria-label={t('nav.billing')}>
        {TABS.map((x) => (
          <a key={x.id} href={href('billing', { tab: x.id })} aria-current={x.id === tab ? 'page' : undefined}>
            {t(x.label)}
          </a>
        ))}
      </nav>
      {tab === 'packs' && <Packs />}
      {tab === 'codes' && <Codes />}
      {tab === 'payments' && <Payments />}
      {tab === 'events' && <Events />}
    </>
  );
}

// ------------------------------------------------------------------ packs

function Packs() {
  const packs = useLoad(() => api<Page<CreditPack>>('/api/admin/credit-packs').then((r) => r.data), []);
  const [editing, setEditing] = useState<CreditPack | 'new' | null>(null);
  const action = useAction();
  const money = useMoney();

  function remove(p: CreditPack) {
    if (!confirm(t('packs.confirmDelete', { name: p.name }))) return;
    void action.run(async () => {
      await api(`/api/admin/credit-packs/${encodeURIComponent(p.id)}`, { method: 'DELETE' });
      packs.reload();
    });
  }

  return (
    <section>
      <div className="toolbar">
        <p className="muted">{t('packs.explain')}</p>
        <button type="button" className="primary" onClick={() => setEditing('new')}>
          {t('packs.new')}
        </button>
      </div>
      <LoadError state={packs} />
      <ErrorNote error={action.error} />
      {packs.data && (
        <table data-testid="packs">
          <thead>
            <tr>
              <th>{t('users.name')}</th>
              <th className="num">{t('payment.price')}</th>
              <th className="num">{t('call.credits')}</th>
              <th>{t('call.status')}</th>
              <th>{t('packs.updated')}</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {packs.data.length === 0 && (
              <tr>
                <td colSpan={6} className="muted">
                  {t('packs.none')}
                </td>
              </tr>
            )}
            {packs.data.map((p) => (
              <tr key={p.id} data-pack={p.name}>
                <td>{p.name}</td>
                <td className="num">{formatPrice(p.unit_amount, p.currency)}</td>
                <td className="num">{money(p.credits)}</td>
                <td>{p.active ? <Badge tone="ok">{t('packs.onSaleBadge')}</Badge> : <Badge tone="muted">{t('packs.hidden')}</Badge>}</td>
                <td>{formatTime(p.updated_at)}</td>
                <td className="actions">
                  <button type="button" onClick={() => setEditing(p)}>
                    {t('common.edit')}
                  </button>
                  <button type="button" className="danger" onClick={() => remove(p)} disabled={action.busy}>
                    {t('common.delete')}
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {editing && (
        <PackForm
          pack={editing === 'new' ? null : editing}
          onClose={() => setEditing(null)}
          onSaved={() => {
            setEditing(null);
            packs.reload();
          }}
        />
      )}
    </section>
  );
}

/** The body of a pack's POST, or of its PATCH with only what changed; an error to show when the price cannot be charged. */
function packBody(draft: { name: string; currency: string; price: string; credits: string; active: boolean }, pack: CreditPack | null) {
  const currency = draft.currency.trim().toLowerCase();
  const unit_amount = majorToMinor(draft.price, currency);
  if (unit_amount === null) {
    throw new Error(
      currency
        ? t('packs.badPrice', { digits: exponent(currency), currency: currency.toUpperCase() })
        : t('packs.badPriceNoCurrency', { digits: exponent(currency) }),
    );
  }
  const body = { name: draft.name.trim(), currency, unit_amount, credits: draft.credits.trim(), active: draft.active };
  if (!pack) return body;
  const before: Record<string, unknown> = { ...pack };
  return Object.fromEntries(Object.entries(body).filter(([k, v]) => before[k] !== v));
}

function PackForm(props: { pack: CreditPack | null; onClose(): void; onSaved(): void }) {
  const p = props.pack;
  const [draft, setDraft] = useState({
    name: p?.name ?? '',
    currency: p?.currency ?? 'usd',
    price: p ? minorToMajor(p.unit_amount, p.currency) : '',
    credits: p?.credits ?? '',
    active: p?.active ?? true,
  });
  const { busy, error, run } = useAction();
  const edit = (patch: Partial<typeof draft>) => setDraft({ ...draft, ...patch });

  function submit(e: FormEvent) {
    e.preventDefault();
    void run(async () => {
      const body = packBody(draft, p);
      if (p) await api(`/api/admin/credit-packs/${encodeURIComponent(p.id)}`, { method: 'PATCH', body });
      else await api('/api/admin/credit-packs', { body });
      props.onSaved();
    });
  }

  return (
    <Modal title={p ? t('users.editTitle', { name: p.name }) : t('packs.newTitle')} onClose={props.onClose}>
      <form onSubmit={submit}>
        <Field label={t('users.name')} hint={t('packs.nameHint')}>
          <input name="name" value={draft.name} required maxLength={200} autoFocus onChange={(e) => edit({ name: e.target.value })} />
        </Field>
        <div className="grid2">
          <Field label={t('payment.price')} hint={t('packs.priceHint')}>
            <input name="price" inputMode="decimal" value={draft.price} required placeholder="20.00" onChange={(e) => edit({ price: e.target.value })} />
          </Field>
          <Field label={t('packs.currency')} hint={t('packs.currencyHint')}>
            <input name="currency" value={draft.currency} required maxLength={3} onChange={(e) => edit({ currency: e.target.value })} />
          </Field>
        </div>
        <Field label={t('call.credits')} hint={t('packs.creditsHint')}>
          <input name="credits" inputMode="decimal" value={draft.credits} required onChange={(e) => edit({ credits: e.target.value })} />
        </Field>
        <Toggle label={t('packs.onSale')} checked={draft.active} onChange={(active) => edit({ active })} />
        {p && <p className="muted small">{t('packs.startedKeep')}</p>}
        <ErrorNote error={error} />
        <footer>
          <button type="button" onClick={props.onClose}>
            {t('common.cancel')}
          </button>
          <button type="submit" className="primary" disabled={busy}>
            {p ? t('common.save') : t('packs.create')}
          </button>
        </footer>
      </form>
    </Modal>
  );
}

// ------------------------------------------------------------------ payments

const STATUSES: PaymentStatus[] = ['paid', 'open', 'pending', 'failed', 'expired'];

function Payments() {
  const [status, setStatus] = useState('');
  const payments = usePaged((cursor) => api<Page<Payment>>('/api/admin/payments', { query: { cursor, status } }), [status]);
  const userName = useUserNames(payments.items.map((p) => p.user_id));
  const user = (p: Payment) => <a href={href(`users/${p.user_id}`)}>{userName(p.user_id)}</a>;

  return (
    <section>
      <div className="toolbar">
        <p className="muted">{t('payments.explain')}</p>
        <select aria-label={t('call.status')} value={status} onChange={(e) => setStatus(e.target.value)}>
          <option value="">{t('payments.anyStatus')}</option>
          {STATUSES.map((s) => (
            <option key={s} value={s}>
              {t(PAYMENT_WORDS[s])}
            </option>
          ))}
        </select>
      </div>
      <table data-testid="payments">
        <PaymentHead user />
        <tbody>
          {payments.items.length === 0 && !payments.loading && (
            <tr>
              <td colSpan={8} className="muted">
                {status ? t('payments.noneWith', { status: t(PAYMENT_WORDS[status as PaymentStatus]) }) : t('payments.none')}
              </td>
            </tr>
          )}
          <PaymentRows payments={payments.items} user={user} />
        </tbody>
      </table>
      <MoreButton list={payments} />
    </section>
  );
}

const OUTCOME_NAMES: Record<string, MessageKey> = {
  granted: 'events.granted',
  refunded: 'events.refunded',
  already_granted: 'events.alreadyGranted',
  already_refunded: 'events.alreadyRefunded',
  closed: 'events.closed',
  ignored: 'events.ignored',
  not_paid: 'events.notPaid',
  unknown_payment: 'events.unknownPayment',
  mismatch: 'events.mismatch',
  out_of_range: 'events.outOfRange',
};

const OUTCOME_TONES: Record<string, Tone> = {
  granted: 'ok',
  refunded: 'ok',
  already_granted: 'muted',
  already_refunded: 'muted',
  closed: 'muted',
  ignored: 'muted',
  not_paid: 'warn',
  unknown_payment: 'warn',
  mismatch: 'bad',
  out_of_range: 'bad',
};

function Events() {
  const events = usePaged((cursor) => api<Page<PaymentEvent>>('/api/admin/payments/events', { query: { cursor } }), []);
  return (
    <section>
      <p className="muted">
        {t('events.explain')} {t('events.register', { url: `${location.origin}/api/payments/stripe/webhook` })}{' '}
        <code>checkout.session.completed</code>, <code>checkout.session.async_payment_succeeded</code>,{' '}
        <code>checkout.session.async_payment_failed</code>, <code>checkout.session.expired</code>, <code>charge.refunded</code>.
      </p>
      <table data-testid="payment-events">
        <thead>
          <tr>
            <th>{t('events.received')}</th>
            <th>{t('events.event')}</th>
            <th>{t('events.outcome')}</th>
            <th>{t('events.payment')}</th>
            <th>{t('ledger.details')}</th>
          </tr>
        </thead>
        <tbody>
          {events.items.length === 0 && !events.loading && (
            <tr>
              <td colSpan={5} className="muted">
                {t('events.none')}
              </td>
            </tr>
          )}
          {events.items.map((e) => (
            <tr key={e.id}>
              <td>{formatTime(e.created_at)}</td>
              <td>
                {e.type} <span className="mono muted">{e.event_id}</span>
              </td>
              <td>
                <Badge tone={OUTCOME_TONES[e.outcome] ?? 'muted'}>
                  {OUTCOME_NAMES[e.outcome] ? t(OUTCOME_NAMES[e.outcome]) : e.outcome.replace(/_/g, ' ')}
                </Badge>
              </td>
              <td className="mono">{e.payment_id ?? ''}</td>
              <td>{e.detail ?? ''}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <MoreButton list={events} />
    </section>
  );
}
