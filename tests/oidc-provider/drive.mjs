// Drives op.mjs headless, the way a relying party's test does: authorize -> login form -> resume -> code ->
// token endpoint, with a cookie jar and no automatic redirects. It prints one JSON object: the redirect's query,
// the token response, the decoded id_token, and whether its signature verifies against the provider's JWKS.
// It is executable documentation of the steps in README.md and a quick manual check of the tamper switch.
//
//   node drive.mjs --issuer http://127.0.0.1:PORT --redirect-uri URI [--client-id hub] [--client-secret hub-secret]
//                  [--login alice] [--tamper signature|aud|nonce|expired|iss] [--auth basic|post]
import { createHash, randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';

import { createRemoteJWKSet, decodeJwt, decodeProtectedHeader, jwtVerify } from 'jose';

const { values: args } = parseArgs({
  options: {
    issuer: { type: 'string' },
    'redirect-uri': { type: 'string' },
    'client-id': { type: 'string', default: 'hub' },
    'client-secret': { type: 'string', default: 'hub-secret' },
    login: { type: 'string', default: 'alice@example.com' },
    tamper: { type: 'string' },
    auth: { type: 'string', default: 'basic' },
  },
});
if (!args.issuer || !args['redirect-uri']) {
  process.stderr.write('usage: node drive.mjs --issuer URL --redirect-uri URI [options]\n');
  process.exit(2);
}

// A cookie jar for the provider's origin that honours cookie paths (the interaction cookies are path-scoped).
class CookieJar {
  #cookies = new Map();

  store(response) {
    for (const line of response.headers.getSetCookie()) {
      const [pair, ...attributes] = line.split(';').map((s) => s.trim());
      const eq = pair.indexOf('=');
      const name = pair.slice(0, eq);
      const value = pair.slice(eq + 1);
      const path = attributes.find((a) => a.toLowerCase().startsWith('path='))?.slice(5) ?? '/';
      const expired = attributes.some((a) => a.toLowerCase().startsWith('expires=')
        && Date.parse(a.slice(8)) <= Date.now());
      const key = `${path} ${name}`;
      if (expired || value === '') this.#cookies.delete(key);
      else this.#cookies.set(key, { name, value, path });
    }
  }

  headerFor(url) {
    const { pathname } = new URL(url);
    return [...this.#cookies.values()]
      .filter((c) => pathname === c.path || pathname.startsWith(c.path.endsWith('/') ? c.path : `${c.path}/`))
      .map((c) => `${c.name}=${c.value}`)
      .join('; ');
  }
}

const jar = new CookieJar();

async function request(method, url, { body, headers = {} } = {}) {
  const cookie = jar.headerFor(url);
  const response = await fetch(url, {
    method,
    body,
    redirect: 'manual',
    headers: { ...headers, ...(cookie ? { cookie } : {}) },
  });
  jar.store(response);
  return response;
}

function expectStatus(step, response, statuses) {
  if (!statuses.includes(response.status)) {
    throw new Error(`${step}: expected ${statuses.join('/')} but got ${response.status}`);
  }
}

const issuer = args.issuer.replace(/\/$/, '');
const redirectUri = args['redirect-uri'];
const verifier = randomBytes(32).toString('base64url');
const challenge = createHash('sha256').update(verifier).digest('base64url');
const state = randomBytes(12).toString('base64url');
const nonce = randomBytes(12).toString('base64url');

const discovery = await (await fetch(`${issuer}/.well-known/openid-configuration`)).json();

// 1. The authorization request: 303 to the provider's login page, setting the interaction cookies.
const authorize = new URL(discovery.authorization_endpoint);
authorize.search = new URLSearchParams({
  client_id: args['client-id'],
  redirect_uri: redirectUri,
  response_type: 'code',
  scope: 'openid email profile',
  state,
  nonce,
  code_challenge: challenge,
  code_challenge_method: 'S256',
}).toString();
let response = await request('GET', authorize.href);
expectStatus('authorize', response, [303]);
const loginPage = new URL(response.headers.get('location'), issuer).href;

// 2. The login page: 200 HTML with a form posting to <page>/login.
response = await request('GET', loginPage);
expectStatus('login page', response, [200]);
await response.text();

// 3. Post the login: 303 to the resume URL /auth/<uid>.
response = await request('POST', `${loginPage}/login`, {
  headers: { 'content-type': 'application/x-www-form-urlencoded' },
  body: new URLSearchParams({ login: args.login, password: 'anything' }).toString(),
});
expectStatus('login', response, [303]);
const resume = new URL(response.headers.get('location'), issuer).href;

// 4. Resume: 303 to redirect_uri?code=...&state=...&iss=...
response = await request('GET', resume);
expectStatus('resume', response, [303]);
const callback = new URL(response.headers.get('location'));
const query = Object.fromEntries(callback.searchParams);
if (query.state !== state) throw new Error(`state mismatch: ${query.state}`);

if (args.tamper) {
  const armed = await fetch(`${issuer}/__test/tamper`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ mode: args.tamper }),
  });
  expectStatus('tamper', armed, [200]);
}

// 5. The token request, authenticated as the client, with the PKCE verifier.
const form = new URLSearchParams({
  grant_type: 'authorization_code', code: query.code, redirect_uri: redirectUri, code_verifier: verifier,
});
const tokenHeaders = { 'content-type': 'application/x-www-form-urlencoded' };
if (args.auth === 'post') {
  form.set('client_id', args['client-id']);
  form.set('client_secret', args['client-secret']);
} else {
  const basic = Buffer.from(`${encodeURIComponent(args['client-id'])}:${encodeURIComponent(args['client-secret'])}`);
  tokenHeaders.authorization = `Basic ${basic.toString('base64')}`;
}
response = await fetch(discovery.token_endpoint, { method: 'POST', headers: tokenHeaders, body: form });
const tokens = await response.json();
if (response.status !== 200) throw new Error(`token: ${response.status} ${JSON.stringify(tokens)}`);

let verified;
try {
  await jwtVerify(tokens.id_token, createRemoteJWKSet(new URL(discovery.jwks_uri)), {
    issuer, audience: args['client-id'],
  });
  verified = 'ok';
} catch (error) {
  verified = `${error.code}: ${error.message}`;
}

process.stdout.write(`${JSON.stringify({
  callback: query,
  nonce_sent: nonce,
  token_response_keys: Object.keys(tokens),
  id_token_header: decodeProtectedHeader(tokens.id_token),
  id_token_claims: decodeJwt(tokens.id_token),
  verification: verified,
}, null, 2)}\n`);
