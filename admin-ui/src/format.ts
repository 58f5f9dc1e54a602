/** Numbers for people, in the site's language: counts, durations and chart scales. */

import { localeTag } from './i18n';

export function count(n: number): string {
  return n.toLocaleString(localeTag());
}

export function ms(n: number | null | undefined): string {
  if (n === null || n === undefined) return '—';
  return n < 1000
    ? `${count(Math.round(n))} ms`
    : `${(n / 1000).toLocaleString(localeTag(), { minimumFractionDigits: 2, maximumFractionDigits: 2 })} s`;
}

/** A scale label: `12.3K`, `4.5M`, `0.0042` (`1.2万` in Chinese and Japanese). */
export function compact(n: number): string {
  if (Math.abs(n) >= 1000) return n.toLocaleString(localeTag(), { notation: 'compact', maximumFractionDigits: 1 });
  return n.toLocaleString(localeTag(), { maximumSignificantDigits: 3 });
}

export function percent(part: number, whole: number): string {
  if (!whole) return '—';
  const digits = part === whole || part === 0 ? 0 : 1;
  return (part / whole).toLocaleString(localeTag(), { style: 'percent', minimumFractionDigits: digits, maximumFractionDigits: digits });
}
