import { describe, expect, it } from 'vitest';
import { parseJson } from './json';
import {
  compare,
  formatMoney,
  fromNanos,
  marginOf,
  normalize,
  perMillion,
  rateFromCost,
  sum,
  toChartNumber,
  toNanos,
} from './money';

describe('decimals', () => {
  it('parses to nano-units exactly', () => {
    expect(toNanos('1.5')).toBe(1_500_000_000n);
    expect(toNanos('0.000000001')).toBe(1n);
    expect(toNanos('-0.000123')).toBe(-123_000n);
    expect(toNanos('4.2e-6')).toBe(4_200n);
    expect(toNanos('2.5E-7')).toBe(250n);
    expect(toNanos('123456789.123456789')).toBe(123_456_789_123_456_789n);
    expect(toNanos('.5')).toBe(500_000_000n);
    expect(toNanos(3)).toBe(3_000_000_000n);
  });

  it('rounds past nine decimals half away from zero', () => {
    expect(toNanos('0.0000000015')).toBe(2n);
    expect(toNanos('0.0000000014')).toBe(1n);
    expect(toNanos('-0.0000000015')).toBe(-2n);
  });

  it('refuses what is not a decimal', () => {
    for (const bad of ['', 'abc', '1.2.3', '--1', 'e5', '.', '1e999']) expect(() => toNanos(bad)).toThrow();
    expect(toNanos(' 12.5 ')).toBe(12_500_000_000n);
  });

  it('prints canonically', () => {
    expect(fromNanos(0n)).toBe('0');
    expect(normalize('1.50')).toBe('1.5');
    expect(normalize('4.2e-6')).toBe('0.0000042');
    expect(normalize('-0.000000001')).toBe('-0.000000001');
    expect(normalize('1e6')).toBe('1000000');
  });

  it('adds without float error', () => {
    expect(sum(['0.1', '0.2'])).toBe('0.3');
    expect(sum(['999999999.999999999', '0.000000001'])).toBe('1000000000');
    expect(sum([])).toBe('0');
    expect(sum(['-1', '0.000000001'])).toBe('-0.999999999');
  });
});

describe('ordering and drawing', () => {
  it('orders amounts a double cannot tell apart', () => {
    // Both are 1234567.1234567891 as doubles.
    expect(compare('1234567.123456789', '1234567.123456788')).toBe(1);
    expect(compare('1234567.123456788', '1234567.123456789')).toBe(-1);
    expect(compare('0.1', '1e-1')).toBe(0);
    expect(['2', '10', '1234567.123456789', '1234567.123456788'].sort(compare)).toEqual([
      '2',
      '10',
      '1234567.123456788',
      '1234567.123456789',
    ]);
  });

  it('gives bar lengths, never text', () => {
    expect(toChartNumber('2.5')).toBe(2.5);
    expect(toChartNumber('0')).toBe(0);
  });
});

describe('formatMoney', () => {
  it('groups thousands and keeps every decimal', () => {
    expect(formatMoney('1234567.123456789')).toBe('1,234,567.123456789');
    expect(formatMoney('5', { prefix: '$' })).toBe('$5.00');
    expect(formatMoney('-1234.5', { prefix: '$' })).toBe('-$1,234.50');
    expect(formatMoney('0.0000042', { prefix: '€' })).toBe('€0.0000042');
    expect(formatMoney('4.2e-6')).toBe('0.0000042');
  });

  it('rounds to fewer decimals on request', () => {
    expect(formatMoney('0.125', { maxDecimals: 2 })).toBe('0.13');
    expect(formatMoney('1.999', { maxDecimals: 2 })).toBe('2.00');
    expect(formatMoney('7', { minDecimals: 0 })).toBe('7');
  });

  it('never goes through a float', () => {
    // 2^53 + 1 credits and nine decimals: a double cannot hold it.
    expect(formatMoney('9007199254740993.000000001')).toBe('9,007,199,254,740,993.000000001');
  });
});

describe('rates and margins', () => {
  it('sets a rate from cost, margin and credit price', () => {
    expect(rateFromCost('0.15', '0', '1')).toBe('0.15');
    expect(rateFromCost('0.15', '20', '1')).toBe('0.18');
    expect(rateFromCost('2.5', '10', '0.01')).toBe('275');
    expect(rateFromCost('1', '0', '3')).toBe('0.333333333');
    expect(() => rateFromCost('1', '0', '0')).toThrow();
  });

  it('computes the margin of a rate', () => {
    expect(marginOf('0.18', '0.15', '1')).toBe('20');
    expect(marginOf('275', '2.5', '0.01')).toBe('10');
    expect(marginOf('0.333333333', '1', '3')).toBe('0');
    expect(marginOf('1', '0', '1')).toBeNull();
  });

  it('turns a cost per token into a cost per million tokens exactly', () => {
    expect(perMillion('1.5e-07')).toBe('0.15');
    expect(perMillion('2.5e-06')).toBe('2.5');
    expect(perMillion('1.234567e-12')).toBe('0.000001235');
  });
});

describe('parseJson', () => {
  it('passes the decimal strings Hub sends through unchanged', () => {
    const v = parseJson<{ balance: string; held: string; calls: number }>(
      '{"balance":"1234567.123456789","held":"0","calls":3}',
    );
    expect(v).toEqual({ balance: '1234567.123456789', held: '0', calls: 3 });
    expect(formatMoney(v.balance, { prefix: '$' })).toBe('$1,234,567.123456789');
  });

  it('keeps money sent as a number as its literal text', () => {
    const v = parseJson<{ balance: string; held: string; calls: number; data: { credits: string; ttfb_ms: number }[] }>(
      '{"balance":1234567.123456789,"held":0,"calls":3,"data":[{"credits":4.2e-6,"ttfb_ms":12}]}',
    );
    expect(v.balance).toBe('1234567.123456789');
    expect(v.held).toBe('0');
    expect(v.calls).toBe(3);
    expect(v.data[0]).toEqual({ credits: '4.2e-6', ttfb_ms: 12 });
  });

  it('leaves strings alone, escapes included', () => {
    const v = parseJson<{ reason: string; amount: string }>('{"reason":"a \\"quoted\\" 5, \\"amount\\":7","amount":-5}');
    expect(v).toEqual({ reason: 'a "quoted" 5, "amount":7', amount: '-5' });
  });

  it('takes another key rule', () => {
    const v = parseJson<Record<string, { input_cost_per_token: string; max_tokens: number }>>(
      '{"gpt-x": {"input_cost_per_token": 1.5e-07, "max_tokens": 16384}}',
      (k) => k.includes('cost'),
    );
    expect(v['gpt-x']).toEqual({ input_cost_per_token: '1.5e-07', max_tokens: 16384 });
  });
});
