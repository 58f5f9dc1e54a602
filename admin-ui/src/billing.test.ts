import { describe, expect, it } from 'vitest';
import { checkoutReturn, codesCsv, codesFileName, entryKind, expiring, formatPrice, majorToMinor, minorToMajor, timeUntil, type CreditBucket } from './billing';

describe('prices in minor units', () => {
  it('formats each currency with its own minor unit, exactly', () => {
    expect(formatPrice(2000, 'usd')).toBe('$20.00');
    expect(formatPrice(5, 'eur')).toBe('€0.05');
    expect(formatPrice(500, 'jpy')).toBe('¥500');
    expect(formatPrice(99_999_999, 'usd')).toBe('$999,999.99');
    expect(minorToMajor(1234, 'kwd')).toBe('1.234');
    expect(formatPrice(2000, 'zzz')).toMatch(/^ZZZ\s20\.00$/);
    expect(formatPrice(1234, 'kwd')).toMatch(/^KWD\s1\.234$/);
  });

  it('reads what an operator types back into minor units, refusing what the currency cannot charge', () => {
    expect(majorToMinor('20', 'usd')).toBe(2000);
    expect(majorToMinor(' 19.9 ', 'usd')).toBe(1990);
    expect(majorToMinor('0.07', 'eur')).toBe(7);
    expect(majorToMinor('500', 'jpy')).toBe(500);
    expect(majorToMinor('500.5', 'jpy')).toBeNull();
    expect(majorToMinor('1.001', 'usd')).toBeNull();
    expect(majorToMinor('-1', 'usd')).toBeNull();
    expect(majorToMinor('1e3', 'usd')).toBeNull();
    expect(majorToMinor('', 'usd')).toBeNull();
  });
});

describe('ledger entries', () => {
  it('names purchases, refunds and redemptions by the event they answer', () => {
    expect(entryKind({ kind: 'grant', ref: 'stripe:cs_test_1' })).toBe('purchase');
    expect(entryKind({ kind: 'adjustment', ref: 'stripe-refund:pay_1:500' })).toBe('refund');
    expect(entryKind({ kind: 'grant', ref: 'redemption:rdm_1' })).toBe('redemption');
    expect(entryKind({ kind: 'grant', ref: null })).toBe('grant');
    expect(entryKind({ kind: 'usage' })).toBe('usage');
    expect(entryKind({ kind: 'expiry', ref: 'expiry:7' })).toBe('expiry');
    expect(entryKind({ kind: 'adjustment', ref: null })).toBe('adjustment');
  });
});

describe('minted codes as CSV', () => {
  const batch = { id: 'rcb_1', label: 'Launch, "week"', credits: '12.5', uses: 1, once_per_user: true, expires_at: '2030-01-01T00:00:00.000Z' };

  it('has one row per code with what it is worth, quoted where needed', () => {
    expect(codesCsv(['HUB-AAAA-BBBB-CCCC', 'HUB-DDDD-EEEE-FFFF'], batch)).toBe(
      'code,credits,uses,once_per_user,expires_at,label,batch\r\n' +
        'HUB-AAAA-BBBB-CCCC,12.5,1,true,2030-01-01T00:00:00.000Z,"Launch, ""week""",rcb_1\r\n' +
        'HUB-DDDD-EEEE-FFFF,12.5,1,true,2030-01-01T00:00:00.000Z,"Launch, ""week""",rcb_1\r\n',
    );
  });

  it('names the file after the label, safely, else the batch', () => {
    expect(codesFileName(batch)).toBe('hub-codes-Launch-week.csv');
    expect(codesFileName({ id: 'rcb_9', label: null })).toBe('hub-codes-rcb_9.csv');
    expect(codesFileName({ id: 'rcb_9', label: '../..' })).toBe('hub-codes-..-...csv');
  });
});

describe('expiring credit buckets', () => {
  const now = Date.parse('2030-01-01T00:00:00Z');
  const bucket = (remaining: string, expires_at: string): CreditBucket => ({
    id: expires_at,
    amount: '10',
    remaining,
    expires_at,
    reason: null,
    created_at: '2029-12-01T00:00:00Z',
  });

  it('says how long is left', () => {
    expect(timeUntil('2030-01-01T00:30:00Z', now)).toBe('within the hour');
    expect(timeUntil('2030-01-01T01:00:00Z', now)).toBe('in 1 hour');
    expect(timeUntil('2030-01-02T05:00:00Z', now)).toBe('in 29 hours');
    expect(timeUntil('2030-01-10T00:00:00Z', now)).toBe('in 9 days');
    expect(timeUntil('2029-12-31T00:00:00Z', now)).toBe('expired');
  });

  it('sums exactly what expires within the window and finds the soonest', () => {
    const buckets = [
      bucket('0.000000001', '2030-01-20T00:00:00Z'),
      bucket('2.1', '2030-01-05T00:00:00Z'),
      bucket('0', '2030-01-02T00:00:00Z'),
      bucket('7', '2030-06-01T00:00:00Z'),
      bucket('3', '2029-12-31T00:00:00Z'),
    ];
    expect(expiring(buckets, now)).toEqual({ amount: '2.100000001', next: '2030-01-05T00:00:00Z', buckets: 2 });
    expect(expiring([], now)).toEqual({ amount: '0', next: null, buckets: 0 });
  });
});

describe('the return from checkout', () => {
  it('reads only the two outcomes Hub sends customers back with', () => {
    expect(checkoutReturn(new URLSearchParams('checkout=success'))).toBe('success');
    expect(checkoutReturn(new URLSearchParams('checkout=cancel'))).toBe('cancel');
    expect(checkoutReturn(new URLSearchParams('checkout=paid'))).toBeNull();
    expect(checkoutReturn(new URLSearchParams(''))).toBeNull();
  });
});
