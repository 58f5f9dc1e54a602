// A real OpenID Connect provider (npm oidc-provider) for the sign-in tests, on loopback over plain http.
//
// Environment:
//   OP_PORT                 port to listen on at 127.0.0.1; 0 (default) picks a free one
//   OP_CLIENT_ID            the one registered client's id (default "hub")
//   OP_CLIENT_SECRET        its secret (default "hub-secret")
//   OP_REDIRECT_URIS        required: its redirect URIs, comma-separated (http on loopback is fine)
//   OP_ALG                  ID token signing alg for the client: RS256 (default) or ES256
//
// Contract with the test that starts it:
//   stdout carries exactly one line, `ready http://127.0.0.1:PORT`, once it listens; that URL is the issuer
//   (no trailing slash). Everything else (provider notices, errors) goes to stderr.
//   It exits when its stdin closes (so keep stdin a pipe and drop it to stop it) or on SIGTERM/SIGINT.
//   Bad configuration: a message on stderr and exit code 2, without the ready line.
//
// Accounts: any login name signs in (the password is ignored). Claims: sub = hex SHA-256 of the login,
// email = the login if it contains "@", else "<login>@example.test", email_verified = true unless the
// login starts with "unverified", name = the login. Consent is granted automatically for the client.
//
// Test switch: POST /__test/tamper with JSON {"mode": "signature"|"aud"|"nonce"|"expired"|"iss"|null} makes the
// NEXT successful token response carry an altered id_token (see README.md); it disarms after one use.
import { createHash, generateKeyPairSync, randomBytes } from 'node:crypto';
import { createServer } from 'node:http';

import { CompactSign, decodeProtectedHeader } from 'jose';
import Provider from 'oidc-provider';

// oidc-provider prints its notices with console.info; stdout belongs to the ready line.
console.info = console.error;
console.log = console.error;

const TAMPER_MODES = new Set(['signature', 'aud', 'nonce', 'expired', 'iss']);
const SIGNING_ALGS = new Set(['RS256', 'ES256']);
const MAX_BODY_BYTES = 16 * 1024;

function fail(message) {
  process.stderr.write(`op.mjs: ${message}\n`);
  process.exit(2);
}

function readConfig(env) {
  const port = Number(env.OP_PORT ?? '0');
  if (!Number.isInteger(port) || port < 0 || port > 65535) fail(`OP_PORT is not a port: ${env.OP_PORT}`);
  const redirectUris = (env.OP_REDIRECT_URIS ?? '').split(',').map((s) => s.trim()).filter(Boolean);
  if (redirectUris.length === 0) fail('OP_REDIRECT_URIS is required (comma-separated redirect URIs)');
  const alg = env.OP_ALG || 'RS256';
  if (!SIGNING_ALGS.has(alg)) fail(`OP_ALG must be RS256 or ES256, not ${alg}`);
  return {
    port,
    redirectUris,
    alg,
    clientId: env.OP_CLIENT_ID || 'hub',
    clientSecret: env.OP_CLIENT_SECRET || 'hub-secret',
  };
}

// Fresh keys every start: one RSA and one P-256 key, both published, so a relying party must pick by kid.
function generateSigningKeys() {
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const entries = [
    { pair: rsa, alg: 'RS256' },
    { pair: ec, alg: 'ES256' },
  ];
  const privateByKid = new Map();
  const jwks = entries.map(({ pair, alg }) => {
    const kid = randomBytes(8).toString('hex');
    privateByKid.set(kid, pair.privateKey);
    return { ...pair.privateKey.export({ format: 'jwk' }), kid, alg, use: 'sig' };
  });
  return { jwks: { keys: jwks }, privateByKid };
}

// --- accounts -------------------------------------------------------------------------------------------

function subjectFor(login) {
  return createHash('sha256').update(login, 'utf8').digest('hex');
}

function claimsFor(login) {
  return {
    email: login.includes('@') ? login : `${login}@example.test`,
    email_verified: !login.startsWith('unverified'),
    name: login,
  };
}

// sub -> login, filled at sign-in; the provider keeps its sessions in memory too, so nothing outlives the process.
const loginsBySubject = new Map();

async function findAccount(_ctx, sub) {
  const login = loginsBySubject.get(sub);
  if (login === undefined) return undefined;
  return { accountId: sub, claims: async () => ({ sub, ...claimsFor(login) }) };
}

// The test client is first-party: grant what it asks for (within the supported scopes) so one login suffices.
async function loadExistingGrant(ctx) {
  const { oidc } = ctx;
  const grantId = oidc.result?.consent?.grantId || oidc.session.grantIdFor(oidc.client.clientId);
  if (grantId) {
    const existing = await oidc.provider.Grant.find(grantId);
    if (existing) return existing;
  }
  const grant = new oidc.provider.Grant({ clientId: oidc.client.clientId, accountId: oidc.session.accountId });
  grant.addOIDCScope('openid email profile');
  grant.addOIDCClaims(['email', 'email_verified', 'name']);
  await grant.save();
  return grant;
}

// --- the login page ---------------------------------------------------------------------------------------

function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function loginPage(uid, message) {
  const action = `/interaction/${encodeURIComponent(uid)}/login`;
  return `<!doctype html>
<html><head><meta charset="utf-8"><title>Sign-in</title></head>
<body>
<h1>Test OpenID provider: sign in</h1>
${message ? `<p role="alert">${escapeHtml(message)}</p>` : ''}
<form method="post" action="${escapeHtml(action)}">
  <label>Login <input type="text" name="login" required autofocus></label>
  <label>Password <input type="password" name="password"></label>
  <button type="submit">Sign-in</button>
</form>
</body></html>
`;
}

async function readBody(req) {
  let size = 0;
  const chunks = [];
  for await (const chunk of req) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) throw new Error('request body too large');
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

// GET /interaction/:uid shows the form; POST /interaction/:uid/login signs in and sends the browser back to the
// provider's resume URL (303). The provider's interaction cookie ties these to the authorization request.
async function interactions(ctx, next) {
  const match = /^\/interaction\/([^/]+)(\/login)?$/.exec(ctx.path);
  if (!match) return next();
  const [, uid, isLogin] = match;
  ctx.set('Cache-Control', 'no-store');
  let details;
  try {
    details = await provider.interactionDetails(ctx.req, ctx.res);
  } catch {
    ctx.status = 400;
    ctx.type = 'text/plain';
    ctx.body = 'no such sign-in in progress (interaction expired or its cookie is missing)\n';
    return undefined;
  }
  if (details.uid !== uid) ctx.throw(400, 'interaction mismatch');
  if (!isLogin && ctx.method === 'GET') {
    ctx.type = 'html';
    ctx.body = loginPage(uid);
    return undefined;
  }
  if (!isLogin || ctx.method !== 'POST') ctx.throw(405);
  const form = new URLSearchParams(await readBody(ctx.req));
  const login = (form.get('login') ?? '').trim();
  if (!login) {
    ctx.status = 400;
    ctx.type = 'html';
    ctx.body = loginPage(uid, 'Enter a login.');
    return undefined;
  }
  const sub = subjectFor(login);
  loginsBySubject.set(sub, login);
  const returnTo = await provider.interactionResult(ctx.req, ctx.res, { login: { accountId: sub } }, {
    mergeWithLastSubmission: false,
  });
  ctx.redirect(returnTo);
  ctx.status = 303;
  return undefined;
}

// --- the tamper switch ------------------------------------------------------------------------------------

let tamperMode = null;

async function tamperSwitch(ctx, next) {
  if (ctx.path !== '/__test/tamper') return next();
  if (ctx.method !== 'POST') ctx.throw(405);
  let mode;
  try {
    ({ mode } = JSON.parse((await readBody(ctx.req)) || '{}'));
  } catch {
    ctx.throw(400, 'body must be JSON {"mode": ...}');
  }
  if (mode !== null && !TAMPER_MODES.has(mode)) {
    ctx.throw(400, `mode must be one of ${[...TAMPER_MODES].join(', ')} or null`);
  }
  tamperMode = mode;
  ctx.body = { mode };
  return undefined;
}

const base64url = {
  decode: (s) => Buffer.from(s, 'base64url'),
  encode: (b) => Buffer.from(b).toString('base64url'),
};

function alterClaims(payload, mode, issuer) {
  const now = Math.floor(Date.now() / 1000);
  switch (mode) {
    case 'aud':
      return { ...payload, aud: 'some-other-client', azp: undefined };
    case 'nonce':
      return { ...payload, nonce: `${payload.nonce ?? ''}-not-the-one-sent` };
    case 'expired':
      return { ...payload, iat: now - 7200, exp: now - 3700, auth_time: now - 7200 };
    case 'iss':
      return { ...payload, iss: `${issuer}/not-this-issuer` };
    default:
      throw new Error(`unexpected tamper mode ${mode}`);
  }
}

// Same header (alg, kid), new payload, signed with the provider's own key: only a claim check can catch it.
async function resign(idToken, payload, privateByKid) {
  const header = decodeProtectedHeader(idToken);
  const key = privateByKid.get(header.kid);
  if (!key) throw new Error(`no private key for kid ${header.kid}`);
  return new CompactSign(Buffer.from(JSON.stringify(payload))).setProtectedHeader(header).sign(key);
}

function corruptSignature(idToken) {
  const [header, payload, signature] = idToken.split('.');
  const bytes = base64url.decode(signature);
  bytes[0] ^= 0xff;
  bytes[bytes.length - 1] ^= 0x01;
  return `${header}.${payload}.${base64url.encode(bytes)}`;
}

async function tamperIdToken(idToken, mode, issuer, privateByKid) {
  if (mode === 'signature') return corruptSignature(idToken);
  const payload = JSON.parse(base64url.decode(idToken.split('.')[1]).toString('utf8'));
  return resign(idToken, alterClaims(payload, mode, issuer), privateByKid);
}

function tokenTamperer(issuer, privateByKid) {
  return async function tamperTokenResponse(ctx, next) {
    await next();
    if (ctx.path !== '/token' || ctx.method !== 'POST' || tamperMode === null) return;
    if (ctx.status !== 200 || typeof ctx.body?.id_token !== 'string') return;
    const mode = tamperMode;
    tamperMode = null;
    ctx.body = { ...ctx.body, id_token: await tamperIdToken(ctx.body.id_token, mode, issuer, privateByKid) };
    process.stderr.write(`op.mjs: token response id_token tampered (${mode})\n`);
  };
}

// --- start ------------------------------------------------------------------------------------------------

const config = readConfig(process.env);
let handler = (_req, res) => {
  res.statusCode = 503;
  res.end();
};
const server = createServer((req, res) => handler(req, res));
await new Promise((resolve, reject) => {
  server.once('error', reject);
  server.listen(config.port, '127.0.0.1', resolve);
}).catch((error) => fail(`cannot listen on 127.0.0.1:${config.port}: ${error.message}`));
const issuer = `http://127.0.0.1:${server.address().port}`;

// Progress on stderr, so a start that stalls says where.
const started = performance.now();
process.stderr.write(`op.mjs: listening on ${issuer}, generating signing keys\n`);
const { jwks, privateByKid } = generateSigningKeys();
process.stderr.write(`op.mjs: signing keys ready after ${Math.round(performance.now() - started)} ms\n`);
const provider = new Provider(issuer, {
  clients: [{
    client_id: config.clientId,
    client_secret: config.clientSecret,
    redirect_uris: config.redirectUris,
    grant_types: ['authorization_code'],
    response_types: ['code'],
    // oidc-provider accepts client_secret_post too for a client registered with client_secret_basic.
    token_endpoint_auth_method: 'client_secret_basic',
    id_token_signed_response_alg: config.alg,
  }],
  jwks,
  cookies: { keys: [randomBytes(32).toString('hex')] },
  pkce: { required: () => true },
  responseTypes: ['code'],
  scopes: ['openid', 'email', 'profile'],
  claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'] },
  // Put the scope's claims in the ID token itself, as most providers do, not only behind userinfo.
  conformIdTokenClaims: false,
  // Explicit lifetimes (the defaults, as numbers) so the provider does not log a notice per artifact type.
  ttl: {
    AccessToken: 3600, AuthorizationCode: 60, IdToken: 3600, Interaction: 3600, Grant: 14 * 86400, Session: 14 * 86400,
  },
  findAccount,
  loadExistingGrant,
  interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
  features: { devInteractions: { enabled: false } },
});
// Static clients are validated lazily; load ours now so a bad redirect URI fails the start, not the first request.
try {
  if (!(await provider.Client.find(config.clientId))) fail(`client ${config.clientId} did not register`);
} catch (error) {
  fail(`client metadata rejected: ${error.error_description ?? error.message}`);
}
provider.use(tamperSwitch);
provider.use(interactions);
provider.use(tokenTamperer(issuer, privateByKid));
handler = provider.callback();

function stop() {
  server.close();
  process.exit(0);
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
process.stdin.on('end', stop);
process.stdin.on('close', stop);
process.stdin.resume();

process.stdout.write(`ready ${issuer}\n`);
