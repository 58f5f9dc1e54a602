/**
 * A customer's notification choices as the account page edits them: mail on
 * or off, and the low-balance threshold as the operator's default, never, or
 * an exact amount of their own.
 */

import type { NotificationPrefs } from './api';
import { t } from './i18n';
import { compare, normalize, type Decimal } from './money';

/** `default`: the operator's threshold (null); `never`: no notice (`"0"`); `custom`: an amount. */
export type ThresholdMode = 'default' | 'never' | 'custom';

export interface PrefsDraft {
  email_low_balance: boolean;
  email_receipts: boolean;
  mode: ThresholdMode;
  /** The custom threshold as typed. */
  amount: string;
}

export function prefsDraft(p: NotificationPrefs): PrefsDraft {
  const t = p.low_balance_threshold;
  const mode: ThresholdMode = t === null ? 'default' : compare(t, '0') === 0 ? 'never' : 'custom';
  return { email_low_balance: p.email_low_balance, email_receipts: p.email_receipts, mode, amount: mode === 'custom' ? t! : '' };
}

/** At most 9 decimals, as Hub keeps credits: more would be rounded, so it is refused instead. */
const AMOUNT = /^\d+(\.\d{1,9})?$|^\.\d{1,9}$/;

/** The threshold Hub takes for the draft; throws a message naming the field when the amount is not one. */
export function thresholdValue(mode: ThresholdMode, amount: string): Decimal | null {
  if (mode === 'default') return null;
  if (mode === 'never') return '0';
  const text = amount.trim();
  if (!AMOUNT.test(text)) throw new Error(t('prefs.badAmount'));
  const value = normalize(text);
  if (value === '0') throw new Error(t('prefs.zero'));
  return value;
}

/** The PATCH body: only what changed (the threshold compared by value). */
export function prefsPatch(before: NotificationPrefs, draft: PrefsDraft): Record<string, unknown> {
  const patch: Record<string, unknown> = {};
  if (draft.email_low_balance !== before.email_low_balance) patch.email_low_balance = draft.email_low_balance;
  if (draft.email_receipts !== before.email_receipts) patch.email_receipts = draft.email_receipts;
  const threshold = thresholdValue(draft.mode, draft.amount);
  const was = before.low_balance_threshold;
  const same = threshold === null || was === null ? threshold === was : compare(threshold, was) === 0;
  if (!same) patch.low_balance_threshold = threshold;
  return patch;
}
