/** Numbers for people: counts, durations and chart scales. */

export function count(n: number): string {
  return n.toLocaleString('en-US');
}

export function ms(n: number | null | undefined): string {
  if (n === null || n === undefined) return '—';
  return n < 1000 ? `${Math.round(n)} ms` : `${(n / 1000).toFixed(2)} s`;
}

/** A scale label: `12.3K`, `4.5M`, `0.0042`. */
export function compact(n: number): string {
  if (Math.abs(n) >= 1000) return n.toLocaleString('en-US', { notation: 'compact', maximumFractionDigits: 1 });
  return n.toLocaleString('en-US', { maximumSignificantDigits: 3 });
}

export function percent(part: number, whole: number): string {
  return whole ? `${((part / whole) * 100).toFixed(part === whole || part === 0 ? 0 : 1)}%` : '—';
}

/** `plural(1, 'model')` → `"1 model"`, `plural(3, 'model')` → `"3 models"`. */
export function plural(n: number, noun: string): string {
  return `${count(n)} ${noun}${n === 1 ? '' : 's'}`;
}
