/** Dates: the browser's UTC offset, usage buckets aligned to it, and formatting for the site's language. */

import { localeTag, t, type MessageKey } from './i18n';

export type Bucket = 'hour' | 'day';
export type Preset = '24h' | '7d' | '30d' | '90d';

const MINUTE = 60_000;
const SIZE: Record<Bucket, number> = { hour: 3_600_000, day: 86_400_000 };
export const PRESETS: Record<Preset, { label: MessageKey; bucket: Bucket; count: number }> = {
  '24h': { label: 'range.24h', bucket: 'hour', count: 24 },
  '7d': { label: 'range.7d', bucket: 'day', count: 7 },
  '30d': { label: 'range.30d', bucket: 'day', count: 30 },
  '90d': { label: 'range.90d', bucket: 'day', count: 90 },
};

/** The preset's name in the site's language ("Last 7 days"). */
export function presetLabel(preset: Preset): string {
  return t(PRESETS[preset].label);
}

/** The browser's offset from UTC in minutes (east positive), at `at`. */
export function browserOffset(at: number = Date.now()): number {
  return -new Date(at).getTimezoneOffset() || 0;
}

/** `330` → `"+05:30"`, `-240` → `"-04:00"`: the `tz` parameter of Hub's usage API. */
export function formatOffset(minutes: number): string {
  const abs = Math.abs(minutes);
  const pad = (n: number) => String(n).padStart(2, '0');
  return `${minutes < 0 ? '-' : '+'}${pad(Math.floor(abs / 60))}:${pad(abs % 60)}`;
}

/** Start of the bucket holding `ms`, with buckets aligned to local time at `offset`. */
export function bucketStart(ms: number, bucket: Bucket, offset: number): number {
  const size = SIZE[bucket];
  const shift = offset * MINUTE;
  return Math.floor((ms + shift) / size) * size - shift;
}

export interface Range {
  from: number;
  to: number;
  bucket: Bucket;
  /** Bucket starts, oldest first, the last holding `now`. */
  starts: number[];
}

export function presetRange(preset: Preset, now: number, offset: number): Range {
  const { bucket, count } = PRESETS[preset];
  const size = SIZE[bucket];
  const last = bucketStart(now, bucket, offset);
  const starts = Array.from({ length: count }, (_, i) => last - (count - 1 - i) * size);
  return { from: starts[0], to: last + size, bucket, starts };
}

/** Rows keyed by their bucket's ISO start, laid on `starts` (undefined where a bucket had nothing). */
export function alignBuckets<T extends { group: string | null }>(starts: number[], rows: T[]): (T | undefined)[] {
  const byStart = new Map(rows.map((r) => [Date.parse(r.group ?? ''), r]));
  return starts.map((s) => byStart.get(s));
}

function parts(ms: number, offset: number) {
  const d = new Date(ms + offset * MINUTE);
  const pad = (n: number) => String(n).padStart(2, '0');
  return {
    y: d.getUTCFullYear(),
    mm: pad(d.getUTCMonth() + 1),
    dd: pad(d.getUTCDate()),
    hh: pad(d.getUTCHours()),
    mi: pad(d.getUTCMinutes()),
  };
}

/**
 * `ms` shown at `offset` in the site's language: Intl formats the instant
 * shifted by the offset as if it were UTC, so the offset (not the browser's
 * zone database) decides the wall-clock time, as the usage API's `tz` does.
 */
function local(ms: number, offset: number, options: Intl.DateTimeFormatOptions): string {
  return new Intl.DateTimeFormat(localeTag(), { ...options, timeZone: 'UTC', hourCycle: 'h23' }).format(ms + offset * MINUTE);
}

const DAY_LABEL: Intl.DateTimeFormatOptions = { month: 'short', day: 'numeric' };
const HOUR_LABEL: Intl.DateTimeFormatOptions = { hour: '2-digit', minute: '2-digit' };

/** An axis label (`"09:00"`, `"Nov 27"`), or with `long` a tooltip title (`"Nov 27, 09:00"`, `"Nov 27, 2026"`). */
export function formatBucket(ms: number, bucket: Bucket, offset: number, long = false): string {
  if (bucket === 'day') return local(ms, offset, long ? { ...DAY_LABEL, year: 'numeric' } : DAY_LABEL);
  return local(ms, offset, long ? { ...DAY_LABEL, ...HOUR_LABEL } : HOUR_LABEL);
}

/** `"2026-11-27T09:11:50.257Z"` → `"11/27/2026, 11:11:50"` at offset +02:00 in English (`"2026/11/27 11:11:50"` in Chinese and Japanese). */
export function formatTime(iso: string | null, offset: number = browserOffset(Date.parse(iso ?? ''))): string {
  if (!iso) return '—';
  const ms = Date.parse(iso);
  if (Number.isNaN(ms)) return iso;
  return local(ms, offset, { year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit' });
}

/** The value of an `<input type="datetime-local">` for `ms`, in local time at `offset`. */
export function toLocalInput(ms: number, offset: number = browserOffset(ms)): string {
  const p = parts(ms, offset);
  return `${p.y}-${p.mm}-${p.dd}T${p.hh}:${p.mi}`;
}

/** An `<input type="datetime-local">` value as an ISO-8601 instant, or undefined when empty. */
export function fromLocalInput(value: string): string | undefined {
  if (!value) return undefined;
  const ms = new Date(value).getTime();
  return Number.isNaN(ms) ? undefined : new Date(ms).toISOString();
}
