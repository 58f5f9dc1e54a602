/** Selling credits, for operators: credit packs, redemption codes, purchases and Stripe's webhook deliveries. */

import { useState, type FormEvent } from 'react';
import { api, listAll, type CreditPack, type Page, type Payment, type PaymentEvent, type PaymentStatus, type User } from '../api';
import { exponent, formatPrice, majorToMinor, minorToMajor } from '../billing';
import { PaymentHead, PaymentRows } from '../credits';
import { href, useRoute } from '../router';
import { formatTime } from '../time';
import { Badge, ErrorNote, Field, LoadError, Modal, MoreButton, Toggle, useAction, useLoad, useMoney, usePaged, type Tone } from '../ui';
import { Codes } from './Codes';

const TABS = [
  { id: 'packs', label: 'Credit packs' },
  { id: 'codes', label: 'Redemption codes' },
  { id: 'payments', label: 'Purchases' },
  { id: 'events', label: 'Stripe events' },
] as const;

type TabId = (typeof TABS)[number]['id'];

export function Billing() {
  const query = useRoute().query;
  const tab: TabId = TABS.find((t) => t.id === query.get('tab'))?.id ?? 'packs';
  return (
    <>
      <h1>Billing</h1>
      <nav className="tabs" aria-label="Billing">
        {TABS.map((t) => (
          <a key={t.id} href={href('billing', { tab: t.id })} aria-current={t.id === tab ? 'page' : undefined}>
            {t.label}
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
    if (!confirm(`Delete the pack ${p.name}? Purchases already made keep their credits.`)) return;
    void action.run(async () => {
      await api(`/api/admin/credit-packs/${encodeURIComponent(p.id)}`, { method: 'DELETE' });
      packs.reload();
    });
  }

  return (
    <section>
      <div className="toolbar">
        <p className="muted">What customers can buy on their account page, paid through Stripe Checkout.</p>
        <button type="button" className="primary" onClick={() => setEditing('new')}>
          New pack
        </button>
      </div>
      <LoadError state={packs} />
      <ErrorNote error={action.error} />
      {packs.data && (
        <table data-testid="packs">
          <thead>
            <tr>
              <th>Name</th>
              <th className="num">Price</th>
              <th className="num">Credits</th>
              <th>Status</th>
              <th>Updated</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {packs.data.length === 0 && (
              <tr>
                <td colSpan={6} className="muted">
                  No packs yet.
                </td>
              </tr>
            )}
            {packs.data.map((p) => (
              <tr key={p.id} data-pack={p.name}>
                <td>{p.name}</td>
                <td className="num">{formatPrice(p.unit_amount, p.currency)}</td>
                <td className="num">{money(p.credits)}</td>
                <td>{p.active ? <Badge tone="ok">on sale</Badge> : <Badge tone="muted">hidden</Badge>}</td>
                <td>{formatTime(p.updated_at)}</td>
                <td className="actions">
                  <button type="button" onClick={() => setEditing(p)}>
                    Edit
                  </button>
                  <button type="button" className="danger" onClick={() => remove(p)} disabled={action.busy}>
                    Delete
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
    const digits = exponent(currency);
    throw new Error(`Price: a number with at most ${digits} decimal${digits === 1 ? '' : 's'} for ${currency.toUpperCase() || 'this currency'}.`);
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
    <Modal title={p ? `Edit ${p.name}` : 'New credit pack'} onClose={props.onClose}>
      <form onSubmit={submit}>
        <Field label="Name" hint="What the customer sees at checkout and in their history.">
          <input name="name" value={draft.name} required maxLength={200} autoFocus onChange={(e) => edit({ name: e.target.value })} />
        </Field>
        <div className="grid2">
          <Field label="Price" hint="What Stripe charges for the pack.">
            <input name="price" inputMode="decimal" value={draft.price} required placeholder="20.00" onChange={(e) => edit({ price: e.target.value })} />
          </Field>
          <Field label="Currency" hint="ISO 4217, like usd or eur.">
            <input name="currency" value={draft.currency} required maxLength={3} onChange={(e) => edit({ currency: e.target.value })} />
          </Field>
        </div>
        <Field label="Credits" hint="Granted when the payment succeeds; up to 9 decimals.">
          <input name="credits" inputMode="decimal" value={draft.credits} required onChange={(e) => edit({ credits: e.target.value })} />
        </Field>
        <Toggle label="On sale" checked={draft.active} onChange={(active) => edit({ active })} />
        {p && <p className="muted small">Checkouts already started keep the price and credits they began with.</p>}
        <ErrorNote error={error} />
        <footer>
          <button type="button" onClick={props.onClose}>
            Cancel
          </button>
          <button type="submit" className="primary" disabled={busy}>
            {p ? 'Save' : 'Create pack'}
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
  const users = useLoad(() => listAll<User>('/api/admin/users'), []);
  const names = new Map((users.data ?? []).map((u) => [u.id, u.name]));
  const user = (p: Payment) => <a href={href(`users/${p.user_id}`)}>{names.get(p.user_id) ?? p.user_id}</a>;

  return (
    <section>
      <div className="toolbar">
        <p className="muted">Every checkout customers started, newest first; refunds taken back from their balance.</p>
        <select aria-label="Status" value={status} onChange={(e) => setStatus(e.target.value)}>
          <option value="">Any status</option>
          {STATUSES.map((s) => (
            <option key={s}>{s}</option>
          ))}
        </select>
      </div>
      <table data-testid="payments">
        <PaymentHead user />
        <tbody>
          {payments.items.length === 0 && !payments.loading && (
            <tr>
              <td colSpan={8} className="muted">
                No purchases{status && ` ${status}`}.
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
        Stripe's webhook deliveries whose signature verified, and what Hub did with each. Register{' '}
        <code>{location.origin}/api/payments/stripe/webhook</code> in Stripe for <code>checkout.session.completed</code>,{' '}
        <code>checkout.session.async_payment_succeeded</code>, <code>checkout.session.async_payment_failed</code>,{' '}
        <code>checkout.session.expired</code> and <code>charge.refunded</code>.
      </p>
      <table data-testid="payment-events">
        <thead>
          <tr>
            <th>Received</th>
            <th>Event</th>
            <th>Outcome</th>
            <th>Payment</th>
            <th>Details</th>
          </tr>
        </thead>
        <tbody>
          {events.items.length === 0 && !events.loading && (
            <tr>
              <td colSpan={5} className="muted">
                No deliveries yet.
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
                <Badge tone={OUTCOME_TONES[e.outcome] ?? 'muted'}>{e.outcome.replace(/_/g, ' ')}</Badge>
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
