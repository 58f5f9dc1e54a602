/**
 * The settings form's model: each setting as the form edits it (a draft of
 * strings and switches), and the PATCH body of only what changed.
 */

import type { Settings } from './api';
import { normalize } from './money';

/** How a setting is edited and sent. */
type Kind =
  /** Text sent trimmed. */
  | 'text'
  /** Text where empty means none (`null`). */
  | 'optional'
  /** A decimal amount, compared by value. */
  | 'money'
  | 'integer'
  | 'switch'
  /** Write-only: the field starts empty and is sent only when filled. */
  | 'secret'
  /** A list of email domains, typed comma-separated. */
  | 'domains';

const KINDS = {
  billing_enabled: 'switch',
  starter_credits: 'money',
  credit_price_usd: 'money',
  margin_percent: 'money',
  currency_prefix: 'text',
  payment_link: 'optional',
  max_attempts: 'integer',
  default_max_output_tokens: 'integer',
  hold_ttl_seconds: 'integer',
  call_retention_days: 'integer',
  response_cache_enabled: 'switch',
  response_cache_ttl_seconds: 'integer',
  response_cache_hit_fraction: 'money',
  response_cache_shared: 'switch',
  response_cache_max_mb: 'integer',
  response_cache_deterministic_only: 'switch',
  app_name: 'text',
  app_url: 'optional',
  oidc_issuer: 'optional',
  oidc_client_id: 'optional',
  oidc_client_secret: 'secret',
  oidc_scopes: 'text',
  signup_open: 'switch',
  signup_email_domains: 'domains',
  smtp_host: 'optional',
  smtp_port: 'integer',
  smtp_security: 'text',
  smtp_username: 'optional',
  smtp_password: 'secret',
  smtp_from: 'optional',
  session_days: 'integer',
  stripe_secret_key: 'secret',
  stripe_webhook_secret: 'secret',
  stripe_api_base: 'optional',
} as const satisfies Record<string, Kind>;

export type SettingKey = keyof typeof KINDS;
export type SwitchKey = { [K in SettingKey]: (typeof KINDS)[K] extends 'switch' ? K : never }[SettingKey];
export type TextKey = Exclude<SettingKey, SwitchKey>;
export type Draft = Record<TextKey, string> & Record<SwitchKey, boolean>;

const SETTING_KEYS = Object.keys(KINDS) as SettingKey[];

/** `"a.com, @B.org\nc.net"` → `["a.com", "b.org", "c.net"]`: commas, spaces or lines between, no repeats. */
export function parseDomains(text: string): string[] {
  const domains = text
    .split(/[\s,;]+/)
    .map((d) => d.replace(/^@/, '').toLowerCase())
    .filter(Boolean);
  return [...new Set(domains)];
}

export function draftOf(s: Settings): Draft {
  return {
    billing_enabled: s.billing_enabled,
    starter_credits: normalize(s.starter_credits),
    credit_price_usd: normalize(s.credit_price_usd),
    margin_percent: normalize(s.margin_percent),
    currency_prefix: s.currency_prefix,
    payment_link: s.payment_link ?? '',
    max_attempts: String(s.max_attempts),
    default_max_output_tokens: String(s.default_max_output_tokens),
    hold_ttl_seconds: String(s.hold_ttl_seconds),
    call_retention_days: String(s.call_retention_days),
    response_cache_enabled: s.response_cache_enabled,
    response_cache_ttl_seconds: String(s.response_cache_ttl_seconds),
    response_cache_hit_fraction: normalize(s.response_cache_hit_fraction),
    response_cache_shared: s.response_cache_shared,
    response_cache_max_mb: String(s.response_cache_max_mb),
    response_cache_deterministic_only: s.response_cache_deterministic_only,
    app_name: s.app_name,
    app_url: s.app_url ?? '',
    oidc_issuer: s.oidc_issuer ?? '',
    oidc_client_id: s.oidc_client_id ?? '',
    oidc_client_secret: '',
    oidc_scopes: s.oidc_scopes,
    signup_open: s.signup_open,
    signup_email_domains: s.signup_email_domains.join(', '),
    smtp_host: s.smtp_host ?? '',
    smtp_port: String(s.smtp_port),
    smtp_security: s.smtp_security,
    smtp_username: s.smtp_username ?? '',
    smtp_password: '',
    smtp_from: s.smtp_from ?? '',
    session_days: String(s.session_days),
    stripe_secret_key: '',
    stripe_webhook_secret: '',
    stripe_api_base: s.stripe_api_base,
  };
}

/** What the form sends for a setting's draft value. */
function sent(kind: Kind, v: string | boolean): unknown {
  if (typeof v === 'boolean') return v;
  const text = v.trim();
  switch (kind) {
    case 'optional':
      return text || null;
    case 'money':
      // Compared by value ("1.50" is "1.5"); anything else goes as typed, for Hub to explain.
      try {
        return normalize(text);
      } catch {
        return text;
      }
    case 'integer':
      return /^\d+$/.test(text) ? Number(text) : text;
    case 'domains':
      return parseDomains(text);
    default:
      return text;
  }
}

/** The PATCH body: each setting whose value differs from `initial`'s, and each secret typed in. */
export function changes(draft: Draft, initial: Settings): Record<string, unknown> {
  const base = draftOf(initial);
  const body: Record<string, unknown> = {};
  for (const k of SETTING_KEYS) {
    const kind: Kind = KINDS[k];
    const value = sent(kind, draft[k]);
    if (kind === 'secret' ? value !== '' : JSON.stringify(value) !== JSON.stringify(sent(kind, base[k]))) body[k] = value;
  }
  return body;
}

/** The drafts of the write-only settings, emptied (after they were saved). */
export const NO_SECRETS = { oidc_client_secret: '', smtp_password: '', stripe_secret_key: '', stripe_webhook_secret: '' } as const;

/** The redirect URI to register at the OpenID provider. */
export function callbackUrl(appUrl: string, origin: string): string {
  return `${(appUrl.trim() || origin).replace(/\/+$/, '')}/auth/oidc/callback`;
}

/** Where Stripe must send its events for this Hub. */
export function stripeWebhookUrl(appUrl: string, origin: string): string {
  return `${(appUrl.trim() || origin).replace(/\/+$/, '')}/api/payments/stripe/webhook`;
}
