import { describe, expect, it } from 'vitest';
import type { Settings } from './api';
import { callbackUrl, changes, draftOf, parseDomains, stripeWebhookUrl } from './settings';

const SETTINGS: Settings = {
  billing_enabled: true,
  starter_credits: '10',
  credit_price_usd: '0.01',
  margin_percent: '20',
  currency_prefix: '$',
  payment_link: null,
  max_attempts: 3,
  default_max_output_tokens: 4096,
  hold_ttl_seconds: 600,
  call_retention_days: 30,
  response_cache_enabled: false,
  response_cache_ttl_seconds: 3600,
  response_cache_hit_fraction: '0',
  response_cache_shared: false,
  response_cache_max_mb: 256,
  response_cache_deterministic_only: false,
  app_name: 'Hub',
  app_url: null,
  oidc_issuer: 'https://id.example.com',
  oidc_client_id: 'hub',
  oidc_client_secret_set: true,
  oidc_scopes: 'openid email profile',
  signup_open: false,
  signup_email_domains: ['example.com', 'example.org'],
  smtp_host: null,
  smtp_port: 587,
  smtp_security: 'starttls',
  smtp_username: null,
  smtp_password_set: false,
  smtp_from: null,
  session_days: 30,
  stripe_secret_key_set: false,
  stripe_webhook_secret_set: true,
  stripe_api_base: 'https://api.stripe.com',
  margin_floor_percent: null,
  below_cost_action: 'flag',
  price_sync_url: null,
  price_sync_format: 'litellm',
  price_sync_interval_hours: 0,
};

describe('parseDomains', () => {
  it('splits on commas, spaces and lines, drops @ and repeats, lower-cases', () => {
    expect(parseDomains(' Example.com, @b.org\nc.net;;example.com ')).toEqual(['example.com', 'b.org', 'c.net']);
    expect(parseDomains(' , ')).toEqual([]);
  });
});

describe('changes', () => {
  it('is empty for the settings as loaded', () => {
    expect(changes(draftOf(SETTINGS), SETTINGS)).toEqual({});
  });

  it('sends only what changed, typed as Hub takes it', () => {
    const draft = {
      ...draftOf(SETTINGS),
      starter_credits: '10.50',
      signup_open: true,
      signup_email_domains: 'example.org',
      smtp_port: '465',
      smtp_host: ' smtp.example.com ',
      oidc_client_id: '',
    };
    expect(changes(draft, SETTINGS)).toEqual({
      starter_credits: '10.5',
      signup_open: true,
      signup_email_domains: ['example.org'],
      smtp_port: 465,
      smtp_host: 'smtp.example.com',
      oidc_client_id: null,
    });
  });

  it('treats the same value written differently as unchanged', () => {
    const draft = { ...draftOf(SETTINGS), starter_credits: '10.000', signup_email_domains: 'example.com,example.org' };
    expect(changes(draft, SETTINGS)).toEqual({});
  });

  it('sends a secret only when one is typed', () => {
    expect(changes({ ...draftOf(SETTINGS), oidc_client_secret: '  ' }, SETTINGS)).toEqual({});
    expect(changes({ ...draftOf(SETTINGS), smtp_password: 'pw' }, SETTINGS)).toEqual({ smtp_password: 'pw' });
  });

  it('leaves values Hub must refuse as typed, for its error to name them', () => {
    expect(changes({ ...draftOf(SETTINGS), session_days: 'soon', margin_percent: 'lots' }, SETTINGS)).toEqual({
      session_days: 'soon',
      margin_percent: 'lots',
    });
  });
});

describe('Stripe settings', () => {
  it('sends the keys only when typed, and an emptied API address as null (Stripe\'s own)', () => {
    expect(changes({ ...draftOf(SETTINGS), stripe_secret_key: ' sk_test_1 ' }, SETTINGS)).toEqual({ stripe_secret_key: 'sk_test_1' });
    expect(changes({ ...draftOf(SETTINGS), stripe_api_base: '' }, SETTINGS)).toEqual({ stripe_api_base: null });
    expect(stripeWebhookUrl('', 'http://127.0.0.1:8080')).toBe('http://127.0.0.1:8080/api/payments/stripe/webhook');
    expect(stripeWebhookUrl('https://hub.example.com/', 'http://x')).toBe('https://hub.example.com/api/payments/stripe/webhook');
  });
});

describe('callbackUrl', () => {
  it('is under the public URL, else this origin', () => {
    expect(callbackUrl('https://hub.example.com/', 'http://127.0.0.1:8080')).toBe('https://hub.example.com/auth/oidc/callback');
    expect(callbackUrl(' ', 'http://127.0.0.1:8080')).toBe('http://127.0.0.1:8080/auth/oidc/callback');
  });
});
