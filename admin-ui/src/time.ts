/** Dates: the browser's UTC offset, usage buckets aligned to it, and formatting. */

export type Bucket = 'hour' | 'day';
export type Preset = '24h' | '7d' | '30d' | '90d';

const MINUTE = 60_000;
const SIZE: Record<Bucket, number> = { hour: 3_600_000, day: 86_400_000 };
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

export const PRESETS: Record<Preset, { label: string; bucket: Bucket; count: number }> = {
  '24h': { label: 'Last 24 hours', bucket: 'hour', count: 24 },
  '7d': { label: 'Last 7 days', bucket: 'day', count: 7 },
  '30d': { label: 'Last 30 days', bucket: 'day', count: 30 },
  '90d': { label: 'Last 90 days', bucket: 'day', count: 90 },
};

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
    mon: MONTHS[d.getUTCMonth()],
    mm: pad(d.getUTCMonth() + 1),
    dd: pad(d.getUTCDate()),
    day: d.getUTCDate(),
    hh: pad(d.getUTCHours()),
    mi: pad(d.getUTCMinutes()),
    ss: pad(d.getUTCSeconds()),
  };
}

/** An axis label (`"09:00"`, `"Nov 27"`), or with `long` a tooltip title (`"Nov 27, 09:00"`). */
export function formatBucket(ms: number, bucket: Bucket, offset: number, long = false): string {
  const p = parts(ms, offset);
  if (bucket === 'day') return `${p.mon} ${p.day}${long ? `, ${p.y}` : ''}`;
  return long ? `${p.mon} ${p.day}, ${p.hh}:00` : `${p.hh}:00`;
}

/** `"2026-11-27T09:11:50.257Z"` → `"2026-11-27 11:11:50"` at offset +02:00. */
export function formatTime(iso: string | null, offset: number = browserOffset(Date.parse(iso ?? ''))): string {
  if (!iso) return '—';
  const ms = Date.parse(iso);
  if (Number.isNaN(ms)) return iso;
  const p = parts(ms, offset);
  return `${p.y}-${p.mm}-${p.dd} ${p.hh}:${p.mi}:${p.ss}`;
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
