/** What an audit entry changed, field by field, for the audit log page. */

import { t, type MessageKey } from './i18n';

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
  'alias',
  'user',
  'key',
  'redemption_codes',
  'credit_pack',
  'webhook',
  'webhook_delivery',
  'settings',
  'team',
] as const;

const RESOURCE_NAMES: Record<(typeof RESOURCES)[number], MessageKey> = {
  provider: 'audit.resource.provider',
  credential: 'audit.resource.credential',
  model: 'audit.resource.model',
  alias: 'audit.resource.alias',
  user: 'audit.resource.user',
  key: 'audit.resource.key',
  redemption_codes: 'audit.resource.redemption_codes',
  credit_pack: 'audit.resource.credit_pack',
  webhook: 'audit.resource.webhook',
  webhook_delivery: 'audit.resource.webhook_delivery',
  settings: 'audit.resource.settings',
  team: 'audit.resource.team',
};

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
  'add_member',
  'remove_member',
  'sync',
] as const;

const ACTION_NAMES: Record<(typeof ACTIONS)[number], MessageKey> = {
  create: 'audit.action.create',
  update: 'audit.action.update',
  delete: 'audit.action.delete',
  revoke: 'audit.action.revoke',
  test: 'audit.action.test',
  grant: 'audit.action.grant',
  mint: 'audit.action.mint',
  disable: 'audit.action.disable',
  rotate_secret: 'audit.action.rotate_secret',
  send_test: 'audit.action.send_test',
  resend: 'audit.action.resend',
  add_member: 'audit.action.add_member',
  remove_member: 'audit.action.remove_member',
  sync: 'audit.action.sync',
};

/** A resource's name in the site's language; one Hub adds later as Hub names it. */
export function resourceName(resource: string): string {
  const key = RESOURCE_NAMES[resource as (typeof RESOURCES)[number]];
  return key ? t(key) : resource;
}

/** An action's name in the site's language; one Hub adds later as Hub names it. */
export function actionName(action: string): string {
  const key = ACTION_NAMES[action as (typeof ACTIONS)[number]];
  return key ? t(key) : action;
}
