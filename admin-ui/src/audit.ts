/** What an audit entry changed, field by field, for the audit log page. */

export interface FieldChange {
  field: string;
  before: unknown;
  after: unknown;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The top-level fields whose values differ between before and after (`updated_at` aside: it always moves). */
export function changedFields(before: unknown, after: unknown): FieldChange[] {
  const b = isObject(before) ? before : {};
  const a = isObject(after) ? after : {};
  const fields = [...new Set([...Object.keys(b), ...Object.keys(a)])].filter((f) => f !== 'updated_at');
  return fields
    .filter((f) => JSON.stringify(b[f]) !== JSON.stringify(a[f]))
    .map((f) => ({ field: f, before: b[f], after: a[f] }));
}

/** A value in one line: strings as they are, the rest as JSON, absent as a dash. */
export function shortValue(v: unknown): string {
  if (v === undefined || v === null) return '—';
  return typeof v === 'string' ? v : JSON.stringify(v);
}

export const RESOURCES = [
  'provider',
  'credential',
  'model',
  'user',
  'key',
  'redemption_codes',
  'credit_pack',
  'webhook',
  'webhook_delivery',
  'settings',
] as const;

export const ACTIONS = [
  'create',
  'update',
  'delete',
  'revoke',
  'test',
  'grant',
  'mint',
  'disable',
  'rotate_secret',
  'send_test',
  'resend',
] as const;
