import { describe, expect, it } from 'vitest';
import type { NotificationPrefs } from './api';
import { prefsDraft, prefsPatch, thresholdValue } from './prefs';

const PREFS: NotificationPrefs = {
  email_low_balance: true,
  email_receipts: true,
  low_balance_threshold: null,
  default_low_balance_threshold: '5',
  email_available: true,
};

describe('notification preferences', () => {
  it("reads the threshold as the operator's default, never, or the customer's own", () => {
    expect(prefsDraft(PREFS)).toMatchObject({ mode: 'default', amount: '' });
    expect(prefsDraft({ ...PREFS, low_balance_threshold: '0' })).toMatchObject({ mode: 'never' });
    expect(prefsDraft({ ...PREFS, low_balance_threshold: '2.5' })).toMatchObject({ mode: 'custom', amount: '2.5' });
  });

  it('sends the threshold exactly, and refuses what is not an amount instead of rounding it', () => {
    expect(thresholdValue('default', 'ignored')).toBeNull();
    expect(thresholdValue('never', '')).toBe('0');
    expect(thresholdValue('custom', ' 2.50 ')).toBe('2.5');
    expect(thresholdValue('custom', '1234567.123456789')).toBe('1234567.123456789');
    for (const bad of ['', 'abc', '-1', '1e3', '0.0000000001', '1,5']) {
      expect(() => thresholdValue('custom', bad), bad).toThrow(/^Threshold:/);
    }
    expect(() => thresholdValue('custom', '0')).toThrow('Threshold: more than zero');
  });

  it('patches only what changed', () => {
    const draft = prefsDraft(PREFS);
    expect(prefsPatch(PREFS, draft)).toEqual({});
    expect(prefsPatch(PREFS, { ...draft, email_low_balance: false })).toEqual({ email_low_balance: false });
    expect(prefsPatch(PREFS, { ...draft, mode: 'never' })).toEqual({ low_balance_threshold: '0' });
    const own = { ...PREFS, low_balance_threshold: '2.5' };
    expect(prefsPatch(own, { ...prefsDraft(own), amount: '2.500' })).toEqual({});
    expect(prefsPatch(own, { ...prefsDraft(own), mode: 'default' })).toEqual({ low_balance_threshold: null });
  });
});
