/**
 * End-to-end test of the built site against a real Hub, the mock provider,
 * a real OpenID provider (tests/oidc-provider, npm `oidc-provider`) and a
 * real SMTP server (tests/smtpd, aiosmtpd from .venv-tools), and a stand-in
 * of Stripe's API and hosted checkout page (hub-stripe, which signs its
 * webhooks with the official `stripe` library of tests/stripe).
 * Starts them (Hub and the mock by path, overridable with HUB_BIN and
 * HUB_MOCK_BIN), drives headless Chromium (CHROMIUM_BIN, default
 * /usr/bin/chromium) through every page as an operator with an API key and
 * as a person who signs up by single sign-on and comes back by an emailed
 * link, buys credits through the checkout and redeems a code the operator
 * minted, sees credit that expires and chooses their notifications; the
 * operator sends webhooks to a receiver this test runs on loopback; then
 * checks every page in three languages, with axe-core in both themes, at a
 * phone's width and by keyboard alone. Saves
 * screenshots under
 * test-output/screenshots, and stops all it started, whether it passes or
 * fails.
 */

import { spawn, type ChildProcess } from 'node:child_process';
import { createHmac, randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import AxeBuilder from '@axe-core/playwright';
import { chromium, type Browser, type BrowserContext, type Locator, type Page } from 'playwright-core';
import { CATALOGUES, LANGUAGES, type Lang, type MessageKey } from '../src/i18n';

const ROOT = resolve(import.meta.dirname, '..');
const REPO = resolve(ROOT, '..');
// Run by hand, the debug builds in cargo's target directory (CARGO_TARGET_DIR
// when set); the Rust test that runs this passes the binaries it built.
const TARGET = resolve(REPO, process.env.CARGO_TARGET_DIR ?? 'target', 'debug');
const HUB_BIN = process.env.HUB_BIN ?? join(TARGET, 'hub');
const MOCK_BIN = process.env.HUB_MOCK_BIN ?? join(TARGET, 'hub-mock');
const STRIPE_BIN = process.env.HUB_STRIPE_BIN ?? join(TARGET, 'hub-stripe');
const CHROMIUM = process.env.CHROMIUM_BIN ?? '/usr/bin/chromium';
const DIST = join(ROOT, 'dist');
const SHOTS = join(ROOT, 'test-output', 'screenshots');
const OP_DIR = join(REPO, 'tests', 'oidc-provider');
const PYTHON = join(REPO, '.venv-tools', 'bin', 'python');
const SMTP_USER = 'mailer';
const SMTP_PASSWORD = `smtp-${randomBytes(8).toString('hex')}`;
const OWNER_KEY = `hub_e2e_owner_${randomBytes(16).toString('hex')}`;
// The client registered at the OpenID provider (op.mjs's defaults).
const OP_CLIENT_ID = 'hub';
const OP_CLIENT_SECRET = 'hub-secret';
const NEW_PERSON = 'newperson@example.com';
const TOTAL_TIMEOUT_MS = 600_000;
const START_TIMEOUT_MS = 30_000;
const STEP_TIMEOUT_MS = 15_000;

// ------------------------------------------------------------------ processes

interface Proc {
  name: string;
  child: ChildProcess;
  log: string[];
}

const procs: Proc[] = [];

class SilentStart extends Error {}

/**
 * Starts a program and resolves with the first stdout line matching `ready`.
 * `stdin: 'pipe'` keeps its input open for as long as this test runs, for a
 * program that exits when its input closes (the OpenID provider). A program
 * that has not announced itself within START_TIMEOUT_MS is killed (its output
 * printed) and started once more: every program here starts from nothing, so
 * a second start is the same program, and one stalled start on a loaded
 * machine does not fail the whole run.
 */
async function start(
  name: string,
  bin: string,
  args: string[],
  env: Record<string, string>,
  ready: RegExp,
  stdin: 'ignore' | 'pipe' = 'ignore',
): Promise<RegExpMatchArray> {
  try {
    return await startOnce(name, bin, args, env, ready, stdin);
  } catch (e) {
    if (!(e instanceof SilentStart)) throw e;
    const stalled = procs.pop()!;
    if (stalled.child.pid && stalled.child.exitCode === null) process.kill(stalled.child.pid, 'SIGKILL');
    console.error(`${e.message}; starting it again. Its output:\n${stalled.log.join('\n')}`);
    return startOnce(name, bin, args, env, ready, stdin);
  }
}

function startOnce(
  name: string,
  bin: string,
  args: string[],
  env: Record<string, string>,
  ready: RegExp,
  stdin: 'ignore' | 'pipe',
): Promise<RegExpMatchArray> {
  const child = spawn(bin, args, { env: { ...process.env, ...env }, stdio: [stdin, 'pipe', 'pipe'] });
  const proc: Proc = { name, child, log: [] };
  procs.push(proc);
  return new Promise((resolvePromise, reject) => {
    const timer = setTimeout(() => reject(new SilentStart(`${name} did not announce itself within ${START_TIMEOUT_MS / 1000}s`)), START_TIMEOUT_MS);
    const onData = (stream: 'out' | 'err') => (data: Buffer) => {
      for (const line of data.toString().split('\n').filter(Boolean)) {
        proc.log.push(line);
        const m = stream === 'out' ? ready.exec(line) : null;
        if (m) {
          clearTimeout(timer);
          resolvePromise(m);
        }
      }
      proc.log.splice(0, Math.max(0, proc.log.length - 200));
    };
    child.stdout!.on('data', onData('out'));
    child.stderr!.on('data', onData('err'));
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(new Error(`${name} (${bin}) could not start: ${e.message}`));
    });
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`${name} exited early (${signal ?? `code ${code}`})`));
    });
  });
}

/** SIGTERM each process by its PID, SIGKILL any still running after 5 s. */
async function stopAll(): Promise<void> {
  await Promise.all(
    procs.map(async ({ child }) => {
      if (child.exitCode !== null || child.signalCode !== null || !child.pid) return;
      const exited = new Promise<void>((r) => child.once('exit', () => r()));
      process.kill(child.pid, 'SIGTERM');
      const killed = await Promise.race([exited.then(() => true), sleep(5_000).then(() => false)]);
      if (!killed && child.exitCode === null) {
        process.kill(child.pid, 'SIGKILL');
        await Promise.race([exited, sleep(2_000)]);
      }
    }),
  );
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms).unref());

const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;
const pad2 = (n: number) => String(n).padStart(2, '0');

/** `MM/DD/YYYY` in local time, as the site shows dates in English (the browser shares this process's time zone). */
function localDate(d: Date): string {
  return `${pad2(d.getMonth() + 1)}/${pad2(d.getDate())}/${d.getFullYear()}`;
}

/** The value of an `<input type="datetime-local">` for `d`. */
function localInput(d: Date): string {
  return `${d.getFullYear()}-${pad2(d.getMonth() + 1)}-${pad2(d.getDate())}T${pad2(d.getHours())}:${pad2(d.getMinutes())}`;
}

// ------------------------------------------------------------------ the site

// ------------------------------------------------------------------ steps

let current = 'setup';

async function step(name: string, run: () => Promise<void>): Promise<void> {
  current = name;
  const started = Date.now();
  await run();
  console.log(`  ok  ${name} (${Date.now() - started} ms)`);
}

async function shot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
}

async function expectText(locator: Locator, text: string | RegExp): Promise<void> {
  await locator.filter({ hasText: text }).first().waitFor();
}

/** The value of the summary card labelled `label`. */
function stat(page: Page, label: string): Locator {
  return page.locator('.stat').filter({ has: page.locator('span', { hasText: label }) }).locator('strong');
}

async function nav(page: Page, label: string, heading: string | RegExp): Promise<void> {
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: label, exact: true }).click();
  await page.getByRole('heading', { level: 1, name: heading }).waitFor();
}

/** Signs in with an API key (the form is folded away while people have other ways to sign in). */
async function signIn(page: Page, site: string, key: string, shotName?: string): Promise<void> {
  await page.goto(`${site}/#/`);
  const keyForm = page.locator('details.key-signin');
  await keyForm.waitFor();
  if (!(await keyForm.evaluate((d) => (d as HTMLDetailsElement).open))) await keyForm.getByText('Sign in with an API key').click();
  await page.locator('input[name=key]').fill(key);
  if (shotName) await shot(page, shotName);
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  await page.getByRole('navigation', { name: 'Main' }).waitFor();
}

async function signOut(page: Page): Promise<void> {
  await page.getByRole('navigation', { name: 'Main' }).getByRole('button', { name: 'Sign out' }).click();
  await page.getByRole('heading', { level: 1, name: /^Sign in to / }).waitFor();
}

/**
 * Signs in through the OpenID provider's login page as `login`; the provider
 * skips its page when it remembers this browser from an earlier sign-in.
 */
async function signInBySso(page: Page, site: string, login: string): Promise<'login page' | 'remembered'> {
  await page.goto(`${site}/#/`);
  await page.getByRole('link', { name: 'Sign in with single sign-on' }).click();
  const loginField = page.locator('input[name=login]');
  const nav = page.getByRole('navigation', { name: 'Main' });
  await loginField.or(nav).first().waitFor();
  let how: 'login page' | 'remembered' = 'remembered';
  if (await loginField.isVisible()) {
    how = 'login page';
    await loginField.fill(login);
    await page.locator('button[type=submit]').click();
  }
  await nav.waitFor();
  if (!page.url().startsWith(`${site}/`)) throw new Error(`single sign-on ended at ${page.url()}, not on the site`);
  return how;
}

/** The SMTP server's received messages (smtpd.py writes one JSON line each). */
class Mailbox {
  constructor(
    readonly port: number,
    private readonly file: string,
  ) {}

  /** The sign-in links sent to `to` so far, oldest first. */
  links(site: string, to: string): string[] {
    const text = statSync(this.file, { throwIfNoEntry: false }) ? readFileSync(this.file, 'utf8') : '';
    const mails = text
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as { rcpt_tos: string[]; text: string | null });
    return mails
      .filter((m) => m.rcpt_tos.includes(to))
      .flatMap((m) => (m.text ?? '').split(/\s+/).filter((w) => w.startsWith(`${site}/auth/email/verify?token=`)));
  }

  /** Waits (a bounded while) for the `n`th link to `to`. */
  async link(site: string, to: string, n: number): Promise<string> {
    for (let i = 0; i < 100; i++) {
      const links = this.links(site, to);
      if (links.length >= n) return links[n - 1];
      await sleep(100);
    }
    throw new Error(`no sign-in link ${n} to ${to} within 10 s (${this.links(site, to).length} so far)`);
  }
}

/** A call to the admin API as the owner, from this test (not the browser). */
async function asOwner<T>(site: string, path: string): Promise<T> {
  const res = await fetch(`${site}${path}`, { headers: { authorization: `Bearer ${OWNER_KEY}` } });
  if (!res.ok) throw new Error(`GET ${path} as the owner: ${res.status} ${await res.text()}`);
  return (await res.json()) as T;
}

async function rowCount(locator: Locator): Promise<number> {
  return locator.locator('tbody tr').filter({ hasNot: locator.page().locator('td[colspan]') }).count();
}

async function navLinks(page: Page): Promise<string[]> {
  return page.getByRole('navigation', { name: 'Main' }).getByRole('link').allInnerTexts();
}

async function chat(page: Page, model: string, prompt: string): Promise<void> {
  await page.locator('select[name=model]').selectOption(model);
  await page.locator('textarea[name=prompt]').fill(prompt);
  await page.getByRole('button', { name: 'Send' }).click();
  await expectText(page.locator('.message.assistant'), 'Hello, world!');
  await expectText(page.getByTestId('credits'), /\d/);
}

const PRICE_FILE = JSON.stringify({
  sample_spec: { input_cost_per_token: 0, mode: 'chat' },
  'gpt-4.1-nano': {
    input_cost_per_token: 1e-7,
    output_cost_per_token: 4e-7,
    cache_read_input_token_cost: 2.5e-8,
    litellm_provider: 'openai',
    mode: 'chat',
    max_output_tokens: 32768,
  },
  'dall-e-3': { output_cost_per_image: 0.04, litellm_provider: 'openai', mode: 'image_generation' },
});

/**
 * Runs `drive` in a browser context of its own (its own cookies and storage),
 * closed afterwards; the browser speaks `locale` (English unless told), prefers
 * the light theme and has a desktop's window unless told otherwise.
 */
async function inContext(
  browser: Browser,
  drive: (page: Page, context: BrowserContext) => Promise<void>,
  options: { locale?: string; colorScheme?: 'light' | 'dark'; viewport?: { width: number; height: number } } = {},
): Promise<void> {
  const context = await browser.newContext({
    viewport: options.viewport ?? { width: 1360, height: 900 },
    acceptDownloads: true,
    locale: options.locale ?? 'en-US',
    colorScheme: options.colorScheme ?? 'light',
  });
  context.setDefaultTimeout(STEP_TIMEOUT_MS);
  const page = await context.newPage();
  const pageErrors: string[] = [];
  page.on('pageerror', (e) => pageErrors.push(e.message));
  page.on('dialog', (d) => void d.accept());
  try {
    await drive(page, context);
    if (pageErrors.length) throw new Error(`the page threw: ${pageErrors.join('; ')}`);
  } catch (e) {
    await page.screenshot({ path: join(SHOTS, 'failure.png'), fullPage: true }).catch(() => undefined);
    throw e;
  } finally {
    await context.close();
  }
}

async function operator(
  page: Page,
  site: string,
  mockUrl: string,
  issuer: string,
  mailbox: Mailbox,
  stripe: StripeStandIn,
  shop: Shop,
  receiver: Receiver,
): Promise<void> {
  let memberKey = '';

  await step('sign in as the owner: the guided set-up on an empty Hub, skipped', async () => {
    await signIn(page, site, OWNER_KEY, 'sign-in');
    await page.getByRole('heading', { level: 1, name: 'Set up Hub' }).waitFor();
    await page.getByRole('button', { name: 'Skip set-up' }).click();
    await page.getByRole('heading', { level: 1, name: 'Overview' }).waitFor();
  });

  await step('settings: starter credits', async () => {
    await nav(page, 'Settings', 'Settings');
    await page.locator('input[name=starter_credits]').fill('10');
    await page.getByRole('button', { name: /^Save/ }).click();
    await page.getByRole('status').filter({ hasText: 'Settings saved.' }).waitFor();
    await shot(page, 'settings');
  });

  await step('settings: single sign-on with the OpenID provider, open sign-up', async () => {
    const section = page.getByTestId('sign-in-settings');
    await expectText(section.getByTestId('callback-url'), `${site}/auth/oidc/callback`);
    await section.locator('input[name=oidc_issuer]').fill(issuer);
    await section.locator('input[name=oidc_client_id]').fill(OP_CLIENT_ID);
    await section.locator('input[name=oidc_client_secret]').fill(OP_CLIENT_SECRET);
    await section.getByRole('switch', { name: 'Anyone who signs in may create an account' }).check();
    await page.getByRole('button', { name: 'Save (4)' }).click();
    await page.getByRole('status').filter({ hasText: 'Settings saved.' }).waitFor();
    // The secret is write-only: the field empties, and the page says only that one is set.
    await expectText(section.locator('.secret-input'), 'set');
    if ((await section.locator('input[name=oidc_client_secret]').inputValue()) !== '') throw new Error('the client secret is still in its field');
    if ((await page.content()).includes(OP_CLIENT_SECRET)) throw new Error('the client secret is on the page after saving');
    const saved = await asOwner<{ oidc_issuer: string; oidc_client_secret_set: boolean; signup_open: boolean }>(site, '/api/admin/settings');
    if (saved.oidc_issuer !== issuer || !saved.oidc_client_secret_set || !saved.signup_open) {
      throw new Error(`the settings were not saved: ${JSON.stringify(saved)}`);
    }
    await page.getByRole('button', { name: /^Save/ }).and(page.locator(':disabled')).waitFor();
  });

  await step('settings: email links through SMTP', async () => {
    const section = page.getByTestId('sign-in-settings');
    await section.locator('input[name=smtp_host]').fill('127.0.0.1');
    await section.locator('input[name=smtp_port]').fill(String(mailbox.port));
    // The test's server is on loopback and speaks no TLS.
    await section.locator('select[name=smtp_security]').selectOption('none');
    await section.locator('input[name=smtp_username]').fill(SMTP_USER);
    await section.locator('input[name=smtp_password]').fill(SMTP_PASSWORD);
    await section.locator('input[name=smtp_from]').fill('Hub <hub@example.test>');
    await page.getByRole('button', { name: 'Save (6)' }).click();
    await page.getByRole('status').filter({ hasText: 'Settings saved.' }).waitFor();
    // Both write-only secrets show as set once the saved settings are rendered.
    await section.locator('.secret-input .badge').nth(1).waitFor({ timeout: STEP_TIMEOUT_MS });
    if ((await section.locator('.secret-input .badge').count()) !== 2) throw new Error('both secrets should show as set');
    if ((await page.content()).includes(SMTP_PASSWORD)) throw new Error('the SMTP password is on the page after saving');
    const methods = await (await fetch(`${site}/auth/methods`)).json();
    if (!methods.oidc || !methods.email) throw new Error(`the sign-in page would not offer both: ${JSON.stringify(methods)}`);
    await section.screenshot({ path: join(SHOTS, 'settings-sign-in.png') });
  });

  await sellingSetup(page, site, stripe, shop);

  await step('providers: add, credential, test', async () => {
    await nav(page, 'Providers', 'Providers');
    await page.getByRole('button', { name: 'Add provider' }).click();
    const form = page.getByRole('dialog', { name: 'Add provider' });
    await form.locator('select[name=kind]').selectOption('openai-compatible');
    await form.locator('input[name=name]').fill('mock');
    await form.locator('input[name=base_url]').fill(`${mockUrl}/v1`);
    await form.getByRole('button', { name: 'Add provider' }).click();
    await page.getByRole('heading', { name: 'Credentials of mock' }).waitFor();

    await page.getByRole('button', { name: 'Add credential' }).click();
    const cred = page.getByRole('dialog', { name: 'Add a credential to mock' });
    await cred.locator('input[name=name]').fill('main');
    await cred.locator('input[name=secret]').fill('sk-mock-secret-123456');
    await cred.getByRole('button', { name: 'Add credential' }).click();
    await page.getByRole('status').filter({ hasText: 'sk-m****3456' }).waitFor();
    if ((await page.content()).includes('sk-mock-secret-123456')) throw new Error('the secret is still on the page after saving');

    await page.locator('tr[data-credential=main]').getByRole('button', { name: 'Test' }).click();
    await expectText(page.getByTestId('test-result'), /Passed\s+HTTP 200/);
    await expectText(page.locator('tr[data-provider=mock]'), '1 of 1 active');
    await shot(page, 'providers');
  });

  await step('models: add with the margin calculator, import, bulk margin', async () => {
    await nav(page, 'Models & rates', 'Models & rates');
    await page.getByRole('button', { name: 'Add model' }).click();
    const form = page.getByRole('dialog', { name: 'Add model' });
    await form.locator('input[name=model]').fill('gpt-4o-mini');
    await form.locator('input[name=cost_input]').fill('1.25');
    await form.locator('input[name=cost_output]').fill('5');
    await form.locator('input[name=margin]').fill('20');
    await form.getByRole('button', { name: 'Set rates from costs' }).click();
    if ((await form.locator('input[name=input_rate]').inputValue()) !== '1.5') throw new Error('the calculator did not set the input rate to 1.5');
    if ((await form.locator('input[name=output_rate]').inputValue()) !== '6') throw new Error('the calculator did not set the output rate to 6');
    await shot(page, 'model-form');
    await form.getByRole('button', { name: 'Add model' }).click();
    const row = page.locator('tr[data-model="mock/gpt-4o-mini"]');
    await expectText(row, /1\.50.*6\.00.*20%/);

    await page.getByRole('button', { name: 'Import prices' }).click();
    const imp = page.getByRole('dialog', { name: 'Import prices' });
    await imp.locator('input[name=price_file]').setInputFiles({ name: 'prices.json', mimeType: 'application/json', buffer: Buffer.from(PRICE_FILE) });
    await imp.getByRole('combobox', { name: 'LiteLLM provider' }).selectOption('openai');
    await imp.getByRole('checkbox', { name: 'Import gpt-4.1-nano' }).check();
    await shot(page, 'price-import');
    await imp.getByRole('button', { name: 'Import 1 model' }).click();
    await page.getByRole('dialog', { name: 'Import finished' }).getByText('Created gpt-4.1-nano').waitFor();
    await page.getByRole('button', { name: 'Done' }).click();
    const nano = page.locator('tr[data-model="mock/gpt-4.1-nano"]');
    await expectText(nano, /0\.10.*0\.40.*0\.025/);

    await nano.getByRole('checkbox').check();
    await page.getByRole('button', { name: 'Set margin (1)' }).click();
    const bulk = page.getByRole('dialog', { name: 'Set the margin of 1 model' });
    await bulk.locator('input[name=margin]').fill('50');
    await expectText(bulk.locator('tbody tr'), '0.10 → 0.15');
    await bulk.getByRole('button', { name: 'Update rates' }).click();
    await expectText(nano, /0\.15.*0\.60.*50%/);

    // A price sync from a catalogue file (no model of this OpenAI-compatible provider is in it), then the schedule and the margin floor.
    await page.getByRole('button', { name: 'Sync prices' }).click();
    const sync = page.getByRole('dialog', { name: 'Sync prices' });
    await sync.locator('input[name=file]').setInputFiles({ name: 'prices.json', mimeType: 'application/json', buffer: Buffer.from(PRICE_FILE) });
    await sync.getByRole('button', { name: 'Sync now' }).click();
    await expectText(sync.getByRole('status'), '0 models matched of 1 catalogue entries; 2 of your models not found.');
    await sync.locator('input[name=margin_floor_percent]').fill('10');
    await sync.locator('select[name=below_cost_action]').selectOption('disable');
    await shot(page, 'price-sync');
    await sync.getByRole('button', { name: 'Save' }).click();
    await sync.waitFor({ state: 'detached' });
    await page.getByRole('button', { name: 'Sync prices' }).click();
    if ((await sync.locator('input[name=margin_floor_percent]').inputValue()) !== '10') throw new Error('the margin floor was not saved');
    await sync.getByRole('button', { name: 'Cancel' }).click();

    // The model's rate history: its first rates and the bulk margin's change, by the owner.
    await nano.getByRole('button', { name: 'Edit' }).click();
    const edit = page.getByRole('dialog', { name: 'Edit mock/gpt-4.1-nano' });
    const history = edit.getByRole('region', { name: 'Rate history' });
    await expectText(history.locator('tr').filter({ hasText: 'input_rate' }), /0\.10\s*0\.15/);
    await edit.getByRole('button', { name: 'Cancel' }).click();
    await shot(page, 'models');
  });

  await step('aliases: added through the form with its targets in order, edited, refused when a target is unknown', async () => {
    await nav(page, 'Aliases', 'Aliases');
    await page.getByRole('button', { name: 'Add alias' }).click();
    const form = page.getByRole('dialog', { name: 'Add alias' });
    await form.locator('input[name=name]').fill('cheap');
    await form.locator('textarea[name=targets]').fill('mock/gpt-4.1-nano {"temperature": 0.2}\nno-such-model');
    await form.getByRole('button', { name: 'Save' }).click();
    await expectText(form.getByRole('alert'), 'names no model');
    await form.locator('textarea[name=targets]').fill('mock/gpt-4.1-nano {"temperature": 0.2}\nnot json {');
    await form.getByRole('button', { name: 'Save' }).click();
    await expectText(form.getByRole('alert'), 'Line 2');
    await form.locator('textarea[name=targets]').fill('mock/gpt-4.1-nano {"temperature": 0.2}\ngpt-4o-mini');
    await form.getByRole('button', { name: 'Save' }).click();
    const row = page.locator('tr[data-alias="cheap"]');
    await expectText(row, /mock\/gpt-4\.1-nano.*temperature.*gpt-4o-mini.*Priority/);
    await row.getByRole('button', { name: 'Edit' }).click();
    const edit = page.getByRole('dialog', { name: 'Edit cheap' });
    await edit.getByRole('combobox', { name: 'Routing' }).selectOption('latency');
    await edit.getByRole('button', { name: 'Save' }).click();
    await expectText(row, 'Fastest first');
    const aliases = await asOwner<{ data: { name: string; routing: string; targets: unknown[] }[] }>(site, '/api/admin/aliases');
    const cheap = aliases.data.find((a) => a.name === 'cheap');
    if (cheap?.routing !== 'latency' || JSON.stringify(cheap.targets) !== JSON.stringify([{ model: 'mock/gpt-4.1-nano', overrides: { temperature: 0.2 } }, { model: 'gpt-4o-mini' }]))
      throw new Error(`the alias was not saved as entered: ${JSON.stringify(cheap)}`);
  });

  await step('users: add, key shown once, grant credits', async () => {
    await nav(page, 'Users & keys', 'Users & keys');
    await page.getByRole('button', { name: 'Add user' }).click();
    const form = page.getByRole('dialog', { name: 'Add user' });
    await form.locator('input[name=name]').fill('alice');
    await form.locator('input[name=email]').fill('alice@example.com');
    await form.getByRole('button', { name: 'Add user' }).click();
    await page.getByRole('heading', { level: 1, name: /alice/ }).waitFor();
    await expectText(page.getByTestId('balance'), '$10.00');

    await page.getByRole('button', { name: 'Create key' }).click();
    const keyForm = page.getByRole('dialog', { name: 'Create key' });
    await keyForm.locator('input[name=label]').fill('laptop');
    await keyForm.locator('input[name=rpm_limit]').fill('60');
    await keyForm.getByRole('button', { name: 'Create key' }).click();
    memberKey = (await page.getByTestId('secret').innerText()).trim();
    if (!memberKey.startsWith('hub_')) throw new Error(`the new key looks wrong: ${memberKey}`);
    await shot(page, 'key-created');
    await page.getByRole('button', { name: 'Done' }).click();
    await expectText(page.locator('tr[data-key=laptop]'), '60 rpm');
    if ((await page.content()).includes(memberKey)) throw new Error('the key is still on the page after closing its dialog');
    // Edited through the site: the very next call to a model it no longer allows is refused.
    await page.getByRole('button', { name: 'Edit key laptop' }).click();
    const edit = page.getByRole('dialog', { name: 'Edit key laptop' });
    await edit.locator('input[name=rpm_limit]').fill('30');
    await edit.getByRole('checkbox', { name: 'mock/gpt-4o-mini' }).check();
    await edit.getByRole('button', { name: 'Save' }).click();
    await expectText(page.locator('tr[data-key=laptop]'), /mock\/gpt-4o-mini.*30 rpm/);
    const refused = await fetch(`${site}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${memberKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'mock/gpt-4.1-nano', messages: [{ role: 'user', content: 'hi' }] }),
    });
    if (refused.status !== 404) throw new Error(`a model the edited key no longer allows answered ${refused.status}`);

    await page.getByRole('button', { name: 'Grant credits' }).click();
    const grant = page.getByRole('dialog', { name: 'Grant credits to alice' });
    await grant.locator('input[name=amount]').fill('2.5');
    await grant.locator('input[name=reason]').fill('welcome');
    await grant.getByRole('button', { name: 'Grant' }).click();
    await expectText(page.getByTestId('balance'), '$12.50');
    await expectText(page.locator('tbody tr'), 'welcome');
    await shot(page, 'user');

    await page.getByRole('link', { name: '← Users' }).click();
    await page.locator('tr[data-user=Owner]').getByRole('link').click();
    await page.getByRole('button', { name: 'Grant credits' }).click();
    await page.locator('input[name=amount]').fill('1');
    await page.getByRole('dialog').getByRole('button', { name: 'Grant' }).click();
    await expectText(page.getByTestId('balance'), '$1.00');
    // Large amounts keep every decimal on the way in and out.
    await page.getByRole('button', { name: 'Grant credits' }).click();
    await page.locator('input[name=amount]').fill('1234567.123456789');
    await page.getByRole('dialog').getByRole('button', { name: 'Grant' }).click();
    await expectText(page.getByTestId('balance'), '$1,234,568.123456789');
    await expectText(page.locator('tbody tr'), '$1,234,567.123456789');
    // A grant that expires: a bucket, its expiry in words and as a date.
    const expires = new Date(Date.now() + 3 * DAY_MS + 2 * HOUR_MS);
    await page.getByRole('button', { name: 'Grant credits' }).click();
    const expiring = page.getByRole('dialog', { name: 'Grant credits to Owner' });
    await expiring.locator('input[name=amount]').fill('5');
    await expiring.locator('input[name=reason]').fill('trial week');
    await expiring.locator('input[name=expires_at]').fill(localInput(expires));
    await expiring.getByRole('button', { name: 'Grant' }).click();
    const bucket = page.getByTestId('credit-buckets').locator('tbody tr');
    await expectText(bucket, /Grant: trial week\s*\$5\.00\s*\$5\.00\s*in 3 days/);
    await expectText(bucket, localDate(expires));
    await shot(page, 'user-buckets');
    await nav(page, 'Users & keys', 'Users & keys');
    await shot(page, 'users');
  });

  await step('playground: stream a chat', async () => {
    await nav(page, 'Playground', 'Playground');
    await chat(page, 'mock/gpt-4o-mini', 'Say hello');
    // 12 prompt tokens at 1.5 and 4 completion tokens at 6 credits per million.
    await expectText(page.getByTestId('credits'), '$0.000042');
    await expectText(page.getByTestId('call-stats'), '12 in · 4 out');
    await shot(page, 'playground');
  });

  await step('call log: the call, its details, CSV', async () => {
    await nav(page, 'Call log', 'Call log');
    const row = page.locator('tr[data-call]').filter({ hasText: 'mock/gpt-4o-mini' }).first();
    await expectText(row, /success/);
    await row.click();
    const drawer = page.getByRole('dialog', { name: 'Call' });
    await expectText(drawer.locator('dl div'), /Input tokens\s*12/);
    await expectText(drawer.locator('dl div'), /Output tokens\s*4/);
    await expectText(drawer.locator('dl div'), /Credits\s*\$0\.000042/);
    await expectText(drawer.locator('dl div'), /Upstream TTFB/);
    await shot(page, 'call-detail');
    await page.keyboard.press('Escape');

    await page.locator('select[name=status]').selectOption('failed');
    await page.getByRole('button', { name: 'Apply' }).click();
    await page.getByText('No calls match.').waitFor();
    await page.getByRole('link', { name: 'Reset' }).click();
    await row.waitFor();

    const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Export CSV' }).click()]);
    const csv = readFileSync(await download.path(), 'utf8');
    if (!csv.startsWith('created_at,call_id') || !csv.includes(',0.000042,')) throw new Error(`unexpected CSV:\n${csv}`);
    await shot(page, 'calls');
  });

  await step('overview: the call counted', async () => {
    await nav(page, 'Overview', 'Overview');
    await expectText(stat(page, 'Calls'), /^1$/);
    await expectText(stat(page, 'Credits'), '$0.000042');
    await expectText(page.locator('.barlist li'), 'mock/gpt-4o-mini');
    await expectText(page.locator('.barlist li'), 'Owner');
    await page.getByRole('button', { name: '7d' }).click();
    await expectText(stat(page, 'Calls'), /^1$/);
    await page.getByRole('button', { name: '90d' }).click();
    await expectText(stat(page, 'Calls'), /^1$/);
    await page.getByRole('button', { name: '24h' }).click();
    await shot(page, 'overview');
  });

  await step('audit log: who changed what, filtered, no secret shown', async () => {
    await nav(page, 'Audit log', 'Audit log');
    const grant = page.locator('tr[data-audit]').filter({ hasText: 'grant' }).first();
    await expectText(grant, /Owner/);
    await expectText(grant, /done 201/);
    await grant.click();
    const drawer = page.getByRole('dialog', { name: 'Admin change' });
    await expectText(drawer.locator('dl div'), /Action\s*grant/);
    await expectText(drawer.locator('table.changes'), /balance/);
    await shot(page, 'audit-detail');
    await page.keyboard.press('Escape');
    await page.locator('select[name=resource]').selectOption('credential');
    await page.getByRole('button', { name: 'Apply' }).click();
    await expectText(page.locator('tr[data-audit]').first(), /credential/);
    if ((await page.locator('tr[data-audit]').filter({ hasNotText: 'credential' }).count()) > 0) throw new Error('the filter let other resources through');
    await page.locator('tr[data-audit]').filter({ hasText: 'create' }).first().click();
    await expectText(page.getByRole('dialog', { name: 'Admin change' }).locator('pre'), '"secret": "****"');
    if ((await page.content()).includes('sk-mock-secret-123456')) throw new Error('the audit log shows a credential secret');
    await page.keyboard.press('Escape');
    await shot(page, 'audit');
  });

  await step('prompt caching: the cached tokens and what they saved', async () => {
    // The mock reports 8 of gpt-4.1-nano's 12 prompt tokens as cached: at 0.15 input and
    // 0.0375 cache read credits per million, 8 × 0.1125 = 0.9 per million saved.
    await nav(page, 'Playground', 'Playground');
    await chat(page, 'mock/gpt-4.1-nano', 'Say hello');
    await nav(page, 'Call log', 'Call log');
    await page.locator('tr[data-call]').filter({ hasText: 'mock/gpt-4.1-nano' }).first().click();
    const drawer = page.getByRole('dialog', { name: 'Call' });
    await expectText(drawer.locator('dl div'), /Cache read tokens\s*8/);
    await expectText(drawer.locator('dl div'), /Saved by caching\s*\$0\.0000009/);
    await shot(page, 'call-detail-cached');
    await page.keyboard.press('Escape');
    await nav(page, 'Overview', 'Overview');
    await expectText(stat(page, 'Saved by caching'), '$0.0000009');
  });

  await webhookSteps(page, receiver);

  await step('member: only their own pages', async () => {
    await signOut(page);
    await signIn(page, site, memberKey);
    const links = await navLinks(page);
    if (links.join() !== 'Playground,My account') throw new Error(`a member sees: ${links.join(', ')}`);
    await page.getByRole('heading', { level: 1, name: 'My account' }).waitFor();
    await expectText(page.getByTestId('my-balance'), '$12.50');
    await page.goto(`${site}/#/settings`);
    await page.getByRole('heading', { level: 1, name: 'My account' }).waitFor();

    await nav(page, 'Playground', 'Playground');
    await chat(page, 'mock/gpt-4o-mini', 'Hi from alice');
    await expectText(page.getByTestId('credits'), '$0.000042');
    await shot(page, 'member-playground');

    await nav(page, 'My account', 'My account');
    await expectText(page.getByTestId('my-balance'), '$12.499958');
    await expectText(page.locator('tr[data-call]'), 'mock/gpt-4o-mini');
    await expectText(page.locator('tr[data-key]'), 'laptop');
    await shot(page, 'member-account');
  });
}

/** A person who has no account signs up by single sign-on, works, signs out and comes back. */
async function person(page: Page, context: BrowserContext, site: string, mailbox: Mailbox, browser: Browser, shop: Shop): Promise<void> {
  const me = () => context.request.get(`${site}/api/me`);
  let userId = '';

  await step('sign-in page: single sign-on offered, keys folded away', async () => {
    await page.goto(`${site}/#/`);
    await page.getByRole('heading', { level: 1, name: 'Sign in to Hub' }).waitFor();
    await page.getByRole('link', { name: 'Sign in with single sign-on' }).waitFor();
    await page.getByText('New here? Signing in creates your account.').waitFor();
    await page.locator('input[name=email]').waitFor();
    if (await page.locator('input[name=key]').isVisible()) throw new Error('the API key form is open beside single sign-on');
    await shot(page, 'sign-in-sso');
  });

  await step('a new person signs up by single sign-on', async () => {
    const how = await signInBySso(page, site, NEW_PERSON);
    if (how !== 'login page') throw new Error('the provider did not ask a new browser who it is');
    await page.getByRole('heading', { level: 1, name: 'My account' }).waitFor();
    const links = await navLinks(page);
    if (links.join() !== 'Playground,My account') throw new Error(`a new member sees: ${links.join(', ')}`);
    await expectText(page.getByTestId('who'), `${NEW_PERSON} · member · signed in with this browser`);
    await expectText(page.getByTestId('my-balance'), '$10.00');
    const identities = page.getByTestId('identities');
    await expectText(identities.locator('tbody tr'), new RegExp(`Single sign-on\\s*${NEW_PERSON}\\s*127\\.0\\.0\\.1:\\d+`));
    if ((await rowCount(identities)) !== 1) throw new Error(`${await rowCount(identities)} sign-in methods, not 1`);
    const sessions = page.getByTestId('sessions');
    await expectText(sessions.locator('tbody tr.current'), /Chrome \d+.*this browser\s*Single sign-on/);
    if ((await rowCount(sessions)) !== 1) throw new Error(`${await rowCount(sessions)} sessions, not 1`);
    await page.getByRole('link', { name: 'Link another sign-in' }).waitFor();
    // Signed in by an HttpOnly cookie: nothing of it for scripts to read, no key stored.
    if (await page.evaluate(() => document.cookie.includes('hub_session') || localStorage.getItem('hub.apiKey') !== null)) {
      throw new Error('the session is readable by scripts or a key was stored');
    }
    const users = await asOwner<{ data: { id: string; email: string | null }[] }>(site, '/api/admin/users?limit=500');
    const mine = users.data.filter((u) => u.email === NEW_PERSON);
    if (mine.length !== 1) throw new Error(`${mine.length} users with ${NEW_PERSON}`);
    userId = mine[0].id;
    await shot(page, 'account-session');
  });

  await step('a session writes with its CSRF token: a key from the account page', async () => {
    await page.getByRole('button', { name: 'Create key' }).click();
    const form = page.getByRole('dialog', { name: 'Create key' });
    await form.locator('input[name=label]').fill('cli');
    await form.getByRole('button', { name: 'Create key' }).click();
    const key = (await page.getByTestId('secret').innerText()).trim();
    await page.getByRole('button', { name: 'Done' }).click();
    await expectText(page.locator('tr[data-key=cli]'), 'active');
    const res = await fetch(`${site}/api/me`, { headers: { authorization: `Bearer ${key}` } });
    const body = (await res.json()) as { user?: { id: string } };
    if (res.status !== 200 || body.user?.id !== userId) throw new Error(`the new key does not sign in as the person: ${res.status}`);
    // The same write with the cookie alone is refused: the page's token is what made it pass.
    const forged = await context.request.post(`${site}/api/me/keys`, { data: { label: 'no-token' } });
    if (forged.status() !== 403) throw new Error(`a cookie write without the CSRF token got ${forged.status()}`);
  });

  await step('a session streams in the playground', async () => {
    await nav(page, 'Playground', 'Playground');
    await chat(page, 'mock/gpt-4o-mini', 'Hello from single sign-on');
    await expectText(page.getByTestId('credits'), '$0.000042');
    await nav(page, 'My account', 'My account');
    await expectText(page.getByTestId('my-balance'), '$9.999958');
  });

  await step('sign out ends the session', async () => {
    await signOut(page);
    if ((await me()).status() !== 401) throw new Error('/api/me still answers after signing out');
  });

  await step('signing in again: the same account, no second starter credits', async () => {
    await signInBySso(page, site, NEW_PERSON);
    await page.getByRole('heading', { level: 1, name: 'My account' }).waitFor();
    await expectText(page.getByTestId('who'), NEW_PERSON);
    await expectText(page.getByTestId('my-balance'), '$9.999958');
    await expectText(page.locator('tr[data-key=cli]'), 'active');
    const sessions = page.getByTestId('sessions');
    await expectText(sessions.locator('tbody tr.current'), 'this browser');
    if ((await rowCount(sessions)) !== 1) throw new Error(`${await rowCount(sessions)} sessions after signing out and in, not 1`);
    if ((await rowCount(page.getByTestId('identities'))) !== 1) throw new Error('signing in again added a sign-in method');
    const body = (await (await me()).json()) as { user: { id: string } };
    if (body.user.id !== userId) throw new Error(`signed in as ${body.user.id}, not ${userId}`);
    const users = await asOwner<{ data: { email: string | null }[] }>(site, '/api/admin/users?limit=500');
    if (users.data.filter((u) => u.email === NEW_PERSON).length !== 1) throw new Error('signing in again created another user');
  });

  await step('an emailed link signs in to the same account and links the address', async () => {
    await signOut(page);
    await page.locator('input[name=email]').fill(NEW_PERSON);
    await page.getByRole('button', { name: 'Email me a sign-in link' }).click();
    await page.getByRole('status').filter({ hasText: `Check your inbox: if ${NEW_PERSON} may sign in` }).waitFor();
    const link = await mailbox.link(site, NEW_PERSON, 1);
    await page.goto(link);
    await page.getByRole('heading', { level: 1, name: 'My account' }).waitFor();
    await expectText(page.getByTestId('my-balance'), '$9.999958');
    const identities = page.getByTestId('identities');
    await expectText(identities.locator('tbody tr'), /Email link/);
    if ((await rowCount(identities)) !== 2) throw new Error(`${await rowCount(identities)} sign-in methods, not 2 (single sign-on and email)`);
    await expectText(page.getByTestId('sessions').locator('tbody tr.current'), /this browser\s*Email link/);
    const body = (await (await me()).json()) as { user: { id: string } };
    if (body.user.id !== userId) throw new Error(`the link signed in ${body.user.id}, not ${userId}`);
    // A link works once.
    await page.goto(link);
    await page.getByRole('heading', { level: 1, name: 'Sign-in failed' }).waitFor();
    await page.goto(`${site}/#/account`);
    await page.getByRole('heading', { level: 1, name: 'My account' }).waitFor();
  });

  await step("ending another browser's session signs it out", async () => {
    const other = await browser.newContext({ viewport: { width: 1360, height: 900 } });
    try {
      other.setDefaultTimeout(STEP_TIMEOUT_MS);
      await signInBySso(await other.newPage(), site, NEW_PERSON);
      await page.reload();
      const sessions = page.getByTestId('sessions');
      await sessions.locator('tbody tr:not(.current)').waitFor();
      if ((await rowCount(sessions)) !== 2) throw new Error(`${await rowCount(sessions)} sessions with two browsers signed in, not 2`);
      await sessions.locator('tbody tr:not(.current)').getByRole('button', { name: 'End' }).click();
      await sessions.locator('tbody tr:not(.current)').waitFor({ state: 'detached' });
      if ((await other.request.get(`${site}/api/me`)).status() !== 401) throw new Error('the ended session still signs the other browser in');
      if ((await me()).status() !== 200) throw new Error('ending the other session signed this browser out');
    } finally {
      await other.close();
    }
  });

  await step('unlinking a sign-in method (a cookie write)', async () => {
    const identities = page.getByTestId('identities');
    await identities.locator('tbody tr').filter({ hasText: 'Email link' }).getByRole('button', { name: 'Unlink' }).click();
    await identities.locator('tbody tr').filter({ hasText: 'Email link' }).waitFor({ state: 'detached' });
    if ((await rowCount(identities)) !== 1) throw new Error(`${await rowCount(identities)} sign-in methods after unlinking, not 1`);
  });

  await step('the member cannot reach admin pages', async () => {
    const links = await navLinks(page);
    if (links.join() !== 'Playground,My account') throw new Error(`the member sees: ${links.join(', ')}`);
    await page.goto(`${site}/#/settings`);
    await page.getByRole('heading', { level: 1, name: 'My account' }).waitFor();
    const admin = await context.request.get(`${site}/api/admin/settings`);
    if (admin.status() !== 403) throw new Error(`the admin API answered a member's session with ${admin.status()}`);
  });

  await buying(page, site, shop);
  await creditsAndNotices(page, context, site, userId);
}

// ------------------------------------------------------------------ selling credits

/** The Stripe stand-in (hub-stripe): its API address and the keys it accepts and signs with. */
interface StripeStandIn {
  apiBase: string;
  secretKey: string;
  webhookSecret: string;
}

/** What the operator set up for customers: the codes minted (the second one disabled). */
interface Shop {
  codes: string[];
}

const CODE = /^HUB-[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}$/;

/** The operator connects Stripe, puts a pack on sale and mints codes, all through the site. */
async function sellingSetup(page: Page, site: string, stripe: StripeStandIn, shop: Shop): Promise<void> {
  await step('settings: Stripe keys (write-only) and API address', async () => {
    await nav(page, 'Settings', 'Settings');
    const section = page.getByTestId('payment-settings');
    await expectText(section.getByTestId('stripe-webhook-url'), `${site}/api/payments/stripe/webhook`);
    await section.locator('input[name=stripe_secret_key]').fill(stripe.secretKey);
    await section.locator('input[name=stripe_webhook_secret]').fill(stripe.webhookSecret);
    await section.locator('input[name=stripe_api_base]').fill(stripe.apiBase);
    await page.getByRole('button', { name: 'Save (3)' }).click();
    await page.getByRole('status').filter({ hasText: 'Settings saved.' }).waitFor();
    await section.locator('.secret-input .badge').nth(1).waitFor();
    const html = await page.content();
    if (html.includes(stripe.secretKey) || html.includes(stripe.webhookSecret)) throw new Error('a Stripe secret is on the page after saving');
    const saved = await asOwner<{ stripe_secret_key_set: boolean; stripe_webhook_secret_set: boolean; stripe_api_base: string }>(site, '/api/admin/settings');
    if (!saved.stripe_secret_key_set || !saved.stripe_webhook_secret_set || saved.stripe_api_base !== stripe.apiBase) {
      throw new Error(`the Stripe settings were not saved: ${JSON.stringify(saved)}`);
    }
    await section.screenshot({ path: join(SHOTS, 'settings-payments.png') });
  });

  await step('billing: credit packs created, edited, refused, deleted', async () => {
    await nav(page, 'Billing', 'Billing');
    await packForm(page, 'New pack', 'New credit pack', { name: '100 credits', price: '20', credits: '100' }, 'Create pack');
    await expectText(page.locator('tr[data-pack="100 credits"]'), /\$20\.00\s*\$100\.00\s*on sale/);
    await packForm(page, 'New pack', 'New credit pack', { name: 'Trial', price: '0.5', credits: '1.5' }, 'Create pack');
    const trial = page.locator('tr[data-pack=Trial]');
    await expectText(trial, /\$0\.50\s*\$1\.50\s*on sale/);
    await trial.getByRole('button', { name: 'Edit' }).click();
    const edit = page.getByRole('dialog', { name: 'Edit Trial' });
    await edit.getByRole('switch', { name: 'On sale' }).uncheck();
    await packForm(page, null, 'Edit Trial', { price: '0.75' }, 'Save');
    await expectText(trial, /\$0\.75\s*\$1\.50\s*hidden/);
    // A price the currency cannot charge is explained, and nothing is sent.
    await page.getByRole('button', { name: 'New pack' }).click();
    const bad = page.getByRole('dialog', { name: 'New credit pack' });
    await bad.locator('input[name=name]').fill('Odd');
    await bad.locator('input[name=price]').fill('1.001');
    await bad.locator('input[name=credits]').fill('1');
    await bad.getByRole('button', { name: 'Create pack' }).click();
    await expectText(bad.getByRole('alert'), 'Price: a number with at most 2 decimals for USD.');
    await bad.getByRole('button', { name: 'Cancel' }).click();
    await trial.getByRole('button', { name: 'Delete' }).click();
    await trial.waitFor({ state: 'detached' });
    const packs = await asOwner<{ data: { name: string }[] }>(site, '/api/admin/credit-packs');
    if (packs.data.map((p) => p.name).join() !== '100 credits') throw new Error(`packs: ${JSON.stringify(packs.data)}`);
    await shot(page, 'billing-packs');
  });

  await step('billing: codes minted, shown once, downloaded as CSV, one disabled', async () => {
    await page.getByRole('navigation', { name: 'Billing' }).getByRole('link', { name: 'Redemption codes' }).click();
    await page.getByRole('button', { name: 'Mint codes' }).click();
    const form = page.getByRole('dialog', { name: 'Mint redemption codes' });
    await form.locator('input[name=label]').fill('launch');
    await form.locator('input[name=credits]').fill('25');
    await form.locator('input[name=count]').fill('2');
    await form.getByRole('button', { name: 'Mint' }).click();
    const dialog = page.getByRole('dialog', { name: '2 codes minted' });
    const codes = (await dialog.getByTestId('minted-codes').innerText()).trim().split('\n');
    if (codes.length !== 2 || !codes.every((c) => CODE.test(c))) throw new Error(`minted: ${codes.join(', ')}`);
    const [download] = await Promise.all([page.waitForEvent('download'), dialog.getByRole('button', { name: 'Download CSV' }).click()]);
    const csv = readFileSync(await download.path(), 'utf8');
    const expected = codes.map((c) => `${c},25,1,true,,launch,`);
    if (download.suggestedFilename() !== 'hub-codes-launch.csv' || !csv.startsWith('code,credits,') || !expected.every((row) => csv.includes(row))) {
      throw new Error(`unexpected CSV ${download.suggestedFilename()}:\n${csv}`);
    }
    await shot(page, 'codes-minted');
    await dialog.getByRole('button', { name: 'Done' }).click();
    if ((await page.content()).includes(codes[0])) throw new Error('a code is still on the page after closing its dialog');
    const batch = page.locator('details[data-batch=launch]');
    await expectText(batch.locator('summary'), /2 codes × \$25\.00[\s\S]*0 redemptions/);
    await batch.locator('summary').click();
    const second = batch.locator(`tr[data-code="HUB-…-${codes[1].slice(-4)}"]`);
    await second.getByRole('button', { name: 'Disable' }).click();
    await expectText(second, 'disabled');
    await shot(page, 'billing-codes');
    shop.codes = codes;
  });
}

async function packForm(page: Page, open: string | null, title: string, fields: Record<string, string>, submit: string): Promise<void> {
  if (open) await page.getByRole('button', { name: open }).click();
  const form = page.getByRole('dialog', { name: title });
  for (const [name, value] of Object.entries(fields)) await form.locator(`input[name=${name}]`).fill(value);
  await form.getByRole('button', { name: submit }).click();
  await form.waitFor({ state: 'detached' });
}

/** The signed-in person buys the pack through the checkout, cancels another, and redeems the operator's code. */
async function buying(page: Page, site: string, shop: Shop): Promise<void> {
  const buy = () => page.getByTestId('buy-credits').locator('[data-pack="100 credits"]').getByRole('button', { name: 'Buy for $20.00' }).click();

  await step('buying a pack: to the checkout page and back, the credits arrive', async () => {
    await nav(page, 'My account', 'My account');
    await expectText(page.getByTestId('my-balance'), '$9.999958');
    await buy();
    await page.getByRole('heading', { level: 1, name: 'Pay 100 credits' }).waitFor();
    if (!page.url().startsWith('http://127.0.0.1:') || !page.url().includes('/c/pay/cs_test_')) throw new Error(`checkout at ${page.url()}`);
    await expectText(page.getByTestId('amount'), '2000 usd');
    await shot(page, 'stripe-checkout');
    await page.getByRole('button', { name: 'Pay' }).click();
    await page.getByRole('heading', { level: 1, name: 'My account' }).waitFor();
    if (!page.url().startsWith(`${site}/#/account?checkout=success`)) throw new Error(`back at ${page.url()}`);
    const notice = page.getByTestId('checkout-notice');
    await expectText(notice, 'Payment received: $100.00 added (100 credits).');
    await expectText(page.getByTestId('my-balance'), '$109.999958');
    await expectText(page.getByTestId('history').locator('tr[data-kind=purchase]'), /Purchase\s*\$100\.00\s*purchase: 100 credits/);
    await expectText(page.getByTestId('purchases').locator('tbody tr'), /100 credits\s*\$100\.00\s*\$20\.00\s*paid/);
    await shot(page, 'account-bought');
    await notice.getByRole('link', { name: 'Dismiss' }).click();
    await notice.waitFor({ state: 'detached' });
  });

  await step('a checkout cancelled: back with nothing charged', async () => {
    await buy();
    await page.getByRole('link', { name: 'Cancel and go back' }).click();
    await expectText(page.getByTestId('checkout-notice'), 'Checkout cancelled: nothing was charged.');
    await expectText(page.getByTestId('purchases').locator('tbody tr').first(), 'awaiting payment');
    await expectText(page.getByTestId('my-balance'), '$109.999958');
  });

  await step("redeeming the operator's code, typed loosely; used and disabled codes refused", async () => {
    const form = page.getByTestId('redeem');
    const [code, disabled] = shop.codes;
    await form.locator('input[name=code]').fill(code.toLowerCase().replace(/-/g, ' '));
    await form.getByRole('button', { name: 'Redeem' }).click();
    await expectText(form.getByRole('status'), `Code HUB-…-${code.slice(-4)} redeemed: $25.00 added. Balance $134.999958.`);
    await expectText(page.getByTestId('my-balance'), '$134.999958');
    await expectText(page.getByTestId('history').locator('tr[data-kind=redemption]'), /Code redeemed\s*\$25\.00\s*redemption code/);
    for (const [typed, refusal] of [
      [code, 'You have already redeemed this code.'],
      [disabled, 'This code has been disabled.'],
    ]) {
      await form.locator('input[name=code]').fill(typed);
      await form.getByRole('button', { name: 'Redeem' }).click();
      await expectText(form.getByRole('alert'), refusal);
    }
    await expectText(page.getByTestId('my-balance'), '$134.999958');
    await shot(page, 'account-credits');
  });
}

/** The operator, in a browser of their own, finds the sale, Stripe's delivery and the redemption. */
async function operatorSales(page: Page, site: string, shop: Shop): Promise<void> {
  await step('the operator sees the purchase, its webhook and the redemption', async () => {
    await signIn(page, site, OWNER_KEY);
    await nav(page, 'Billing', 'Billing');
    const tabs = page.getByRole('navigation', { name: 'Billing' });
    await tabs.getByRole('link', { name: 'Purchases' }).click();
    const payments = page.getByTestId('payments');
    await expectText(payments.locator('tbody tr'), new RegExp(`${NEW_PERSON}\\s*100 credits\\s*\\$100\\.00\\s*\\$20\\.00\\s*paid`));
    await expectText(payments.locator('tbody tr'), 'awaiting payment');
    await page.getByRole('combobox', { name: 'Status' }).selectOption('paid');
    // The list empties while the filtered page loads, then shows it whole.
    await payments.locator('tbody tr', { hasText: 'awaiting payment' }).waitFor({ state: 'detached' });
    await payments.locator('tbody tr[data-payment]').first().waitFor();
    const paid = await payments.locator('tbody tr[data-payment]').allInnerTexts();
    if (paid.length !== 1 || !paid[0].includes('paid')) throw new Error(`paid purchases listed: ${paid.join(' | ')}`);
    await shot(page, 'billing-payments');
    await tabs.getByRole('link', { name: 'Stripe events' }).click();
    await expectText(page.getByTestId('payment-events').locator('tbody tr'), /checkout\.session\.completed.*granted/);
    await shot(page, 'billing-events');
    await tabs.getByRole('link', { name: 'Redemption codes' }).click();
    await expectText(page.locator('details[data-batch=launch] summary'), /2 codes × \$25\.00[\s\S]*\b1 redemption\b/);
    if (shop.codes.some((c) => c.length === 0)) throw new Error('no codes were minted');
  });
}

// ------------------------------------------------------------------ notifications

interface Received {
  id: string;
  timestamp: string;
  signature: string;
  body: string;
}

/** A webhook endpoint on loopback: keeps every POST (its Standard Webhooks headers and raw body) and answers 200. */
class Receiver {
  private constructor(
    private readonly server: Server,
    readonly url: string,
    readonly received: Received[],
  ) {}

  static async start(): Promise<Receiver> {
    const received: Received[] = [];
    const server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const header = (name: string) => String(req.headers[name] ?? '');
        received.push({ id: header('webhook-id'), timestamp: header('webhook-timestamp'), signature: header('webhook-signature'), body: Buffer.concat(chunks).toString() });
        res.writeHead(200).end();
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    return new Receiver(server, `http://127.0.0.1:${(server.address() as AddressInfo).port}/hub-events`, received);
  }

  /** Waits (a bounded while) until `n` deliveries have arrived. */
  async count(n: number): Promise<Received[]> {
    for (let i = 0; i < 100 && this.received.length < n; i++) await sleep(100);
    if (this.received.length < n) throw new Error(`the receiver got ${this.received.length} deliveries, not ${n}, within 10 s`);
    return this.received;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}

/** Whether `r` carries a Standard Webhooks signature made with `secret` (`whsec_` and the base64 key). */
function signedWith(r: Received, secret: string): boolean {
  const key = Buffer.from(secret.replace(/^whsec_/, ''), 'base64');
  const expected = `v1,${createHmac('sha256', key).update(`${r.id}.${r.timestamp}.${r.body}`).digest('base64')}`;
  return r.signature.split(' ').includes(expected);
}

/** The operator sends events to the receiver: a webhook added, tested, resent, edited, rotated and deleted through the site. */
async function webhookSteps(page: Page, receiver: Receiver): Promise<void> {
  let secret = '';
  const summary = page.getByTestId('webhook-summary');
  const secretShown = async () => {
    const dialog = page.getByRole('dialog', { name: 'Signing secret' });
    const shown = (await dialog.getByTestId('secret').innerText()).trim();
    if (!/^whsec_[A-Za-z0-9+/]+=*$/.test(shown)) throw new Error(`the signing secret looks wrong: ${shown}`);
    return shown;
  };

  await step('webhooks: added for chosen events, the signing secret shown once', async () => {
    await nav(page, 'Webhooks', 'Webhooks');
    await page.getByRole('button', { name: 'Add webhook' }).click();
    const form = page.getByRole('dialog', { name: 'Add webhook' });
    await form.locator('input[name=url]').fill(receiver.url);
    await form.locator('input[name=description]').fill('billing system');
    await form.getByRole('switch', { name: /^Every event/ }).uncheck();
    await form.getByRole('button', { name: 'Add webhook' }).click();
    await expectText(form.getByRole('alert'), 'Events: choose at least one, or every event.');
    await form.getByRole('checkbox', { name: /^balance\.low\b/ }).check();
    await form.getByRole('checkbox', { name: /^credits\.purchased\b/ }).check();
    await form.getByRole('button', { name: 'Add webhook' }).click();
    secret = await secretShown();
    await shot(page, 'webhook-secret');
    await page.getByRole('dialog', { name: 'Signing secret' }).getByRole('button', { name: 'Done' }).click();
    await page.getByRole('heading', { level: 1, name: receiver.url }).waitFor();
    await expectText(summary, /enabled\s*balance\.low, credits\.purchased · secret whsec_\S+…/);
    if ((await page.content()).includes(secret)) throw new Error('the signing secret is still on the page after closing its dialog');
  });

  await step('webhooks: a test delivered, signed with that secret, then resent', async () => {
    await page.getByRole('button', { name: 'Send test' }).click();
    await expectText(page.getByRole('status'), 'Test event sent');
    const row = page.getByTestId('deliveries').locator('tr[data-event="webhook.test"]');
    await expectText(row.and(page.locator('[data-state=delivered]')), /webhook\.test\s*msg_\S+\s*delivered\s*1\s*HTTP 200/);
    const [first] = await receiver.count(1);
    if (JSON.parse(first.body).type !== 'webhook.test' || !signedWith(first, secret)) throw new Error(`not a signed test event: ${JSON.stringify(first)}`);
    await row.getByRole('button', { name: /^Resend/ }).click();
    await expectText(row.and(page.locator('[data-state=delivered]')), /delivered\s*2\s*HTTP 200/);
    const [, again] = await receiver.count(2);
    if (again.id !== first.id || again.body !== first.body || !signedWith(again, secret)) throw new Error(`the resend differs: ${JSON.stringify(again)}`);
    if ((await row.count()) !== 1) throw new Error('the resend should be the same delivery, tried again');
    await shot(page, 'webhook-deliveries');
  });

  await step('webhooks: edited to every event, secret rotated (both sign a while), deleted', async () => {
    await page.getByRole('button', { name: 'Edit', exact: true }).click();
    const form = page.getByRole('dialog', { name: 'Edit webhook' });
    await form.getByRole('switch', { name: /^Every event/ }).check();
    await form.getByRole('button', { name: 'Save' }).click();
    await form.waitFor({ state: 'detached' });
    await expectText(summary, 'every event');
    await page.getByRole('button', { name: 'Rotate secret' }).click();
    const rotated = await secretShown();
    await expectText(page.getByRole('dialog', { name: 'Signing secret' }), 'The previous secret also signs until');
    if (rotated === secret) throw new Error('rotating kept the same secret');
    await page.getByRole('dialog', { name: 'Signing secret' }).getByRole('button', { name: 'Done' }).click();
    await page.getByRole('button', { name: 'Send test' }).click();
    const third = (await receiver.count(3))[2];
    if (!signedWith(third, rotated) || !signedWith(third, secret)) throw new Error(`during the rotation both secrets should sign: ${third.signature}`);
    await page.getByRole('button', { name: 'Delete', exact: true }).click();
    await page.getByRole('heading', { level: 1, name: 'Webhooks' }).waitFor();
    await expectText(page.getByTestId('webhooks').locator('tbody tr'), 'No webhooks yet.');
  });
}

/** The customer sees credit that expires, and chooses what they are told by mail. */
async function creditsAndNotices(page: Page, context: BrowserContext, site: string, userId: string): Promise<void> {
  await step('an expiring grant: its bucket and expiry on the account page', async () => {
    const expires = new Date(Date.now() + 2 * DAY_MS + HOUR_MS);
    const res = await fetch(`${site}/api/admin/users/${userId}/grants`, {
      method: 'POST',
      headers: { authorization: `Bearer ${OWNER_KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({ amount: '3', reason: 'welcome week', expires_at: expires.toISOString() }),
    });
    if (res.status !== 201) throw new Error(`the grant answered ${res.status} ${await res.text()}`);
    await page.goto(`${site}/#/account`);
    await page.reload();
    const bucket = page.getByTestId('credit-buckets').locator('tbody tr');
    await expectText(bucket, /Grant: welcome week\s*\$3\.00\s*\$3\.00\s*in 2 days/);
    await expectText(bucket, localDate(expires));
    await expectText(page.getByTestId('expiring-soon'), '$3.00 expires within 30 days');
    await expectText(page.getByTestId('my-balance'), '$137.999958');
    await page.getByTestId('credit-buckets').screenshot({ path: join(SHOTS, 'account-buckets.png') });
  });

  await step('low-balance mail turned off and a threshold of my own: kept after a reload', async () => {
    const form = page.getByTestId('notifications');
    const lowMail = form.getByRole('switch', { name: 'Email me when my balance runs low or runs out' });
    const threshold = form.locator('input[name=low_balance_threshold]');
    if (!(await lowMail.isChecked())) throw new Error('low-balance mail should start on');
    await lowMail.uncheck();
    await threshold.fill('2.5000000001');
    await form.getByRole('button', { name: 'Save notifications' }).click();
    await expectText(form.getByRole('alert'), 'Threshold: an amount of credits like 2.5, at most 9 decimals.');
    await threshold.fill('2.5');
    await form.getByRole('button', { name: 'Save notifications' }).click();
    await expectText(form.getByRole('status'), 'Notification settings saved.');
    await page.reload();
    await form.getByRole('button', { name: 'Save notifications' }).waitFor();
    if (await lowMail.isChecked()) throw new Error('low-balance mail is on again after a reload');
    if ((await threshold.inputValue()) !== '2.5') throw new Error(`the threshold after a reload: ${await threshold.inputValue()}`);
    const saved = await (await context.request.get(`${site}/api/me/notifications`)).json();
    if (saved.email_low_balance !== false || saved.email_receipts !== true || saved.low_balance_threshold !== '2.5') {
      throw new Error(`saved: ${JSON.stringify(saved)}`);
    }
    await form.screenshot({ path: join(SHOTS, 'account-notifications.png') });
  });
}

// ------------------------------------------------------------------ languages

const LANGUAGE_SHOTS = join(SHOTS, 'languages');
const CJK_FONTS = join(REPO, 'tests', 'cjk-fonts', 'node_modules', '@fontsource-variable');
const FONT_PATH = '/__e2e-fonts/';

/**
 * Chinese and Japanese fonts for the pages of `context` (Noto Sans SC and JP
 * from tests/cjk-fonts, served on the site's origin as its CSP wants): a
 * machine without CJK fonts would otherwise screenshot empty boxes.
 */
async function withCjkFonts(context: BrowserContext, site: string): Promise<void> {
  const css = ['noto-sans-sc', 'noto-sans-jp']
    .map((pkg) =>
      readFileSync(join(CJK_FONTS, pkg, 'index.css'), 'utf8')
        .replaceAll('url(./files/', `url(${FONT_PATH}${pkg}/`)
        // The names the site's font stacks list.
        .replace(/'Noto Sans (SC|JP) Variable'/g, "'Noto Sans $1'"),
    )
    .join('\n');
  await context.route(`${site}${FONT_PATH}**`, (route) => {
    const [pkg, file] = new URL(route.request().url()).pathname.slice(FONT_PATH.length).split('/');
    return route.fulfill({ path: join(CJK_FONTS, pkg, 'files', file), contentType: 'font/woff2' });
  });
  await context.addInitScript((text: string) => {
    document.addEventListener('DOMContentLoaded', () => {
      const style = document.createElement('style');
      style.textContent = text;
      document.head.append(style);
    });
  }, css);
}

/**
 * A full-page screenshot once the fonts its text needs have loaded: asked
 * for explicitly (the page may not have started loading them yet), regular
 * and bold, then whatever else is still loading.
 */
async function fullShot(page: Page, file: string): Promise<void> {
  await page.evaluate(async () => {
    const text = document.body.innerText;
    const faces = ['400', '700'].flatMap((weight) => ['Noto Sans SC', 'Noto Sans JP'].map((family) => `${weight} 16px "${family}"`));
    await Promise.all(faces.map((face) => document.fonts.load(face, text)));
    await document.fonts.ready;
  });
  await page.screenshot({ path: file, fullPage: true });
}

/** The site's pages, as `#/` routes, each with the catalogue key of its heading. */
function sitePages(ownerId: string): [string, MessageKey][] {
  return [
    ['overview', 'nav.overview'],
    ['providers', 'nav.providers'],
    ['models', 'nav.models'],
    ['aliases', 'nav.aliases'],
    ['users', 'nav.users'],
    [`users/${ownerId}`, 'nav.users'],
    ['teams', 'nav.teams'],
    ['calls', 'nav.calls'],
    ['billing?tab=packs', 'nav.billing'],
    ['billing?tab=codes', 'nav.billing'],
    ['billing?tab=payments', 'nav.billing'],
    ['billing?tab=events', 'nav.billing'],
    ['webhooks', 'nav.webhooks'],
    ['playground', 'nav.playground'],
    ['audit', 'nav.audit'],
    ['settings', 'nav.settings'],
    ['setup', 'nav.setup'],
    ['account', 'nav.account'],
  ];
}

/**
 * What a page in `lang` must not show: a key the catalogue lacks (`⟦key⟧`),
 * or, in Chinese and Japanese, a sentence of the English catalogue (a string
 * the site wrote without asking the catalogue).
 */
async function untranslated(page: Page, lang: Lang): Promise<string[]> {
  const text = await page.locator('body').innerText();
  const found = [...text.matchAll(/⟦[^⟧]*⟧/g)].map((m) => m[0]);
  if (lang !== 'en') {
    const english = Object.values(CATALOGUES.en).filter((v) => v.length >= 12 && / \w+ /.test(v) && !v.includes('{'));
    found.push(...english.filter((v) => text.includes(v)));
  }
  return found;
}

/** Waits (a bounded while) until what loads after the heading (tables, charts) is in place: no `loading` left on the page. */
async function loaded(page: Page, loading: string): Promise<void> {
  await page.waitForLoadState('networkidle');
  for (let i = 0; i < 100; i++) {
    if ((await page.getByText(loading, { exact: true }).count()) === 0) return;
    await sleep(100);
  }
  throw new Error(`still "${loading}" after 10 s`);
}

/** Signs in with the owner's key without reading any label: the page may be in any language. */
async function signInAnyLanguage(page: Page, site: string): Promise<void> {
  await page.goto(`${site}/#/`);
  const keyForm = page.locator('details.key-signin');
  await keyForm.waitFor();
  if (!(await keyForm.evaluate((d) => (d as HTMLDetailsElement).open))) await keyForm.locator('summary').click();
  await keyForm.locator('input[name=key]').fill(OWNER_KEY);
  await keyForm.locator('button[type=submit]').click();
  await page.locator('nav.sidebar').waitFor();
}

/**
 * Every page in each language, the browser's locale choosing it: no missing
 * key, no English left, the heading and dates as the language writes them,
 * a full-page screenshot of each; then switching with the chooser.
 */
async function languages(browser: Browser, site: string): Promise<void> {
  mkdirSync(LANGUAGE_SHOTS, { recursive: true });
  const owner = await asOwner<{ user: { id: string } }>(site, '/api/me');
  // A date as each language writes it (the call log and the user page show some).
  const DATE: Record<Lang, RegExp> = { en: /\b\d{2}\/\d{2}\/\d{4}, \d{2}:\d{2}:\d{2}\b/, zh: /\b\d{4}\/\d{2}\/\d{2} \d{2}:\d{2}:\d{2}\b/, ja: /\b\d{4}\/\d{2}\/\d{2} \d{2}:\d{2}:\d{2}\b/ };
  for (const { lang, tag } of LANGUAGES) {
    const msg = CATALOGUES[lang];
    await step(`languages: every page in ${tag}, chosen by the browser`, async () => {
      await inContext(
        browser,
        async (page, context) => {
          await withCjkFonts(context, site);
          await page.goto(`${site}/#/`);
          await page.getByRole('heading', { level: 1, name: msg['signIn.heading'].replace('{app}', 'Hub') }).waitFor();
          const signInGaps = await untranslated(page, lang);
          if (signInGaps.length) throw new Error(`the sign-in page in ${tag} shows ${signInGaps.join(' | ')}`);
          await fullShot(page, join(LANGUAGE_SHOTS, `${lang}-sign-in.png`));
          await signInAnyLanguage(page, site);
          if ((await page.locator('html').getAttribute('lang')) !== tag) throw new Error(`<html lang> is not ${tag}`);
          const shots: string[] = [];
          for (const [route, heading] of sitePages(owner.user.id)) {
            await page.goto(`${site}/#/${route}`);
            const h1 = page.getByRole('heading', { level: 1 });
            if (route.startsWith('users/')) await h1.filter({ hasText: 'Owner' }).waitFor();
            else await h1.filter({ hasText: msg[heading] }).waitFor();
            await loaded(page, msg['common.loading']);
            const gaps = await untranslated(page, lang);
            if (gaps.length) throw new Error(`#/${route} in ${tag} shows ${gaps.join(' | ')}`);
            if (route === 'calls' || route.startsWith('users/')) {
              const text = await page.locator('main').innerText();
              if (!DATE[lang].test(text)) throw new Error(`#/${route} in ${tag} shows no date written as ${DATE[lang]}`);
            }
            const name = route.startsWith('users/') ? 'user' : route.replace(/[/?=]/g, '-');
            const file = join(LANGUAGE_SHOTS, `${lang}-${name}.png`);
            await fullShot(page, file);
            shots.push(file);
            // The page's main action opens its form: a dialog, in the language too.
            const action = page.locator('main .toolbar button.primary').first();
            if (await action.count()) {
              await action.click();
              const dialog = page.getByRole('dialog');
              await dialog.waitFor();
              const dialogGaps = await untranslated(page, lang);
              if (dialogGaps.length) throw new Error(`the dialog of #/${route} in ${tag} shows ${dialogGaps.join(' | ')}`);
              await fullShot(page, join(LANGUAGE_SHOTS, `${lang}-${name}-dialog.png`));
              await page.keyboard.press('Escape');
              await dialog.waitFor({ state: 'detached' });
            }
          }
          // The page `aigne hub connect` opens, without its token: the error the site writes itself.
          await page.goto(`${site}/#/connect`);
          await page.getByRole('alert').filter({ hasText: msg['connect.noToken'].slice(0, 12) }).waitFor();
          const gaps = await untranslated(page, lang);
          if (gaps.length) throw new Error(`#/connect in ${tag} shows ${gaps.join(' | ')}`);
          await fullShot(page, join(LANGUAGE_SHOTS, `${lang}-connect.png`));
          console.log(`      ${tag}: ${shots.length + 2} pages, screenshots ${join(LANGUAGE_SHOTS, `${lang}-*.png`)} (account: ${join(LANGUAGE_SHOTS, `${lang}-account.png`)})`);
        },
        { locale: tag },
      );
    });
  }

  await step('languages: switched with the chooser, kept after a reload', async () => {
    await inContext(browser, async (page, context) => {
      await withCjkFonts(context, site);
      await signInAnyLanguage(page, site);
      await page.goto(`${site}/#/models`);
      const h1 = page.getByRole('heading', { level: 1 });
      await h1.filter({ hasText: 'Models & rates' }).waitFor();
      await page.locator('nav.sidebar select[name=lang]').selectOption('ja');
      await h1.filter({ hasText: CATALOGUES.ja['nav.models'] }).waitFor();
      await page.getByRole('navigation', { name: CATALOGUES.ja['nav.main'] }).getByRole('link', { name: CATALOGUES.ja['nav.account'] }).waitFor();
      if ((await page.locator('html').getAttribute('lang')) !== 'ja-JP') throw new Error('<html lang> did not follow the chooser');
      await page.reload();
      await h1.filter({ hasText: CATALOGUES.ja['nav.models'] }).waitFor();
      await page.locator('nav.sidebar select[name=lang]').selectOption('zh');
      await h1.filter({ hasText: CATALOGUES.zh['nav.models'] }).waitFor();
      await fullShot(page, join(LANGUAGE_SHOTS, 'chooser-zh.png'));
      await page.locator('nav.sidebar select[name=lang]').selectOption('en');
      await h1.filter({ hasText: 'Models & rates' }).waitFor();
    });
  });
}

// ------------------------------------------------------------------ the guided set-up

const OPENAI_SDK = join(REPO, 'tests', 'openai-sdk');
/** The README's pictures, written when HUB_DOCS_IMAGES=1 (each run's differ: a new key, a new port). */
const DOCS_IMAGES = process.env.HUB_DOCS_IMAGES === '1' ? join(REPO, 'docs', 'img') : null;

/** Runs `code` as an ES module next to the `openai` package (tests/openai-sdk); resolves with what it printed. */
function runWithOpenAi(code: string): Promise<string> {
  const file = join(OPENAI_SDK, `snippet-${randomBytes(6).toString('hex')}.mjs`);
  writeFileSync(file, code);
  return new Promise<string>((resolvePromise, reject) => {
    const child = spawn(process.execPath, [file], { cwd: OPENAI_SDK, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('exit', (code) => {
      clearTimeout(timer);
      if (code === 0) resolvePromise(out);
      else reject(new Error(`the copied snippet exited with ${code}: ${err.trim() || out.trim()}`));
    });
  }).finally(() => rmSync(file, { force: true }));
}

/** A viewport screenshot (1280×800) into the test output and, asked to, into docs/img. */
async function docsShot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: join(SHOTS, `${name}.png`) });
  if (DOCS_IMAGES) await page.screenshot({ path: join(DOCS_IMAGES, `${name}.png`) });
}

/**
 * A fresh `hub serve` as the README starts it (an owner key, the site built
 * into the binary): the owner lands on the guided set-up, adds the mock
 * provider and tests its key, picks a model from the price file with a
 * margin, creates a key, copies the OpenAI SDK snippet and runs it with the
 * published `openai` package, then gets an answer in the playground.
 */
async function guidedSetup(browser: Browser, dir: string, mockUrl: string): Promise<void> {
  const args = ['serve', '--listen', '127.0.0.1:0', '--db', join(dir, 'fresh.db')];
  const [, site] = await start('hub (fresh, for the set-up)', HUB_BIN, args, { HUB_ADMIN_KEY: OWNER_KEY, HUB_LOG: 'warn' }, /^hub listening on (http:\/\/\S+)/);
  await inContext(browser, async (page, context) => {
    await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: site });
    await page.setViewportSize({ width: 1280, height: 800 });

    await step('set-up: a fresh hub serve shows the site at /, the owner lands on the guided set-up', async () => {
      await signIn(page, site, OWNER_KEY);
      await page.getByRole('heading', { level: 1, name: 'Set up Hub' }).waitFor();
      await expectText(page.locator('.setup-steps [aria-current=step]'), 'Add a provider');
    });

    await step('set-up: a provider with its key, the key tested', async () => {
      await page.locator('select[name=kind]').selectOption('openai-compatible');
      await page.locator('input[name=name]').fill('mock');
      await page.locator('input[name=base_url]').fill(`${mockUrl}/v1`);
      await page.locator('input[name=secret]').fill('sk-mock-secret-123456');
      await page.getByRole('button', { name: 'Add and continue' }).click();
      await expectText(page.locator('.setup-steps [aria-current=step]'), 'Test the credential');
      await page.getByRole('button', { name: 'Test', exact: true }).click();
      await expectText(page.getByTestId('test-result'), /Passed\s+HTTP 200/);
      await page.getByRole('button', { name: 'Next' }).click();
    });

    await step('set-up: a model from the price catalogue, sold at a margin; credits to try it', async () => {
      await page.getByRole('radio', { name: /^Sell credits/ }).check();
      await page.locator('input[name=margin]').fill('50');
      await page.locator('input[name=trial]').fill('5');
      await page.locator('input[name=price_file]').setInputFiles({ name: 'prices.json', mimeType: 'application/json', buffer: Buffer.from(PRICE_FILE) });
      // Only the chat models: the image model in the file is not offered.
      if (await page.getByRole('checkbox', { name: 'Import dall-e-3' }).count()) throw new Error('an image model is offered as a chat model');
      await page.getByRole('checkbox', { name: 'Import gpt-4.1-nano' }).check();
      await shot(page, 'setup-models');
      await page.getByRole('button', { name: 'Add 1 model' }).click();
      await expectText(page.locator('.setup-steps [aria-current=step]'), 'Create a key');
      const models = await asOwner<{ data: { model: string; input_rate: string; output_rate: string }[] }>(site, '/api/admin/models');
      const nano = models.data.find((m) => m.model === 'gpt-4.1-nano');
      // 0.10 and 0.40 USD per million at a 50% margin and 1 USD per credit.
      if (nano?.input_rate !== '0.15' || nano.output_rate !== '0.6') throw new Error(`the model's rates are ${JSON.stringify(nano)}`);
    });

    let snippet = '';
    await step('set-up: a key, then the configuration of each client, copied', async () => {
      await page.locator('input[name=label]').fill('laptop');
      await page.getByRole('button', { name: 'Create key' }).click();
      await expectText(page.locator('.setup-steps [aria-current=step]'), 'Connect your client');
      for (const id of ['curl', 'openai-python', 'openai-ts', 'anthropic-python', 'anthropic-ts', 'codex', 'claude-code', 'aigne']) {
        await expectText(page.locator(`[data-snippet=${id}]`), site);
      }
      await docsShot(page, 'setup');
      await page.getByRole('button', { name: 'Copy OpenAI SDK (TypeScript)' }).click();
      await expectText(page.getByRole('button', { name: 'Copy OpenAI SDK (TypeScript)' }), 'Copied');
      snippet = await page.evaluate(() => navigator.clipboard.readText());
      if (!snippet.includes(`baseURL: '${site}/v1'`) || !/apiKey: 'hub_[^']+'/.test(snippet) || !snippet.includes("model: 'mock/gpt-4.1-nano'")) {
        throw new Error(`the copied snippet is not filled in for this Hub:\n${snippet}`);
      }
    });

    await step('set-up: the copied OpenAI SDK snippet runs with the openai package and prints the answer', async () => {
      const out = await runWithOpenAi(snippet);
      if (out.trim() !== 'Hello, world!') throw new Error(`the snippet printed ${JSON.stringify(out)}`);
    });

    await step('set-up: the playground answers from the first minute; the overview counts the calls', async () => {
      await page.getByRole('link', { name: 'Open the playground' }).click();
      await page.getByRole('heading', { level: 1, name: 'Playground' }).waitFor();
      await chat(page, 'mock/gpt-4.1-nano', 'Say hello');
      await nav(page, 'Overview', 'Overview');
      await loaded(page, 'Loading…');
      await expectText(stat(page, 'Calls'), /^2$/);
      await docsShot(page, 'overview');
      // The set-up stays in the sidebar, and no longer takes over the landing page.
      await page.goto(`${site}/#/`);
      await page.getByRole('heading', { level: 1, name: 'Overview' }).waitFor();
      await nav(page, 'Set up', 'Set up Hub');
    });
  });
}

// ------------------------------------------------------------------ accessibility

const THEMES = ['light', 'dark'] as const;
const PHONE = { width: 390, height: 844 };

/**
 * axe-core's serious and critical violations on the page as it is now (every
 * WCAG 2.1 A and AA rule), one readable line per rule and element.
 */
async function axeViolations(page: Page): Promise<string[]> {
  const result = await new AxeBuilder({ page }).withTags(['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice']).analyze();
  return result.violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .flatMap((v) => v.nodes.map((n) => `${v.impact} ${v.id} (${v.help}) at ${n.target.join(' ')}: ${n.failureSummary?.replace(/\s+/g, ' ')}`));
}

/** The page scrolls sideways: its content is wider than the window. */
async function horizontalOverflow(page: Page): Promise<string | null> {
  return page.evaluate(() => {
    const { scrollWidth, clientWidth } = document.documentElement;
    if (scrollWidth <= clientWidth) return null;
    // What sticks out, to say what to fix: not what scrolls inside its own box, unless placed absolutely (which escapes it).
    const wide = [...document.querySelectorAll('body *')]
      .filter((e) => e.getBoundingClientRect().right > clientWidth + 1)
      .filter((e) => ['absolute', 'fixed'].includes(getComputedStyle(e).position) || !e.parentElement?.closest('table, .scroll, pre, .overlay'))
      .slice(0, 5)
      .map((e) => `${e.tagName.toLowerCase()}${e.className ? `.${String(e.className).replace(/ /g, '.')}` : ''}`);
    return `${scrollWidth} px wide in a ${clientWidth} px window (${wide.join(', ')})`;
  });
}

/** The theme the page is painted in, from its background's lightness. */
async function paintedTheme(page: Page): Promise<'light' | 'dark'> {
  const rgb = await page.evaluate(() => getComputedStyle(document.documentElement).backgroundColor);
  const [r, g, b] = (rgb.match(/\d+/g) ?? ['255', '255', '255']).map(Number);
  return 0.299 * r + 0.587 * g + 0.114 * b < 128 ? 'dark' : 'light';
}

/** Opens each route of `routes` in turn (signed in), the page loaded, and calls `check` on it. */
async function everyPage(page: Page, site: string, ownerId: string, check: (route: string) => Promise<void>): Promise<void> {
  for (const [route, heading] of sitePages(ownerId)) {
    await page.goto(`${site}/#/${route}`);
    const h1 = page.getByRole('heading', { level: 1 });
    await (route.startsWith('users/') ? h1.filter({ hasText: 'Owner' }) : h1.filter({ hasText: CATALOGUES.en[heading] })).waitFor();
    await loaded(page, CATALOGUES.en['common.loading']);
    await check(route);
  }
}

/**
 * Every page, its main dialog and the call and audit details, in the light
 * and the dark theme: no serious or critical axe-core violation; then every
 * page on a phone's 390 px screen without sideways scrolling; then the site
 * by keyboard alone.
 */
async function accessibility(browser: Browser, site: string): Promise<void> {
  const owner = await asOwner<{ user: { id: string } }>(site, '/api/me');
  for (const theme of THEMES) {
    await step(`accessibility: axe-core on every page and dialog, ${theme} theme`, async () => {
      await inContext(
        browser,
        async (page) => {
          const found: string[] = [];
          const check = async (where: string) => found.push(...(await axeViolations(page)).map((v) => `${where}: ${v}`));
          await page.goto(`${site}/#/`);
          await page.getByRole('heading', { level: 1, name: 'Sign in to Hub' }).waitFor();
          // The check can fail: a field without a label is reported.
          await page.evaluate(() => document.body.insertAdjacentHTML('beforeend', '<input id="unlabelled">'));
          if (!(await axeViolations(page)).some((v) => v.includes('#unlabelled'))) throw new Error('axe-core missed a field without a label');
          await page.evaluate(() => document.getElementById('unlabelled')?.remove());
          if ((await paintedTheme(page)) !== theme) throw new Error(`the sign-in page is not painted ${theme} when the system prefers it`);
          await check('sign-in');
          await signIn(page, site, OWNER_KEY);
          await everyPage(page, site, owner.user.id, async (route) => {
            await check(`#/${route}`);
            const action = page.locator('main .toolbar button.primary').first();
            if (await action.count()) {
              await action.click();
              await page.getByRole('dialog').waitFor();
              await check(`the dialog of #/${route}`);
              await page.keyboard.press('Escape');
              await page.getByRole('dialog').waitFor({ state: 'detached' });
            }
            const detail = { calls: 'tr[data-call]', audit: 'tr[data-audit]' }[route];
            if (detail) {
              await page.locator(detail).first().click();
              await page.getByRole('dialog').waitFor();
              await check(`the detail of #/${route}`);
              await page.keyboard.press('Escape');
            }
          });
          await page.goto(`${site}/#/connect`);
          await page.getByRole('alert').waitFor();
          await check('#/connect');
          if (found.length) throw new Error(`axe-core found ${found.length} serious or critical violations (${theme} theme):\n  ${found.join('\n  ')}`);
        },
        { colorScheme: theme },
      );
    });
  }

  await step('accessibility: every page fits a 390 px phone screen (and passes axe-core there), the menu behind a button', async () => {
    await inContext(
      browser,
      async (page) => {
        const wide: string[] = [];
        await page.goto(`${site}/#/`);
        await page.getByRole('heading', { level: 1, name: 'Sign in to Hub' }).waitFor();
        const signInOverflow = await horizontalOverflow(page);
        if (signInOverflow) wide.push(`sign-in: ${signInOverflow}`);
        await signIn(page, site, OWNER_KEY);
        const menu = page.getByRole('button', { name: 'Menu' });
        const users = page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Users & keys', exact: true });
        if (await users.isVisible()) throw new Error('on a phone the page links show before the menu is opened');
        await menu.click();
        await users.click();
        await page.getByRole('heading', { level: 1, name: 'Users & keys' }).waitFor();
        if (await users.isVisible()) throw new Error('the menu stays open after choosing a page');
        const found: string[] = [];
        await everyPage(page, site, owner.user.id, async (route) => {
          const overflow = await horizontalOverflow(page);
          if (overflow) wide.push(`#/${route}: ${overflow}`);
          found.push(...(await axeViolations(page)).map((v) => `#/${route}: ${v}`));
          const action = page.locator('main .toolbar button.primary').first();
          if (await action.count()) {
            await action.click();
            await page.getByRole('dialog').waitFor();
            const dialogOverflow = await horizontalOverflow(page);
            if (dialogOverflow) wide.push(`the dialog of #/${route}: ${dialogOverflow}`);
            await page.keyboard.press('Escape');
          }
        });
        await shot(page, 'phone-account');
        await page.goto(`${site}/#/users`);
        await page.getByRole('heading', { level: 1, name: 'Users & keys' }).waitFor();
        await shot(page, 'phone-users');
        if (wide.length) throw new Error(`pages scroll sideways at 390 px:\n  ${wide.join('\n  ')}`);
        if (found.length) throw new Error(`axe-core found ${found.length} serious or critical violations at 390 px:\n  ${found.join('\n  ')}`);
      },
      { viewport: PHONE },
    );
  });

  await step('accessibility: by keyboard alone (skip link, sidebar, dialog, form)', async () => {
    await inContext(browser, async (page) => {
      await signIn(page, site, OWNER_KEY);
      await page.getByRole('heading', { level: 1, name: 'Overview' }).waitFor();
      const focused = () => page.evaluate(() => document.activeElement?.textContent?.trim() ?? '');
      const focusedIn = (selector: string) => page.evaluate((s) => !!document.activeElement?.closest(s), selector);
      // The first Tab reaches the skip link; Enter moves focus past the sidebar to the page.
      await page.keyboard.press('Tab');
      if ((await focused()) !== 'Skip to content') throw new Error(`the first Tab focuses "${await focused()}", not the skip link`);
      await page.keyboard.press('Enter');
      if (!(await focusedIn('main'))) throw new Error('the skip link did not move focus to the page');
      // The sidebar: Tab along the links to Users & keys, Enter follows it.
      await page.locator('nav.sidebar a').first().focus();
      for (let i = 0; i < 20 && (await focused()) !== 'Users & keys'; i++) await page.keyboard.press('Tab');
      if ((await focused()) !== 'Users & keys') throw new Error('Tab never reached the Users & keys link');
      await page.keyboard.press('Enter');
      await page.getByRole('heading', { level: 1, name: 'Users & keys' }).waitFor();
      // A dialog: opened with Enter, focus inside and kept there, Escape closes it and focus returns.
      const add = page.getByRole('button', { name: 'Add user' });
      await add.focus();
      await page.keyboard.press('Enter');
      const dialog = page.getByRole('dialog', { name: 'Add user' });
      await dialog.waitFor();
      for (const key of ['Tab', 'Shift+Tab']) {
        for (let i = 1; i <= 10; i++) {
          await page.keyboard.press(key);
          if (!(await focusedIn('[role=dialog]'))) throw new Error(`focus left the open dialog after ${i} × ${key}`);
        }
      }
      await page.keyboard.press('Escape');
      await dialog.waitFor({ state: 'detached' });
      if ((await focused()) !== 'Add user') throw new Error(`after Escape focus is on "${await focused()}", not the button that opened the dialog`);
      // A form submitted by keyboard: typed into, sent with Enter.
      await page.keyboard.press('Space');
      await dialog.waitFor();
      await page.keyboard.type('keyboard person');
      await page.keyboard.press('Tab');
      await page.keyboard.type('keys@example.com');
      await page.keyboard.press('Enter');
      await page.getByRole('heading', { level: 1, name: /keyboard person/ }).waitFor();
      // The focus ring is drawn: a focused button has a visible outline.
      await page.getByRole('button', { name: 'Grant credits' }).focus();
      await page.keyboard.press('Shift+Tab');
      await page.keyboard.press('Tab');
      const outline = await page.evaluate(() => getComputedStyle(document.activeElement!).outlineStyle);
      if (outline === 'none') throw new Error('a button focused by keyboard shows no focus ring');
    });
  });
}

/** A call to Hub's API from this test with `key`; the answer's JSON (throws on an error status). */
async function asKey<T>(site: string, key: string, method: string, path: string, body?: unknown): Promise<T> {
  const res = await fetch(`${site}${path}`, {
    method,
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${await res.text()}`);
  return (await res.json()) as T;
}

/**
 * Teams: the owner makes a team with a budget, adds a team admin by email
 * and a service key; the key's call counts against the budget; the team
 * admin, signed in, sees that team only and manages it.
 */
async function teamSteps(browser: Browser, site: string): Promise<void> {
  const lead = await asKey<{ id: string }>(site, OWNER_KEY, 'POST', '/api/admin/users', { name: 'Tina Lead', email: 'tina@example.com' });
  const leadKey = (await asKey<{ key: string }>(site, OWNER_KEY, 'POST', `/api/admin/users/${lead.id}/keys`, { label: 'tina' })).key;
  await asKey(site, OWNER_KEY, 'POST', '/api/admin/teams', { name: 'Other team' });
  let teamId = '';
  await step('teams: the owner makes a team with a budget, a team admin and a service key', async () => {
    await inContext(browser, async (page) => {
      await signIn(page, site, OWNER_KEY);
      await nav(page, 'Teams', 'Teams');
      await page.getByRole('button', { name: 'New team' }).click();
      const form = page.getByRole('dialog', { name: 'New team' });
      await form.locator('input[name=name]').fill('Research');
      await form.locator('input[name=budget]').fill('5');
      await form.locator('select[name=budget_period]').selectOption('weekly');
      await form.locator('input[name=time_zone]').fill('Europe/Berlin');
      await form.locator('input[name=rpm_limit]').fill('60');
      await form.getByRole('button', { name: 'Save' }).click();
      await page.getByRole('heading', { level: 1, name: 'Research' }).waitFor();
      teamId = decodeURIComponent(new URL(page.url()).hash.split('/')[2] ?? '');
      await expectText(stat(page, 'Budget'), /5\.00 per week/);
      await page.locator('input[name=member]').fill('tina@example.com');
      await page.locator('select[name=member_role]').selectOption('admin');
      await page.getByRole('button', { name: 'Add', exact: true }).click();
      const row = page.locator('tr[data-member="Tina Lead"]');
      await row.waitFor();
      if ((await row.locator('select').inputValue()) !== 'admin') throw new Error('Tina was not made a team admin');
      // A service key: shown once, limited as the team's defaults say.
      await page.getByRole('button', { name: 'Create key' }).click();
      const keyForm = page.getByRole('dialog', { name: 'Create key' });
      await keyForm.locator('input[name=label]').fill('ci-bot');
      await keyForm.getByRole('button', { name: 'Create key' }).click();
      const secret = (await page.getByTestId('secret').innerText()).trim();
      await page.keyboard.press('Escape');
      await expectText(page.locator('tr[data-key=ci-bot]'), '60 rpm');
      const team = await asKey<{ account_id: string }>(site, OWNER_KEY, 'GET', `/api/teams/${teamId}`);
      await asKey(site, OWNER_KEY, 'POST', `/api/admin/users/${team.account_id}/grants`, { amount: 10 });
      await asKey(site, secret, 'POST', '/v1/chat/completions', { model: 'mock/gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] });
      // The call counts against the team's budget (settled in the background).
      for (let i = 0; i < 50; i++) {
        await page.reload();
        const spent = await page.getByTestId('team-spent').innerText();
        if (Number(spent.replace(/[^\d.]/g, '')) > 0) break;
        if (i === 49) throw new Error(`the service key's call never counted against the team budget (spent ${spent})`);
        await sleep(100);
      }
      await shot(page, 'team');
      // The overview narrowed to the team counts its one call, and names it among the teams.
      await nav(page, 'Overview', 'Overview');
      await page.getByRole('combobox', { name: 'Team' }).selectOption({ label: 'Research' });
      await expectText(page.locator('section.card').filter({ has: page.getByRole('heading', { name: 'Teams' }) }), 'Research');
      await stat(page, 'Calls').filter({ hasText: /^1$/ }).waitFor();
    });
  });
  await step('teams: a team admin sees their team only, and manages it', async () => {
    await inContext(browser, async (page) => {
      await signIn(page, site, leadKey);
      const links = await navLinks(page);
      if (!links.includes('Teams') || links.includes('Users & keys')) throw new Error(`a team admin's menu: ${links.join(', ')}`);
      await nav(page, 'Teams', 'Teams');
      await page.locator('tr[data-team]').first().waitFor();
      const names = await page.locator('tr[data-team]').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-team')));
      if (names.join() !== 'Research') throw new Error(`a team admin sees teams ${names.join(', ')}`);
      await expectText(page.locator('tr[data-team=Research]'), 'team admin');
      await page.getByRole('link', { name: 'Research' }).click();
      await page.getByRole('heading', { level: 1, name: 'Research' }).waitFor();
      await page.locator('tr[data-key=ci-bot]').waitFor();
      if (await page.getByRole('button', { name: 'Edit', exact: true }).count()) throw new Error('a team admin may not edit the team budget');
      const found = await axeViolations(page);
      if (found.length) throw new Error(`axe-core on a team's page:\n  ${found.join('\n  ')}`);
    });
  });
}

/** The users list asks Hub to search (`?q=`) rather than filtering a list loaded whole. */
async function usersSearchedByHub(browser: Browser, site: string): Promise<void> {
  await step('users: searched by Hub as the filter is typed', async () => {
    await inContext(browser, async (page) => {
      await signIn(page, site, OWNER_KEY);
      await nav(page, 'Users & keys', 'Users & keys');
      const rows = page.locator('tr[data-user]');
      await rows.first().waitFor();
      if ((await rows.count()) < 3) throw new Error(`${await rows.count()} users listed, not every one`);
      const [request] = await Promise.all([
        page.waitForRequest((r) => new URL(r.url()).pathname === '/api/admin/users' && new URL(r.url()).searchParams.get('q') === 'ALI'),
        page.getByRole('searchbox', { name: 'Filter users' }).fill('ALI'),
      ]);
      await request.response();
      await rows.filter({ hasText: 'Owner' }).waitFor({ state: 'detached' });
      const shown = await rows.evaluateAll((trs) => trs.map((tr) => tr.getAttribute('data-user')));
      if (shown.join() !== 'alice') throw new Error(`searching "ALI" shows ${shown.join(', ')}`);
      await page.getByRole('searchbox', { name: 'Filter users' }).fill('nobody-by-this-name');
      await page.getByText('No users match.').waitFor();
    });
  });
  await step('models: searched by Hub as the filter is typed, a page at a time', async () => {
    await inContext(browser, async (page) => {
      await signIn(page, site, OWNER_KEY);
      await nav(page, 'Models & rates', 'Models & rates');
      const rows = page.locator('tr[data-model]');
      await rows.first().waitFor();
      const before = await rows.count();
      const [request] = await Promise.all([
        page.waitForRequest((r) => new URL(r.url()).pathname === '/api/admin/models' && new URL(r.url()).searchParams.get('q') === '4O-MINI'),
        page.getByRole('searchbox', { name: 'Filter models' }).fill('4O-MINI'),
      ]);
      await request.response();
      await page.waitForFunction(
        (n) => document.querySelectorAll('tr[data-model]').length < n || [...document.querySelectorAll('tr[data-model]')].every((r) => r.getAttribute('data-model')?.includes('4o-mini')),
        before,
      );
      const shown = await rows.evaluateAll((trs) => trs.map((tr) => tr.getAttribute('data-model') ?? ''));
      if (!shown.length || !shown.every((m) => m.toLowerCase().includes('4o-mini'))) throw new Error(`searching "4O-MINI" shows ${shown.join(', ')}`);
    });
  });
  await step('people: the call log names its users and picks one through Hub, never loading every user', async () => {
    await inContext(browser, async (page) => {
      const everyone: string[] = [];
      page.on('request', (r) => {
        const url = new URL(r.url());
        if (url.pathname === '/api/admin/users' && !url.searchParams.get('q') && !url.searchParams.get('ids')) everyone.push(url.search);
      });
      await signIn(page, site, OWNER_KEY);
      await page.goto(`${site}/#/calls`);
      await page.getByRole('heading', { level: 1, name: 'Call log' }).waitFor();
      // The rows' users are named by one lookup of their ids.
      await page.locator('tr[data-call]').filter({ hasText: 'alice' }).first().waitFor();
      const [search] = await Promise.all([
        page.waitForRequest((r) => new URL(r.url()).pathname === '/api/admin/users' && new URL(r.url()).searchParams.get('q') === 'alic'),
        page.locator('input[name=user]').fill('alic'),
      ]);
      await search.response();
      const option = page.getByTestId('user-people').locator('option');
      await option.first().waitFor({ state: 'attached' });
      const id = await option.first().getAttribute('value');
      if (!id?.startsWith('usr_')) throw new Error(`the user picker offers ${id}`);
      await page.locator('input[name=user]').fill(id);
      await page.getByRole('button', { name: 'Apply' }).click();
      await page.waitForURL((u) => u.hash.includes(`user=${id}`));
      // The filtered page replaces the one before it: only Alice's calls, once loaded.
      await page
        .waitForFunction(() => {
          const rows = [...document.querySelectorAll('tr[data-call]')];
          return rows.length > 0 && rows.every((r) => r.textContent?.includes('alice'));
        })
        .catch(() => {
          throw new Error('the call log filtered by Alice shows others');
        });
      for (const route of ['overview', 'audit', 'billing?tab=payments']) {
        await page.goto(`${site}/#/${route}`);
        await loaded(page, CATALOGUES.en['common.loading']);
      }
      if (everyone.length) throw new Error(`pages loaded every user: ${everyone.join(' ')}`);
    });
  });
}

// ------------------------------------------------------------------ the site inside hub

/** `hub serve` with no `--ui-dir` serves the site built into the binary (functions/server/build.rs). */
async function builtInSite(page: Page, dir: string): Promise<void> {
  await step('the site built into hub loads with no --ui-dir', async () => {
    const args = ['serve', '--listen', '127.0.0.1:0', '--db', join(dir, 'built-in.db')];
    const [, url] = await start('hub (built-in site)', HUB_BIN, args, { HUB_LOG: 'warn' }, /^hub listening on (http:\/\/\S+)/);
    await page.goto(`${url}/`);
    await page.getByRole('heading', { level: 1, name: 'Sign in to Hub' }).waitFor();
    await page.locator('input[name=key]').or(page.getByText('Sign in with an API key')).first().waitFor();
  });
}

// ------------------------------------------------------------------ main

async function main(): Promise<void> {
  for (const [what, path] of [
    ['the built site (npm run build)', join(DIST, 'index.html')],
    ['hub (HUB_BIN)', HUB_BIN],
    ['hub-mock (HUB_MOCK_BIN)', MOCK_BIN],
    ['hub-stripe (HUB_STRIPE_BIN)', STRIPE_BIN],
    ['the stripe library (npm ci in tests/stripe)', join(REPO, 'tests', 'stripe', 'node_modules', 'stripe')],
    ['Chromium (CHROMIUM_BIN)', CHROMIUM],
    ['the OpenID provider (npm ci in tests/oidc-provider)', join(OP_DIR, 'node_modules', 'oidc-provider')],
    ['aiosmtpd (scripts/install-test-tools)', PYTHON],
    ['the CJK fonts (npm ci in tests/cjk-fonts)', join(CJK_FONTS, 'noto-sans-sc', 'index.css')],
    ['the openai package (npm ci in tests/openai-sdk)', join(OPENAI_SDK, 'node_modules', 'openai')],
  ]) {
    if (!statSync(path, { throwIfNoEntry: false })) throw new Error(`${what} not found at ${path}`);
  }
  rmSync(SHOTS, { recursive: true, force: true });
  mkdirSync(SHOTS, { recursive: true });
  const dir = mkdtempSync(join(tmpdir(), 'hub-admin-e2e-'));
  let browser: Browser | null = null;
  let receiver: Receiver | null = null;
  try {
    const [, mockUrl] = await start('hub-mock', MOCK_BIN, [], {}, /^mock listening on (http:\/\/\S+)/);
    const args = ['serve', '--listen', '127.0.0.1:0', '--db', join(dir, 'hub.db'), '--ui-dir', DIST];
    const [, hubUrl] = await start('hub', HUB_BIN, args, { HUB_ADMIN_KEY: OWNER_KEY, HUB_LOG: 'warn' }, /^hub listening on (http:\/\/\S+)/);
    const [, issuer] = await start(
      'oidc-provider',
      process.execPath,
      [join(OP_DIR, 'op.mjs')],
      { OP_REDIRECT_URIS: `${hubUrl}/auth/oidc/callback`, OP_CLIENT_ID, OP_CLIENT_SECRET },
      /^ready (http:\/\/\S+)/,
      'pipe',
    );
    const mailFile = join(dir, 'mail.jsonl');
    const smtpArgs = [join(REPO, 'tests', 'smtpd', 'smtpd.py'), '--out', mailFile, '--auth', `${SMTP_USER}:${SMTP_PASSWORD}`, '--auth-over-plain'];
    const [, smtpPort] = await start('aiosmtpd', PYTHON, smtpArgs, {}, /^ready (\d+)/, 'pipe');
    const mailbox = new Mailbox(Number(smtpPort), mailFile);
    const [, apiBase, secretKey, webhookSecret] = await start(
      'hub-stripe',
      STRIPE_BIN,
      ['--hub', hubUrl],
      {},
      /^stripe listening on (http:\/\/\S+) secret_key (\S+) webhook_secret (\S+)/,
    );
    const stripe: StripeStandIn = { apiBase, secretKey, webhookSecret };
    console.log(`hub (serving the site) ${hubUrl}, mock provider ${mockUrl}, OpenID provider ${issuer}, SMTP on port ${smtpPort}, Stripe ${apiBase}`);
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox'], timeout: START_TIMEOUT_MS });
    const b = browser;
    const shop: Shop = { codes: [] };
    const hooks = await Receiver.start();
    receiver = hooks;
    await inContext(b, (page) => operator(page, hubUrl, mockUrl, issuer, mailbox, stripe, shop, hooks));
    await inContext(b, (page, context) => person(page, context, hubUrl, mailbox, b, shop));
    await inContext(b, (page) => operatorSales(page, hubUrl, shop));
    await teamSteps(b, hubUrl);
    await languages(b, hubUrl);
    await guidedSetup(b, dir, mockUrl);
    await accessibility(b, hubUrl);
    await usersSearchedByHub(b, hubUrl);
    await inContext(b, (page) => builtInSite(page, dir));
  } finally {
    await Promise.race([browser?.close(), sleep(10_000)]);
    await receiver?.close();
    await stopAll();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The last lines each process printed, to explain a failure. */
function printLogs(): void {
  for (const p of procs) if (p.log.length) console.error(`--- last output of ${p.name}:\n${p.log.slice(-30).join('\n')}`);
}

const watchdog = setTimeout(() => {
  console.error(`e2e: FAILED: no result after ${TOTAL_TIMEOUT_MS / 1000}s (at step "${current}")`);
  printLogs();
  void stopAll().finally(() => process.exit(1));
}, TOTAL_TIMEOUT_MS);

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => void stopAll().finally(() => process.exit(1)));
}

const began = Date.now();
main().then(
  () => {
    clearTimeout(watchdog);
    console.log(`e2e: passed in ${((Date.now() - began) / 1000).toFixed(1)}s; screenshots in ${SHOTS}`);
  },
  (e: unknown) => {
    clearTimeout(watchdog);
    console.error(`e2e: FAILED at step "${current}": ${e instanceof Error ? e.message : String(e)}`);
    printLogs();
    process.exitCode = 1;
  },
);
