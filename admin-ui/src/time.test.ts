import { describe, expect, it } from 'vitest';
import { alignBuckets, bucketStart, formatBucket, formatOffset, formatTime, presetRange, toLocalInput } from './time';
import { takeEvents } from './sse';

const at = (iso: string) => Date.parse(iso);

describe('offsets', () => {
  it('formats the tz parameter', () => {
    expect(formatOffset(0)).toBe('+00:00');
    expect(formatOffset(120)).toBe('+02:00');
    expect(formatOffset(330)).toBe('+05:30');
    expect(formatOffset(-240)).toBe('-04:00');
    expect(formatOffset(-570)).toBe('-09:30');
  });
});

describe('buckets', () => {
  it('aligns hours and days to local time', () => {
    const t = at('2026-11-27T09:41:07Z');
    expect(bucketStart(t, 'hour', 0)).toBe(at('2026-11-27T09:00:00Z'));
    expect(bucketStart(t, 'hour', 330)).toBe(at('2026-11-27T09:30:00Z'));
    expect(bucketStart(t, 'day', 0)).toBe(at('2026-11-27T00:00:00Z'));
    // 09:41Z is 11:41 at +02:00: the local day began at 22:00Z the day before.
    expect(bucketStart(t, 'day', 120)).toBe(at('2026-11-26T22:00:00Z'));
    // 09:41Z is 23:41 on the 26th at -10:00.
    expect(bucketStart(t, 'day', -600)).toBe(at('2026-11-26T10:00:00Z'));
  });

  it('lays out presets ending with the current bucket', () => {
    const now = at('2026-11-27T09:41:07Z');
    const day = presetRange('24h', now, 0);
    expect(day.bucket).toBe('hour');
    expect(day.starts).toHaveLength(24);
    expect(day.starts[23]).toBe(at('2026-11-27T09:00:00Z'));
    expect(day.from).toBe(at('2026-11-26T10:00:00Z'));
    expect(day.to).toBe(at('2026-11-27T10:00:00Z'));
    const week = presetRange('7d', now, 120);
    expect(week.starts).toHaveLength(7);
    expect(week.from).toBe(at('2026-11-20T22:00:00Z'));
    expect(week.to).toBe(at('2026-11-27T22:00:00Z'));
    expect(presetRange('30d', now, 0).starts).toHaveLength(30);
    expect(presetRange('90d', now, 0).starts).toHaveLength(90);
  });

  it('lays rows on their buckets', () => {
    const starts = [at('2026-11-27T08:00:00Z'), at('2026-11-27T09:00:00Z'), at('2026-11-27T10:00:00Z')];
    const rows = [{ group: '2026-11-27T09:00:00.000Z', calls: 2 }];
    expect(alignBuckets(starts, rows)).toEqual([undefined, rows[0], undefined]);
  });
});

describe('formatting', () => {
  it('labels buckets in local time', () => {
    const t = at('2026-11-26T22:00:00Z');
    expect(formatBucket(t, 'hour', 120)).toBe('00:00');
    expect(formatBucket(t, 'hour', 120, true)).toBe('Nov 27, 00:00');
    expect(formatBucket(t, 'day', 120)).toBe('Nov 27');
    expect(formatBucket(t, 'day', 120, true)).toBe('Nov 27, 2026');
  });

  it('prints times', () => {
    expect(formatTime('2026-11-27T09:11:50.257Z', 120)).toBe('11/27/2026, 11:11:50');
    expect(formatTime('2026-01-01T00:30:00Z', -60)).toBe('12/31/2025, 23:30:00');
    expect(formatTime(null)).toBe('—');
    expect(toLocalInput(at('2026-11-27T09:11:50Z'), 330)).toBe('2026-11-27T14:41');
  });
});

describe('server-sent events', () => {
  it('splits complete events and keeps the rest', () => {
    const { data, rest } = takeEvents('data: {"a":1}\n\ndata: [DONE]\r\n\r\ndata: {"b"');
    expect(data).toEqual(['{"a":1}', '[DONE]']);
    expect(rest).toBe('data: {"b"');
    expect(takeEvents(': keep-alive\n\n').data).toEqual([]);
  });
});
