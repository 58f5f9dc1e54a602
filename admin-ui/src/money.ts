/**
 * Credits, rates and prices as exact decimal strings (at most 9 decimals, like
 * Hub's nano-credits). Arithmetic runs on BigInt nano-units, never on floats.
 */

import { localeTag, t } from './i18n';

export type Decimal = string;

const SCALE = 9;
const NANO = 10n ** 9n;
const SYNTAX = /^([+-]?)(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?$/;

function divRound(a: bigint, b: bigint): bigint {
  const negative = a < 0n !== b < 0n;
  const x = a < 0n ? -a : a;
  const y = b < 0n ? -b : b;
  let q = x / y;
  if ((x % y) * 2n >= y) q += 1n;
  return negative ? -q : q;
}

/** Nano-units of `value × 10^shift`, rounded half away from zero. Throws on anything but a decimal. */
export function toNanos(value: Decimal | number, shift = 0): bigint {
  const text = typeof value === 'number' ? String(value) : value.trim();
  const m = SYNTAX.exec(text);
  if (!m || (m[2] === '' && !m[3])) throw new Error(t('money.notDecimal', { text }));
  const [, sign, int, frac = '', exp = '0'] = m;
  if (Math.abs(Number(exp)) > 40) throw new Error(t('money.outOfRange', { text }));
  const digits = BigInt(int + frac || '0');
  const power = Number(exp) + shift + SCALE - frac.length;
  const n = power >= 0 ? digits * 10n ** BigInt(power) : divRound(digits, 10n ** BigInt(-power));
  return sign === '-' ? -n : n;
}

export function fromNanos(n: bigint): Decimal {
  const abs = n < 0n ? -n : n;
  const frac = (abs % NANO).toString().padStart(SCALE, '0').replace(/0+$/, '');
  return `${n < 0n ? '-' : ''}${abs / NANO}${frac ? `.${frac}` : ''}`;
}

/** The canonical text of a decimal: `"4.2e-6"` → `"0.0000042"`, `"1.50"` → `"1.5"`. */
export function normalize(value: Decimal | number): Decimal {
  return fromNanos(toNanos(value));
}

/** Orders two amounts exactly: negative, zero or positive, for sorting. */
export function compare(a: Decimal | number, b: Decimal | number): number {
  const d = toNanos(a) - toNanos(b);
  return d < 0n ? -1 : d > 0n ? 1 : 0;
}

/**
 * An amount as a float, for drawing only (bar lengths, chart scales): never
 * shown as a number, summed or compared (labels use the exact string).
 */
export function toChartNumber(value: Decimal | number): number {
  return Number(toNanos(value)) / 1e9;
}

export function sum(values: (Decimal | number)[]): Decimal {
  return fromNanos(values.reduce<bigint>((total, v) => total + toNanos(v), 0n));
}

/** `value × 10^6`, exactly (a cost per token → per million tokens). */
export function perMillion(value: Decimal | number): Decimal {
  return fromNanos(toNanos(value, 6));
}

/** Sell rate that earns `marginPercent` over `cost` (USD) at `creditPrice` USD per credit. */
export function rateFromCost(cost: Decimal, marginPercent: Decimal, creditPrice: Decimal): Decimal {
  const price = toNanos(creditPrice);
  if (price <= 0n) throw new Error(t('money.zeroPrice'));
  return fromNanos(divRound(toNanos(cost) * (100n * NANO + toNanos(marginPercent)), 100n * price));
}

/** The margin, in percent to 2 decimals, of selling at `rate` credits what costs `cost` USD; null when the cost is zero. */
export function marginOf(rate: Decimal, cost: Decimal, creditPrice: Decimal): Decimal | null {
  const c = toNanos(cost);
  if (c === 0n) return null;
  const percent = divRound(toNanos(rate) * toNanos(creditPrice) * 100n, c) - 100n * NANO;
  return fromNanos(divRound(percent, 10n ** 7n) * 10n ** 7n);
}

export interface FormatOptions {
  prefix?: string;
  /** Decimals always shown (padded with zeros); default 2. */
  minDecimals?: number;
  /** Round to this many decimals; default all nine. */
  maxDecimals?: number;
  /** The BCP 47 locale whose digit grouping and decimal mark to use; default the site's language. */
  locale?: string;
}

const SEPARATORS = new Map<string, { group: string; decimal: string }>();

/** The grouping separator and decimal mark of `locale`, as Intl writes them (asked once per locale). */
function separators(locale: string): { group: string; decimal: string } {
  let sep = SEPARATORS.get(locale);
  if (!sep) {
    const parts = new Intl.NumberFormat(locale).formatToParts(1234567.5);
    sep = {
      group: parts.find((p) => p.type === 'group')?.value ?? ',',
      decimal: parts.find((p) => p.type === 'decimal')?.value ?? '.',
    };
    SEPARATORS.set(locale, sep);
  }
  return sep;
}

/**
 * `"-1234.5"` → `"-$1,234.50"` with prefix `$` (`"-$1.234,50"` where the
 * locale groups with dots). Exact: the decimal string's own digits, grouped
 * and marked as the locale writes numbers, never a float on the way.
 */
export function formatMoney(value: Decimal | number, opts: FormatOptions = {}): string {
  const { prefix = '', minDecimals = 2, maxDecimals = SCALE, locale = localeTag() } = opts;
  const sep = separators(locale);
  let n = toNanos(value);
  if (maxDecimals < SCALE) {
    const unit = 10n ** BigInt(SCALE - maxDecimals);
    n = divRound(n, unit) * unit;
  }
  const [int, frac = ''] = fromNanos(n < 0n ? -n : n).split('.');
  const grouped = int.replace(/\B(?=(\d{3})+(?!\d))/g, sep.group);
  const decimals = frac.padEnd(Math.min(minDecimals, maxDecimals), '0');
  return `${n < 0n ? '-' : ''}${prefix}${grouped}${decimals ? `${sep.decimal}${decimals}` : ''}`;
}
