/**
 * `aigne hub connect <HUB_URL>` as a person runs it: the published CLI
 * (@aigne/cli, pinned in this directory's lockfile) opens the approval page
 * through `xdg-open`, whose `$BROWSER` here is a script that hands the URL
 * over; headless Chromium (Playwright from admin-ui) then opens it, signs in
 * through the OpenID provider as HUB_LOGIN, and approves. The CLI picks up
 * the key and stores it in its file store under a throwaway HOME (no D-Bus
 * or display, so its keyring is off; not CI, which would make it skip the
 * browser).
 *
 * Environment: HUB_URL, HUB_LOGIN, CHROMIUM_BIN (default /usr/bin/chromium),
 * SHOTS (a directory for screenshots, optional).
 * Prints one line `RESULT {json}`: the CLI's output, the URL it opened, the
 * page's last words and what the CLI stored. Stops everything it started,
 * also on failure, within TOTAL_MS.
 */

import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = dirname(fileURLToPath(import.meta.url));
const REPO = resolve(HERE, '..', '..', '..');
const { chromium } = createRequire(join(REPO, 'admin-ui', 'package.json'))('playwright-core');
const { parse: parseYaml } = createRequire(join(HERE, 'package.json'))('yaml');
const CLI = join(HERE, 'node_modules', '@aigne', 'cli', 'dist', 'cli.js');
const HUB_URL = required('HUB_URL');
const LOGIN = required('HUB_LOGIN');
const CHROMIUM = process.env.CHROMIUM_BIN ?? '/usr/bin/chromium';
const SHOTS = process.env.SHOTS;
const TOTAL_MS = 150_000;
const STEP_MS = 30_000;

function required(name) {
  const v = process.env[name];
  if (!v) throw new Error(`${name} must be set`);
  return v;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function waitFor(what, probe, ms = STEP_MS) {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    const v = await probe();
    if (v) return v;
    await sleep(200);
  }
  throw new Error(`timed out waiting for ${what}`);
}

const work = mkdtempSync(join(tmpdir(), 'aigne-connect-'));
const home = join(work, 'home');
// The CLI's file store refuses to write unless ~/.aigne exists (its other
// commands make it; `hub connect` on a fresh HOME does not).
mkdirSync(join(home, '.aigne'), { recursive: true });
const urlFile = join(work, 'opened-url');
const BROWSER_SCRIPT = join(work, 'browser.sh');
let cli = null;
let browser = null;

/** The environment of a terminal without a desktop: xdg-open falls back to $BROWSER. */
function cliEnv() {
  const env = { ...process.env, HOME: home, BROWSER: BROWSER_SCRIPT, NO_COLOR: '1', FORCE_COLOR: '0' };
  for (const k of ['CI', 'NODE_ENV', 'DBUS_SESSION_BUS_ADDRESS', 'DISPLAY', 'WAYLAND_DISPLAY', 'XDG_CURRENT_DESKTOP', 'DESKTOP_SESSION', 'KDE_FULL_SESSION', 'GNOME_DESKTOP_SESSION_ID']) {
    delete env[k];
  }
  for (const k of Object.keys(env)) if (k.startsWith('AIGNE_') || k.startsWith('BLOCKLET_')) delete env[k];
  return env;
}

function startCli() {
  writeFileSync(BROWSER_SCRIPT, `#!/bin/sh\nprintf '%s' "$1" > '${urlFile}.part' && mv '${urlFile}.part' '${urlFile}'\n`);
  chmodSync(BROWSER_SCRIPT, 0o755);
  const child = spawn(process.execPath, [CLI, 'hub', 'connect', HUB_URL], {
    env: cliEnv(),
    cwd: work,
    detached: true, // its own process group: stopped whole, xdg-open included
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const out = [];
  child.stdout.on('data', (d) => out.push(d.toString()));
  child.stderr.on('data', (d) => out.push(d.toString()));
  const exited = new Promise((r) => child.once('exit', (code, signal) => r({ code, signal })));
  return { child, out, exited };
}

function stopCli() {
  if (cli && cli.child.exitCode === null && cli.child.signalCode === null) {
    try {
      process.kill(-cli.child.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

async function shot(page, name) {
  if (!SHOTS) return;
  mkdirSync(SHOTS, { recursive: true });
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
}

/** Chromium opens what the CLI opened: sign in at the OpenID provider, then approve. */
async function approveInBrowser(opened) {
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox'], timeout: STEP_MS });
  const page = await (await browser.newContext()).newPage();
  page.setDefaultTimeout(STEP_MS);
  await page.goto(opened);
  if (!page.url().startsWith(`${HUB_URL}/#/connect?`)) throw new Error(`the CLI's page led to ${page.url()}`);
  await page.getByRole('link', { name: 'Sign in with single sign-on' }).click();
  await page.locator('input[name=login]').fill(LOGIN);
  await page.locator('button[type=submit]').click();
  const heading = page.getByRole('heading', { level: 1, name: 'AIGNE CLI wants an access key' });
  await heading.waitFor();
  if (!page.url().startsWith(`${HUB_URL}/#/connect?`)) throw new Error(`signing in ended at ${page.url()}`);
  await shot(page, 'aigne-connect-approve');
  await page.getByRole('button', { name: 'Approve' }).click();
  const done = page.getByRole('status').filter({ hasText: 'You can close this window' });
  await done.waitFor();
  await shot(page, 'aigne-connect-approved');
  return done.innerText();
}

async function main() {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: npm ci in ${HERE}`);
  cli = startCli();
  const opened = await waitFor('the CLI to open the approval page', () => existsSync(urlFile) && readFileSync(urlFile, 'utf8'));
  const pageSays = await approveInBrowser(opened);
  const connected = await Promise.race([cli.exited, waitFor('the CLI to say it connected', () => /connected successfully/.test(cli.out.join('')))]);
  // The CLI has nothing left to do once it said so; give it a moment to exit by itself.
  await Promise.race([cli.exited, sleep(5_000)]);
  const storeFile = join(home, '.aigne', 'aigne-hub-connected.yaml');
  const store = existsSync(storeFile) ? parseYaml(readFileSync(storeFile, 'utf8')) : null;
  return { opened, pageSays, output: cli.out.join(''), exit: connected === true ? null : connected, store };
}

const watchdog = setTimeout(() => {
  console.error(`connect: FAILED: no result after ${TOTAL_MS / 1000}s; CLI output:\n${cli?.out.join('') ?? ''}`);
  stopCli();
  process.exit(1);
}, TOTAL_MS);

main()
  .then(
    (result) => {
      console.log(`RESULT ${JSON.stringify(result)}`);
    },
    (e) => {
      console.error(`connect: FAILED: ${e instanceof Error ? e.message : String(e)}\n--- CLI output:\n${cli?.out.join('') ?? ''}`);
      process.exitCode = 1;
    },
  )
  .finally(async () => {
    clearTimeout(watchdog);
    await Promise.race([browser?.close(), sleep(10_000)]);
    stopCli();
    rmSync(work, { recursive: true, force: true });
  });
