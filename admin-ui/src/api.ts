import type { Routing } from './aliases';
/** Hub's HTTP API: where it is, who is signed in, typed requests and shapes. */

import { t } from './i18n';
import { parseJson } from './json';
import type { Decimal } from './money';

const BASE_ITEM = 'hub.apiBase';
const KEY_ITEM = 'hub.apiKey';
export const SIGNED_OUT = 'hub-signed-out';

/** How requests say who is calling. */
export type Auth =
  /** An API key (operators), kept in local storage and sent as a bearer token. */
  | { kind: 'key'; key: string }
  /** The browser's session cookie (people who signed in); writes carry the session's CSRF token. */
  | { kind: 'session'; csrf: string }
  /** Nobody yet: the sign-in page's own requests. */
  | { kind: 'none' };

export interface Connection {
  /** The Hub URL, without a trailing slash; empty for this site's own origin. */
  base: string;
  auth: Auth;
}

/** Only the origin that served the site: its session cookie is not sent anywhere else. */
export const SITE: Connection = { base: '', auth: { kind: 'none' } };

/**
 * The signed-in session, in memory only: the cookie itself is HttpOnly, and
 * its CSRF token is learnt again from `/api/me` on every load.
 */
let session: Connection | null = null;

/** Takes `?api=URL` from the address into storage, then reads the stored base URL. */
export function storedBase(): string {
  const fromQuery = new URLSearchParams(location.search).get('api');
  if (fromQuery !== null) localStorage.setItem(BASE_ITEM, cleanBase(fromQuery));
  return localStorage.getItem(BASE_ITEM) ?? '';
}

export function cleanBase(url: string): string {
  return url.trim().replace(/\/+$/, '');
}

/** Who requests go out as: a stored API key first, else the browser's session. */
export function currentConnection(): Connection | null {
  const key = localStorage.getItem(KEY_ITEM);
  return key ? { base: storedBase(), auth: { kind: 'key', key } } : session;
}

export function keyConnection(base: string, key: string): Connection {
  return { base: cleanBase(base), auth: { kind: 'key', key: key.trim() } };
}

/** Remembers a key that `/api/me` accepted. */
export function saveKey(c: Connection): void {
  if (c.auth.kind !== 'key') return;
  localStorage.setItem(BASE_ITEM, c.base);
  localStorage.setItem(KEY_ITEM, c.auth.key);
}

/** Drops whoever was signed in, here only (the server already refused them). */
function forget(): void {
  localStorage.removeItem(KEY_ITEM);
  session = null;
  window.dispatchEvent(new Event(SIGNED_OUT));
}

/** Signs out: forgets the key, or ends the session at Hub (a write, so it carries the CSRF token). */
export async function signOut(): Promise<void> {
  const c = currentConnection();
  if (c?.auth.kind === 'session') {
    await fetch(c.base + '/auth/logout', requestInit(c, 'POST')).catch(() => undefined);
  }
  forget();
}

/**
 * Signs in from what the browser already holds: the stored key, else a
 * session cookie (after single sign-on or an email link). Null: nobody.
 */
export async function resume(): Promise<Me | null> {
  if (localStorage.getItem(KEY_ITEM)) {
    try {
      return await api<Me>('/api/me');
    } catch (e) {
      // A refused key is forgotten; then the session may still sign in.
      if (!(e instanceof ApiError && e.status === 401)) return null;
    }
  }
  try {
    const me = await api<Me>('/api/me', { connection: { ...SITE, auth: { kind: 'session', csrf: '' } } });
    if (!me.session) return null;
    session = { ...SITE, auth: { kind: 'session', csrf: me.session.csrf_token } };
    return me;
  } catch {
    return null;
  }
}

export class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly param: string | null = null,
  ) {
    super(message);
  }
}

type Query = Record<string, string | number | boolean | null | undefined>;

function withQuery(path: string, query: Query = {}): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  const s = q.toString();
  return s ? `${path}?${s}` : path;
}

/** Methods that change nothing: the only ones a session may send without its CSRF token. */
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/**
 * The method, headers and cookie policy of a request as `c`: a key as a
 * bearer token (and no cookies), a session as its cookie plus, on writes,
 * `X-CSRF-Token`. Every request to Hub is built here.
 */
export function requestInit(c: Connection, method: string, headers: Record<string, string> = {}): RequestInit {
  const h = { ...headers };
  if (c.auth.kind === 'key') h.authorization = `Bearer ${c.auth.key}`;
  if (c.auth.kind === 'session' && !SAFE_METHODS.has(method.toUpperCase())) h['x-csrf-token'] = c.auth.csrf;
  return { method, headers: h, credentials: c.auth.kind === 'session' ? 'same-origin' : 'omit' };
}

export interface SendOptions {
  method?: string;
  body?: unknown;
  query?: Query;
  headers?: Record<string, string>;
  signal?: AbortSignal;
  /** Who to call as; default the signed-in connection. Given, a 401 signs nobody out (a trial). */
  connection?: Connection;
}

/** Sends a JSON request as the signed-in caller; a 401 signs out. Rejects with ApiError when Hub cannot be reached. */
export async function send(path: string, opts: SendOptions = {}): Promise<Response> {
  const c = opts.connection ?? currentConnection();
  if (!c) throw new ApiError(t('api.notSignedIn'), 401);
  const method = opts.method ?? (opts.body === undefined ? 'GET' : 'POST');
  const headers = opts.body === undefined ? opts.headers : { 'content-type': 'application/json', ...opts.headers };
  let res: Response;
  try {
    res = await fetch(c.base + withQuery(path, opts.query), {
      ...requestInit(c, method, headers),
      body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
      signal: opts.signal,
    });
  } catch (e) {
    if (e instanceof DOMException && e.name === 'AbortError') throw e;
    throw new ApiError(t('api.unreachable', { base: c.base || location.origin }), 0);
  }
  if (res.status === 401 && !opts.connection) forget();
  return res;
}

/** The error a failed response carries (Hub's `{"error": {...}}`), as an ApiError. */
export function failure(res: Response, body: unknown): ApiError {
  const e = (body as { error?: { message?: string; param?: string | null } } | null)?.error;
  return new ApiError(e?.message ?? `${res.status} ${res.statusText}`.trim(), res.status, e?.param ?? null);
}

/** A JSON request; resolves to the parsed body (money as decimal strings), rejects with ApiError. */
export async function api<T>(path: string, opts: Omit<SendOptions, 'headers' | 'signal'> = {}): Promise<T> {
  const res = await send(path, opts);
  const text = await res.text();
  let body: unknown = null;
  try {
    body = text ? parseJson(text) : null;
  } catch {
    // not JSON: the status says what happened
  }
  if (!res.ok) throw failure(res, body);
  return body as T;
}

export function errorText(e: unknown): string {
  if (e instanceof ApiError) return e.param ? `${e.param}: ${e.message}` : e.message;
  return e instanceof Error ? e.message : String(e);
}

// ------------------------------------------------------------------ shapes

export type Role = 'owner' | 'admin' | 'member' | 'guest';
export const ROLES: Role[] = ['owner', 'admin', 'member', 'guest'];
export const isAdmin = (role: Role) => role === 'owner' || role === 'admin';

export interface Page<T> {
  data: T[];
  next_cursor: string | number | null;
}

export interface User {
  id: string;
  name: string;
  email: string | null;
  role: Role;
  balance: Decimal;
  held: Decimal;
  available: Decimal;
  disabled: boolean;
  created_at: string;
  updated_at: string;
}

export interface Me {
  user: User;
  role: Role;
  balance: Decimal;
  held: Decimal;
  available: Decimal;
  currency_prefix: string;
  billing_enabled: boolean;
  payment_link: string | null;
  /** Credit in expiring grants: what expires within `within_days`, and the next bucket to expire. */
  expiring?: {
    amount: Decimal;
    within_days: number;
    next_expires_at: string | null;
    next_amount: Decimal | null;
  };
  /** The key this request came with; null when signed in by session. */
  key: { id: string; label: string } | null;
  /** The browser's session; null when signed in with a key. */
  session: { id: string; csrf_token: string } | null;
  /** The teams the user is a member of, with their role in each. */
  teams?: { id: string; name: string; role: TeamRole }[];
}

// ------------------------------------------------------------------ teams

export type TeamRole = 'member' | 'admin';
export type BudgetPeriod = 'daily' | 'weekly' | 'monthly' | 'none';
export const BUDGET_PERIODS: BudgetPeriod[] = ['monthly', 'weekly', 'daily', 'none'];

export interface KeyDefaults {
  rpm_limit?: number;
  tpm_limit?: number;
  daily_spend_cap?: Decimal;
  monthly_spend_cap?: Decimal;
}

export interface Team {
  id: string;
  name: string;
  /** The team's own user: its credits pay for the team's service keys. */
  account_id: string;
  balance: Decimal | null;
  available: Decimal | null;
  budget: Decimal | null;
  budget_period: BudgetPeriod;
  time_zone: string;
  period_start: string | null;
  period_end: string | null;
  /** This period's spend (calls in flight at their hold); null without a budget. */
  spent: Decimal | null;
  remaining: Decimal | null;
  allowed_models: string[] | null;
  key_defaults: KeyDefaults;
  /** The viewer's role in the team; null for an operator who is not a member. */
  role: TeamRole | null;
  created_at: string;
  updated_at: string;
}

export interface TeamMember {
  user_id: string;
  name: string;
  email: string | null;
  role: TeamRole;
  added_at: string;
}

export interface TeamDetail extends Team {
  members: TeamMember[];
}

/** What the sign-in page may offer (`GET /auth/methods`). */
export interface SignInMethods {
  oidc: boolean;
  email: boolean;
  signup_open: boolean;
  app_name: string;
}

/** The sign-in methods, asked of the site's own origin; null where it is not a Hub (a static host). */
export async function signInMethods(): Promise<SignInMethods | null> {
  return api<SignInMethods>('/auth/methods', { connection: SITE }).catch(() => null);
}

/** A way a user signs in (`GET /api/me/identities`). */
export interface Identity {
  id: string;
  method: 'oidc' | 'email';
  issuer: string;
  email: string | null;
  created_at: string;
  last_used_at: string;
}

/** A live browser session (`GET /api/me/sessions`). */
export interface Session {
  id: string;
  user_agent: string | null;
  method: string;
  created_at: string;
  last_seen_at: string;
  expires_at: string;
  /** The session of this browser. */
  current: boolean;
}

export interface ProviderKind {
  kind: string;
  display_name: string;
  default_base_url: string;
  needs_secret: boolean;
  needs_region: boolean;
  wire: string;
}

export interface Provider {
  id: string;
  name: string;
  kind: string;
  display_name: string | null;
  base_url: string | null;
  effective_base_url: string | null;
  region: string | null;
  enabled: boolean;
  priority: number;
  credentials: number;
  active_credentials: number;
  created_at: string;
  updated_at: string;
}

export interface Credential {
  id: string;
  provider_id: string;
  name: string;
  secret_hint: string;
  weight: number;
  enabled: boolean;
  status: 'active' | 'disabled' | 'error' | string;
  last_error: string | null;
  created_at: string;
  updated_at: string;
}

export interface CredentialTest {
  ok: boolean;
  status: number | null;
  latency_ms: number;
  message: string;
}

export type ModelType = 'chat' | 'embedding' | 'image' | 'video' | 'transcription' | 'speech';
export const MODEL_TYPES: ModelType[] = ['chat', 'embedding', 'image', 'video', 'transcription', 'speech'];

/**
 * Provider costs in USD: per million tokens, `image` per image, `video` per second, `audio` per
 * second (transcription) or per million characters (speech). Stored in a model's `unit_costs`.
 */
export interface UnitCosts {
  input?: Decimal;
  output?: Decimal;
  cache_read?: Decimal;
  cache_write?: Decimal;
  /** Cache writes kept for an hour (Anthropic). */
  cache_write_1h?: Decimal;
  image?: Decimal;
  audio?: Decimal;
  video?: Decimal;
}

export interface Model {
  id: string;
  provider_id: string;
  provider: string | null;
  model: string;
  name: string | null;
  type: ModelType;
  input_rate: Decimal;
  output_rate: Decimal;
  cache_read_rate: Decimal | null;
  cache_write_rate: Decimal | null;
  /** Null: billed at the cache-write rate, else the input rate. */
  cache_write_1h_rate: Decimal | null;
  image_rate: Decimal;
  video_rate: Decimal;
  /** Per second of audio (transcription models) or per million characters (speech models). */
  audio_rate: Decimal;
  max_output_tokens: number | null;
  unit_costs: UnitCosts | null;
  metadata: Record<string, unknown> | null;
  /** Prompt tokens the model takes (set, synced, or from `metadata`), when known. */
  context_window: number | null;
  /** How this model's providers of equal priority are ordered. */
  routing: Routing;
  enabled: boolean;
  /** The long-context tier's sell rates (null: the model has none). */
  input_rate_above_200k: Decimal | null;
  output_rate_above_200k: Decimal | null;
  cache_read_rate_above_200k: Decimal | null;
  cache_write_rate_above_200k: Decimal | null;
  /** Prompts above this many tokens are billed at the tier. */
  long_context_threshold: number | null;
  /** What the provider charges, in credits per million tokens (null: unknown). */
  cost_input_rate: Decimal | null;
  cost_output_rate: Decimal | null;
  cost_cache_read_rate: Decimal | null;
  cost_cache_write_rate: Decimal | null;
  cost_input_rate_above_200k: Decimal | null;
  cost_output_rate_above_200k: Decimal | null;
  cost_cache_read_rate_above_200k: Decimal | null;
  cost_cache_write_rate_above_200k: Decimal | null;
  /** Some sell rate is below its cost. */
  below_cost: boolean;
  price_source: CatalogueFormat | null;
  costs_synced_at: string | null;
  created_at: string;
  updated_at: string;
}

export type CatalogueFormat = 'litellm' | 'openrouter';
export type BelowCostAction = 'flag' | 'disable' | 'reprice';

/** One change of a model's rate. */
export interface RateChange {
  field: string;
  old: Decimal | null;
  new: Decimal | null;
  source: 'admin' | 'sync';
  actor: string | null;
  created_at: string;
}

/** What a price sync did. */
export interface SyncReport {
  format: CatalogueFormat;
  entries: number;
  matched: { id: string; name: string; below_cost: boolean; disabled: boolean; repriced: string[] }[];
  unmatched: string[];
}

export interface ApiKey {
  id: string;
  user_id: string;
  label: string;
  hint: string;
  expires_at: string | null;
  revoked_at: string | null;
  active: boolean;
  allowed_models: string[] | null;
  rpm_limit: number | null;
  tpm_limit: number | null;
  daily_spend_cap: Decimal | null;
  monthly_spend_cap: Decimal | null;
  /** The team whose budget the key's calls count against. */
  team_id?: string | null;
  /** For a team's keys: whether it is the team's own (a service key). */
  service?: boolean;
  /** Whether the key's calls use the response cache when the operator turned it on. */
  response_cache: boolean;
  created_at: string;
}

/** The creation response: the only time the key itself is shown. */
export interface NewApiKey extends ApiKey {
  key: string;
}

export interface LedgerEntry {
  id: number;
  kind: string;
  amount: Decimal;
  call_id: string | null;
  reason: string | null;
  /** The outside event the entry answers (`stripe:{session}`, `redemption:{id}`, …); unique. */
  ref?: string | null;
  expires_at: string | null;
  created_by: string | null;
  created_at: string;
}

export interface Ledger extends Page<LedgerEntry> {
  balance: Decimal;
  held: Decimal;
}

export type CallStatus = 'success' | 'failed' | 'aborted';

export interface Call {
  id: string;
  call_id: string;
  attempt: number;
  request_id: string | null;
  endpoint: string;
  user_id: string | null;
  key_id: string | null;
  app: string | null;
  provider_id: string | null;
  provider: string | null;
  credential_id: string | null;
  /** The model as the caller named it (an alias's name through an alias). */
  model: string;
  /** The alias the call came through. */
  alias: string | null;
  /** The provider's model this attempt asked for. */
  upstream_model: string | null;
  stream: boolean;
  status: CallStatus;
  http_status: number | null;
  error: string | null;
  input_tokens: number;
  output_tokens: number;
  cache_read_tokens: number;
  cache_write_tokens: number;
  /** Of the cache writes, those kept for an hour. */
  cache_write_1h_tokens: number;
  credits: Decimal;
  /** What prompt caching saved: cached tokens at the input rate less what they cost (negative: cost more). */
  cache_saved: Decimal;
  /** How the call used the response cache: answered from it, stored its answer, or not at all. */
  response_cache: 'hit' | 'miss' | null;
  /** What a response-cache hit saved: its usage's cost less what it was billed. */
  response_cache_saved: Decimal;
  estimated: boolean;
  duration_ms: number | null;
  ttfb_ms: number | null;
  upstream_ttfb_ms: number | null;
  created_at: string;
}

export type GroupBy = 'hour' | 'day' | 'model' | 'provider' | 'user' | 'team' | 'app' | 'key';

export interface UsageRow {
  /** An ISO bucket start when grouped by time, else the group's name or id. */
  group: string | null;
  calls: number;
  errors: number;
  input_tokens: number;
  output_tokens: number;
  cache_read_tokens: number;
  cache_write_tokens: number;
  credits: Decimal;
  cache_saved: Decimal;
  ttfb_p50_ms: number | null;
  ttfb_p95_ms: number | null;
}

export interface Settings {
  billing_enabled: boolean;
  starter_credits: Decimal;
  credit_price_usd: Decimal;
  margin_percent: Decimal;
  currency_prefix: string;
  payment_link: string | null;
  max_attempts: number;
  default_max_output_tokens: number;
  hold_ttl_seconds: number;
  call_retention_days: number;
  response_cache_enabled: boolean;
  response_cache_ttl_seconds: number;
  response_cache_hit_fraction: Decimal;
  response_cache_shared: boolean;
  response_cache_max_mb: number;
  response_cache_deterministic_only: boolean;
  app_name: string;
  app_url: string | null;
  oidc_issuer: string | null;
  oidc_client_id: string | null;
  oidc_client_secret_set: boolean;
  oidc_scopes: string;
  signup_open: boolean;
  signup_email_domains: string[];
  smtp_host: string | null;
  smtp_port: number;
  smtp_security: SmtpSecurity;
  smtp_username: string | null;
  smtp_password_set: boolean;
  smtp_from: string | null;
  session_days: number;
  stripe_secret_key_set: boolean;
  stripe_webhook_secret_set: boolean;
  stripe_api_base: string;
  margin_floor_percent: Decimal | null;
  below_cost_action: BelowCostAction;
  price_sync_url: string | null;
  price_sync_format: CatalogueFormat;
  price_sync_interval_hours: number;
}

export type SmtpSecurity = 'starttls' | 'tls' | 'none';

export async function providerKinds(): Promise<ProviderKind[]> {
  return (await api<Page<ProviderKind>>('/api/admin/provider-kinds')).data;
}

/** Every page of a list, up to `max` items. */
export async function listAll<T>(path: string, query: Query = {}, max = 5000): Promise<T[]> {
  const items: T[] = [];
  let cursor: string | number | null = null;
  do {
    const page: Page<T> = await api<Page<T>>(path, { query: { ...query, limit: 500, cursor } });
    items.push(...page.data);
    cursor = page.next_cursor;
  } while (cursor && items.length < max);
  return items;
}

// ------------------------------------------------------------------ selling credits

/** A credit pack: `unit_amount` of `currency` (in minor units, as Stripe charges) buys `credits`. */
export interface CreditPack {
  id: string;
  name: string;
  currency: string;
  unit_amount: number;
  credits: Decimal;
  active: boolean;
  created_at: string;
  updated_at: string;
}

/** `GET /api/me/credit-packs`: the packs on sale, and whether Stripe is set up to sell them. */
export interface PacksOnSale extends Page<CreditPack> {
  checkout_available: boolean;
}

export type PaymentStatus = 'pending' | 'open' | 'paid' | 'failed' | 'expired';

/** A checkout (`/api/me/payments`, `/api/admin/payments`). */
export interface Payment {
  id: string;
  user_id: string;
  pack_id: string | null;
  pack_name: string;
  credits: Decimal;
  /** What was charged, in minor units of `currency`. */
  amount: number;
  currency: string;
  status: PaymentStatus;
  session_id: string | null;
  payment_intent: string | null;
  error: string | null;
  paid_event: string | null;
  refunded_amount: number;
  refunded_credits: Decimal;
  created_at: string;
  updated_at: string;
  paid_at: string | null;
}

/** A verified Stripe webhook delivery and what Hub did with it. */
export interface PaymentEvent {
  id: number;
  event_id: string;
  type: string;
  payment_id: string | null;
  outcome: string;
  detail: string | null;
  created_at: string;
}

export type CodeState = 'active' | 'used_up' | 'expired' | 'disabled';

export interface RedemptionCodeInfo {
  id: string;
  hint: string;
  state: CodeState;
  redemptions: number;
  uses_left: number;
  disabled_at: string | null;
}

/** A batch of redemption codes: each code is worth `credits`, `uses` times. */
export interface CodeBatch {
  id: string;
  label: string | null;
  credits: Decimal;
  uses: number;
  once_per_user: boolean;
  expires_at: string | null;
  disabled_at: string | null;
  created_by: string | null;
  created_at: string;
  redemptions: number;
  codes: RedemptionCodeInfo[];
}

/** The answer to minting: the only time the codes themselves are shown. */
export interface MintedCodes {
  batch_id: string;
  codes: string[];
  batch: CodeBatch;
}

export interface Redeemed {
  redemption_id: string;
  code: string;
  credits: Decimal;
  balance: Decimal;
  available: Decimal;
}

// ------------------------------------------------------------------ notifications

/** An operator's webhook endpoint (`/api/admin/webhooks`). */
export interface Webhook {
  id: string;
  url: string;
  /** Event types, or `["*"]` for every event. */
  events: string[];
  description: string | null;
  enabled: boolean;
  /** Why Hub turned it off (the endpoint answered 410 Gone); null otherwise. */
  disabled_reason: string | null;
  /** The end of the signing secret, to tell secrets apart. */
  secret_hint: string;
  created_at: string;
  updated_at: string;
}

/** The answer to creating a webhook or rotating its secret: the only time the secret (`whsec_…`) is shown. */
export interface WebhookWithSecret extends Webhook {
  secret: string;
  /** After a rotation: until when the previous secret also signs. */
  previous_secret_until?: string;
}

export type DeliveryState = 'pending' | 'delivered' | 'failed';

/** One try at sending a delivery: the endpoint's HTTP status, or what went wrong before one. */
export interface DeliveryAttempt {
  attempt: number;
  at: string;
  status: number | null;
  error: string | null;
  duration_ms: number | null;
}

/** An event on its way to one webhook, with every attempt (`/api/admin/webhooks/{id}/deliveries`). */
export interface WebhookDelivery {
  id: string;
  event_id: string;
  event_type: string;
  state: DeliveryState;
  attempts: DeliveryAttempt[];
  /** When Hub tries again; null unless pending. */
  next_attempt_at: string | null;
  retry_until: string;
  last_error: string | null;
  created_at: string;
}

/** What a customer is told about their own account (`/api/me/notifications`). */
export interface NotificationPrefs {
  /** Mail when the balance runs low or out. */
  email_low_balance: boolean;
  /** A receipt by mail for each purchase. */
  email_receipts: boolean;
  /** Their own threshold; `"0"`: no low-balance notice; null: the operator's default. */
  low_balance_threshold: Decimal | null;
  default_low_balance_threshold: Decimal | null;
  /** Whether this Hub can send mail at all (SMTP set up, a runtime that can reach it). */
  email_available: boolean;
}

/** One admin write, as the audit log keeps it (`GET /api/admin/audit`). */
export interface AuditEntry {
  id: string;
  at: string;
  actor: { user_id: string; key_id: string | null; session_id: string | null };
  request_id: string;
  method: string;
  path: string;
  resource: string;
  resource_id: string | null;
  action: string;
  /** The answer's HTTP status; null if the request never finished (the change committed, its outcome unknown). */
  status: number | null;
  finished_at: string | null;
  /** The request body, secret fields masked. */
  request: unknown;
  /** The resource as the admin API showed it before and after (secrets as hints only). */
  before: unknown;
  after: unknown;
}
