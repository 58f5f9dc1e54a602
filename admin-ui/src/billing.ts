/**
 * Selling credits, as the site shows it: prices in a currency's minor units
 * (as Stripe charges them), what each ledger entry was, redemption codes as
 * CSV, expiring credit buckets and the return from Stripe's checkout.
 */

import type { CodeBatch, LedgerEntry } from './api';
import { toCsv } from './csv';
import { localeTag, t, tn, type MessageKey } from './i18n';
import { compare, sum, type Decimal } from './money';

/** Currencies Stripe charges in whole units (no minor unit). */
const ZERO_DECIMAL = new Set(
  ['bif', 'clp', 'djf', 'gnf', 'jpy', 'kmf', 'krw', 'mga', 'pyg', 'rwf', 'ugx', 'vnd', 'vuv', 'xaf', 'xof', 'xpf'],
);
/** Currencies whose minor unit is a thousandth. */
const THREE_DECIMAL = new Set(['bhd', 'jod', 'kwd', 'omr', 'tnd']);

/** Digits after the point in `currency`'s major unit, as Stripe counts them. */
export function exponent(currency: string): number {
  const c = currency.toLowerCase();
  return ZERO_DECIMAL.has(c) ? 0 : THREE_DECIMAL.has(c) ? 3 : 2;
}

/** `2000` minor units of usd → `"20.00"`: exact, as text. */
export function minorToMajor(minor: number, currency: string): string {
  const exp = exponent(currency);
  const digits = String(Math.abs(Math.trunc(minor))).padStart(exp + 1, '0');
  const major = exp ? `${digits.slice(0, -exp)}.${digits.slice(-exp)}` : digits;
  return minor < 0 ? `-${major}` : major;
}

/** `"20"` or `"20.5"` usd → `2050` minor units; null when it is not an amount of that currency. */
export function majorToMinor(text: string, currency: string): number | null {
  const exp = exponent(currency);
  const m = /^(\d+)(?:\.(\d*))?$/.exec(text.trim());
  if (!m || (m[2] ?? '').length > exp) return null;
  const minor = Number(m[1] + (m[2] ?? '').padEnd(exp, '0'));
  return Number.isSafeInteger(minor) ? minor : null;
}

/** `2000, "usd"` → `"$20.00"`; a code without a symbol → `"XYZ 20.00"`. */
export function formatPrice(minor: number, currency: string): string {
  const major = minorToMajor(minor, currency);
  try {
    const digits = exponent(currency);
    // Stripe's minor unit, not Intl's idea of the currency's (they differ for a few).
    const fmt = new Intl.NumberFormat(localeTag(), {
      style: 'currency',
      currency: currency.toUpperCase(),
      minimumFractionDigits: digits,
      maximumFractionDigits: digits,
    });
    // A string keeps every digit: Intl formats it as a decimal, not through a float.
    return fmt.format(major as unknown as number);
  } catch {
    return `${major} ${currency.toUpperCase()}`;
  }
}

export type EntryKind = 'purchase' | 'refund' | 'redemption' | 'expiry' | 'usage' | 'grant' | 'adjustment';

const ENTRY_LABELS: Record<EntryKind, MessageKey> = {
  purchase: 'entry.purchase',
  refund: 'entry.refund',
  redemption: 'entry.redemption',
  expiry: 'entry.expiry',
  usage: 'entry.usage',
  grant: 'entry.grant',
  adjustment: 'entry.adjustment',
};

/** What a ledger entry was, from its kind and the outside event it answers. */
export function entryKind(e: Pick<LedgerEntry, 'kind' | 'ref'>): EntryKind {
  const ref = e.ref ?? '';
  if (ref.startsWith('stripe-refund:')) return 'refund';
  if (ref.startsWith('stripe:')) return 'purchase';
  if (ref.startsWith('redemption:')) return 'redemption';
  if (e.kind === 'expiry' || e.kind === 'usage' || e.kind === 'grant') return e.kind;
  return 'adjustment';
}

export function entryLabel(e: Pick<LedgerEntry, 'kind' | 'ref'>): string {
  return t(ENTRY_LABELS[entryKind(e)]);
}

/** The codes just minted as CSV, one row each, with what every code is worth. */
export function codesCsv(codes: string[], batch: Pick<CodeBatch, 'id' | 'label' | 'credits' | 'uses' | 'once_per_user' | 'expires_at'>): string {
  const rows = codes.map((code) => [code, batch.credits, batch.uses, batch.once_per_user, batch.expires_at ?? '', batch.label ?? '', batch.id]);
  return toCsv(['code', 'credits', 'uses', 'once_per_user', 'expires_at', 'label', 'batch'], rows);
}

/** The file name of a batch's CSV: `hub-codes-<label or batch id>.csv`, safe for any file system. */
export function codesFileName(batch: Pick<CodeBatch, 'id' | 'label'>): string {
  const name = (batch.label ?? '').replace(/[^A-Za-z0-9._-]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 60);
  return `hub-codes-${name || batch.id}.csv`;
}

/** A grant that expires, and what is left of it (`GET /api/me/credit-buckets`). */
export interface CreditBucket {
  id: string | number;
  amount: Decimal;
  remaining: Decimal;
  expires_at: string;
  /** The grant's reason, and the outside event it answers (`grant:…` for an admin's grant). */
  reason: string | null;
  ref?: string | null;
  created_at: string;
}

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

/** `"in 3 days"`, `"in 5 hours"`, `"within the hour"`, `"expired"`: how long until `iso`, from `now`. */
export function timeUntil(iso: string, now: number): string {
  const left = Date.parse(iso) - now;
  if (Number.isNaN(left)) return iso;
  if (left <= 0) return t('until.expired');
  if (left < HOUR) return t('until.withinHour');
  if (left < 2 * DAY) return tn('until.hours', Math.floor(left / HOUR));
  return tn('until.days', Math.floor(left / DAY));
}

export interface ExpiringSummary {
  /** Credits still to spend in buckets that expire within `withinDays`. */
  amount: Decimal;
  /** The soonest expiry among them; null when none. */
  next: string | null;
  buckets: number;
}

/** What of the live buckets expires within `withinDays` of `now`. */
export function expiring(buckets: CreditBucket[], now: number, withinDays = 30): ExpiringSummary {
  const soon = buckets.filter((b) => {
    const at = Date.parse(b.expires_at);
    return at > now && at - now <= withinDays * DAY && compare(b.remaining, '0') > 0;
  });
  const next = soon.reduce<string | null>((min, b) => (min === null || Date.parse(b.expires_at) < Date.parse(min) ? b.expires_at : min), null);
  return { amount: sum(soon.map((b) => b.remaining)), next, buckets: soon.length };
}

export type CheckoutReturn = 'success' | 'cancel';

/** Where Stripe sent the customer back to (`#/account?checkout=success|cancel`), if it did. */
export function checkoutReturn(query: URLSearchParams): CheckoutReturn | null {
  const v = query.get('checkout');
  return v === 'success' || v === 'cancel' ? v : null;
}
