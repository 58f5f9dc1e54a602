/**
 * A customer's credits, on their account page: the return from Stripe's
 * checkout (the credits arrive by webhook, so the page watches for them),
 * the packs on sale, redeeming a code, the ledger and the purchases.
 */

import { useEffect, useState, type FormEvent, type ReactNode } from 'react';
import { api, type LedgerEntry, type Page, type PacksOnSale, type Payment, type PaymentStatus, type Redeemed } from './api';
import { checkoutReturn, entryKind, entryLabel, formatPrice, timeUntil, type CheckoutReturn, type CreditBucket } from './billing';
import { t, type MessageKey } from './i18n';
import { href, useRoute } from './router';
import { formatTime } from './time';
import { Badge, ErrorNote, Field, LoadError, MoreButton, useAction, useLoad, useMoney, usePaged, useSession, type Tone } from './ui';

/** How often, and how long, the page asks whether a paid checkout's credits have arrived. */
const POLL_MS = 1_000;
const POLLS = 30;

export const PAYMENT_TONES: Record<PaymentStatus, Tone> = { paid: 'ok', open: 'warn', pending: 'warn', failed: 'bad', expired: 'muted' };
export const PAYMENT_WORDS: Record<PaymentStatus, MessageKey> = {
  paid: 'payment.paid',
  open: 'payment.open',
  pending: 'payment.pending',
  failed: 'payment.failed',
  expired: 'payment.expired',
};

export function PaymentBadge({ p }: { p: Payment }) {
  return (
    <Badge tone={PAYMENT_TONES[p.status] ?? 'muted'}>
      {PAYMENT_WORDS[p.status] ? t(PAYMENT_WORDS[p.status]) : p.status}
      {p.refunded_amount > 0 && ` · ${t('payment.refunded')}`}
    </Badge>
  );
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Credits on the account page; `changed` after a purchase or redemption reloads the lists and balance. */
export function CreditsPanel() {
  const { refresh } = useSession();
  const outcome = checkoutReturn(useRoute().query);
  const [version, setVersion] = useState(0);
  const changed = () => {
    refresh();
    setVersion((v) => v + 1);
  };
  return (
    <>
      {outcome && <CheckoutNotice outcome={outcome} onArrived={changed} />}
      <div className="grid2 shop">
        <BuyCredits />
        <RedeemCode onRedeemed={changed} />
      </div>
      <Buckets path="/api/me/credit-buckets" version={version} />
      <History version={version} />
      <Purchases version={version} />
    </>
  );
}

type Arrival = { state: 'waiting' } | { state: 'arrived'; payment: Payment } | { state: 'failed'; payment: Payment } | { state: 'slow' };

/** After Stripe's success redirect: polls the newest payment (a bounded while) until its webhook has granted it. */
function useArrival(outcome: CheckoutReturn, onArrived: () => void): Arrival {
  const [arrival, setArrival] = useState<Arrival>({ state: 'waiting' });
  useEffect(() => {
    if (outcome !== 'success') return;
    let live = true;
    void (async () => {
      for (let i = 0; i < POLLS && live; i++) {
        const latest = await api<Page<Payment>>('/api/me/payments', { query: { limit: 1 } }).then(
          (p) => p.data[0],
          () => undefined,
        );
        if (!live) return;
        if (latest?.status === 'paid') {
          setArrival({ state: 'arrived', payment: latest });
          onArrived();
          return;
        }
        if (latest?.status === 'failed' || latest?.status === 'expired') return setArrival({ state: 'failed', payment: latest });
        await sleep(POLL_MS);
      }
      if (live) setArrival({ state: 'slow' });
    })();
    return () => {
      live = false;
    };
  }, [outcome]);
  return arrival;
}

function CheckoutNotice({ outcome, onArrived }: { outcome: CheckoutReturn; onArrived(): void }) {
  const arrival = useArrival(outcome, onArrived);
  const money = useMoney();
  const dismiss = (
    <a className="button" href={href('account')}>
      {t('checkout.dismiss')}
    </a>
  );
  if (outcome === 'cancel') {
    return (
      <div className="toolbar checkout-notice" data-testid="checkout-notice">
        <p className="notice muted-notice" role="status">
          {t('checkout.cancelled')}
        </p>
        {dismiss}
      </div>
    );
  }
  const text = {
    waiting: t('checkout.waiting'),
    arrived:
      arrival.state === 'arrived' && t('checkout.arrived', { credits: money(arrival.payment.credits), pack: arrival.payment.pack_name }),
    failed:
      arrival.state === 'failed' &&
      (arrival.payment.error ? t('checkout.failedWhy', { error: arrival.payment.error }) : t('checkout.failed')),
    slow: t('checkout.slow'),
  }[arrival.state];
  return (
    <div className="toolbar checkout-notice" data-testid="checkout-notice">
      <p className={arrival.state === 'failed' ? 'error' : 'notice'} role="status">
        {text}
      </p>
      {dismiss}
    </div>
  );
}

/** The packs on sale; buying one goes to Stripe's checkout page and comes back here. */
function BuyCredits() {
  const { me } = useSession();
  const packs = useLoad(() => api<PacksOnSale>('/api/me/credit-packs'), []);
  const action = useAction();
  const money = useMoney();
  const sale = packs.data?.checkout_available ? packs.data.data : [];

  function buy(packId: string) {
    void action.run(async () => {
      const { url } = await api<{ url: string }>('/api/me/checkout', { body: { pack_id: packId } });
      location.assign(url);
    });
  }

  return (
    <section className="card" data-testid="buy-credits">
      <h2>{t('shop.buy')}</h2>
      <LoadError state={packs} />
      <ErrorNote error={action.error} />
      {packs.data && sale.length === 0 && (
        <p className="muted">
          {me.payment_link ? t('shop.useLink') : t('shop.notForSale')}
        </p>
      )}
      <div className="packs">
        {sale.map((p) => (
          <div key={p.id} className="pack" data-pack={p.name}>
            <strong>{p.name}</strong>
            <span>{t('shop.inCredits', { credits: money(p.credits) })}</span>
            <button type="button" className="primary" disabled={action.busy} onClick={() => buy(p.id)}>
              {t('shop.buyFor', { price: formatPrice(p.unit_amount, p.currency) })}
            </button>
          </div>
        ))}
      </div>
    </section>
  );
}

function RedeemCode({ onRedeemed }: { onRedeemed(): void }) {
  const [code, setCode] = useState('');
  const [done, setDone] = useState<Redeemed | null>(null);
  const { busy, error, run } = useAction();
  const money = useMoney();

  function submit(e: FormEvent) {
    e.preventDefault();
    setDone(null);
    void run(async () => {
      setDone(await api<Redeemed>('/api/me/redeem', { body: { code: code.trim() } }));
      setCode('');
      onRedeemed();
    });
  }

  return (
    <form className="card" onSubmit={submit} data-testid="redeem">
      <h2>{t('redeem.title')}</h2>
      <Field label={t('redeem.code')} hint={t('redeem.hint')}>
        <span className="inline">
          <input name="code" value={code} autoComplete="off" spellCheck={false} placeholder="HUB-" onChange={(e) => setCode(e.target.value)} />
          <button type="submit" className="primary" disabled={busy || !code.trim()}>
            {t('redeem.submit')}
          </button>
        </span>
      </Field>
      <ErrorNote error={error} />
      {done && (
        <p className="notice" role="status">
          {t('redeem.done', { code: done.code, credits: money(done.credits), balance: money(done.balance) })}
        </p>
      )}
    </form>
  );
}

/** The user's ledger, newest first: purchases, redemptions, grants, usage, refunds and expired credits. */
export function LedgerTable({ entries, testId }: { entries: LedgerEntry[]; testId?: string }) {
  const money = useMoney();
  return (
    <table data-testid={testId}>
      <thead>
        <tr>
          <th>{t('ledger.time')}</th>
          <th>{t('ledger.what')}</th>
          <th className="num">{t('ledger.amount')}</th>
          <th>{t('ledger.details')}</th>
          <th>{t('ledger.expires')}</th>
        </tr>
      </thead>
      <tbody>
        {entries.length === 0 && (
          <tr>
            <td colSpan={5} className="muted">
              {t('common.nothingYet')}
            </td>
          </tr>
        )}
        {entries.map((e) => (
          <tr key={e.id} data-kind={entryKind(e)}>
            <td>{formatTime(e.created_at)}</td>
            <td>{entryLabel(e)}</td>
            <td className={`num ${e.amount.startsWith('-') ? 'debit' : 'credit'}`}>{money(e.amount)}</td>
            <td>{e.reason ?? (e.call_id ? <span className="mono">{e.call_id}</span> : '')}</td>
            <td>{e.expires_at ? formatTime(e.expires_at) : ''}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

/**
 * What is left of each grant that expires, soonest first: usage spends these
 * first, and what is left at expiry leaves the balance (an "Expired" entry in
 * the history). Shown only while there are some.
 */
export function Buckets({ path, version }: { path: string; version: number }) {
  const buckets = useLoad(() => api<{ data: CreditBucket[] }>(path).then((r) => r.data), [path, version]);
  const money = useMoney();
  const now = Date.now();
  if (buckets.error) return <ErrorNote error={buckets.error} />;
  if (!buckets.data?.length) return null;
  return (
    <section>
      <h2>{t('buckets.title')}</h2>
      <p className="muted">{t('buckets.explain')}</p>
      <table data-testid="credit-buckets">
        <thead>
          <tr>
            <th>{t('buckets.granted')}</th>
            <th>{t('buckets.from')}</th>
            <th className="num">{t('ledger.amount')}</th>
            <th className="num">{t('buckets.left')}</th>
            <th>{t('ledger.expires')}</th>
          </tr>
        </thead>
        <tbody>
          {buckets.data.map((b) => (
            <tr key={b.id} data-bucket={b.id}>
              <td>{formatTime(b.created_at)}</td>
              <td>{b.reason ? `${entryLabel({ kind: 'grant', ref: b.ref })}: ${b.reason}` : entryLabel({ kind: 'grant', ref: b.ref })}</td>
              <td className="num">{money(b.amount)}</td>
              <td className="num">{money(b.remaining)}</td>
              <td>
                <strong>{timeUntil(b.expires_at, now)}</strong> <span className="muted">{formatTime(b.expires_at)}</span>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}

function History({ version }: { version: number }) {
  const ledger = usePaged((cursor) => api<Page<LedgerEntry>>('/api/me/ledger', { query: { cursor } }), [version]);
  return (
    <section>
      <h2>{t('ledger.history')}</h2>
      <LedgerTable entries={ledger.items} testId="history" />
      <MoreButton list={ledger} />
    </section>
  );
}

export function PaymentRows({ payments, user }: { payments: Payment[]; user?: (p: Payment) => ReactNode }) {
  const money = useMoney();
  return (
    <>
      {payments.map((p) => (
        <tr key={p.id} data-payment={p.id}>
          <td>{formatTime(p.created_at)}</td>
          {user && <td>{user(p)}</td>}
          <td>{p.pack_name}</td>
          <td className="num">{money(p.credits)}</td>
          <td className="num">{formatPrice(p.amount, p.currency)}</td>
          <td>
            <PaymentBadge p={p} />
          </td>
          <td className="num">
            {p.refunded_amount > 0 ? `${formatPrice(p.refunded_amount, p.currency)} (${money(p.refunded_credits)})` : ''}
          </td>
          <td>{p.paid_at ? formatTime(p.paid_at) : (p.error ?? '')}</td>
        </tr>
      ))}
    </>
  );
}

export function PaymentHead({ user }: { user?: boolean }) {
  return (
    <thead>
      <tr>
        <th>{t('payment.started')}</th>
        {user && <th>{t('call.user')}</th>}
        <th>{t('payment.pack')}</th>
        <th className="num">{t('call.credits')}</th>
        <th className="num">{t('payment.price')}</th>
        <th>{t('call.status')}</th>
        <th className="num">{t('payment.refundedCol')}</th>
        <th>{t('payment.paidCol')}</th>
      </tr>
    </thead>
  );
}

function Purchases({ version }: { version: number }) {
  const payments = usePaged((cursor) => api<Page<Payment>>('/api/me/payments', { query: { cursor } }), [version]);
  return (
    <section>
      <h2>{t('payment.purchases')}</h2>
      <table data-testid="purchases">
        <PaymentHead />
        <tbody>
          {payments.items.length === 0 && !payments.loading && (
            <tr>
              <td colSpan={7} className="muted">
                {t('payment.none')}
              </td>
            </tr>
          )}
          <PaymentRows payments={payments.items} />
        </tbody>
      </table>
      <MoreButton list={payments} />
    </section>
  );
}
