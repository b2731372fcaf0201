// The browser-test harness: starts the `nova` binary on a free port with its own database and
// data directory, and Debian's Chromium through playwright-core with a fresh profile.
//
//   const nova = await startNova({ config: '[catalog]\nrefresh_interval = "1m"\n', env: {...} });
//   const browser = await launchBrowser();
//
// A test file's steps share one Nova and one page through `session`:
//
//   let nova, page;
//   const step = session({ ready: (s) => ({ nova, page } = s) });
//   step('signs in', async () => { await page.goto(`${nova.base}/sign-in`); ... });
//
// Later issues add their flows as more *.test.mjs files; startNova's options (extra TOML config,
// environment, arguments, catalog files) are how they configure Nova.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const outputDir = path.join(repoRoot, 'test-output', 'browser');

/** A catalog file with one deliberately invalid entity, so the errors page has something. */
export const BROKEN_CATALOG = `apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: broken-service
  description: Has no owner, which every Component needs.
spec:
  type: service
  lifecycle: production
`;

/** The nova binary: $NOVA_BIN, else the debug or release build in $CARGO_TARGET_DIR or target/. */
export function novaBinary() {
  if (process.env.NOVA_BIN) return process.env.NOVA_BIN;
  const target = process.env.CARGO_TARGET_DIR || path.join(repoRoot, 'target');
  for (const profile of ['debug', 'release']) {
    const candidate = path.join(target, profile, 'nova');
    if (existsSync(candidate)) return candidate;
  }
  throw new Error(`no nova binary in ${target}/{debug,release}; run cargo build or set NOVA_BIN`);
}

/** A free TCP port on 127.0.0.1 (for a configuration that must name Nova's address first). */
export async function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/**
 * Starts `nova serve --demo` on 127.0.0.1 with a fresh SQLite database and data directory, the
 * example catalog and one broken file (unless `brokenFile` is false; plus `catalogFiles`: {name: yaml}).
 * `config` is TOML added with --config, `env` extra environment, `args` extra flags, `port` the
 * port to listen on (default: a free one). Resolves when /ready is 200 (within `readyMs`). The
 * demo environment (registry, git server, seeding) is off unless `env` sets
 * NOVA_DEMO__ENVIRONMENT=true.
 */
export async function startNova({ config = '', env = {}, args = [], catalogFiles = {}, brokenFile = true, readyMs = 60_000, port: chosen } = {}) {
  const dir = await mkdtemp(path.join(tmpdir(), 'nova-browser-'));
  const port = chosen ?? await freePort();
  const base = `http://127.0.0.1:${port}`;
  const catalogDir = path.join(dir, 'catalog');
  await mkdir(catalogDir);
  const files = { ...(brokenFile ? { 'broken.yaml': BROKEN_CATALOG } : {}), ...catalogFiles };
  for (const [name, text] of Object.entries(files)) await writeFile(path.join(catalogDir, name), text);
  const flags = ['serve', '--demo', '--listen', `127.0.0.1:${port}`, '--database-url', `sqlite://${dir}/nova.db`,
    '--catalog', path.join(repoRoot, 'examples/catalog'), '--catalog', catalogDir, ...args];
  if (config) {
    await writeFile(path.join(dir, 'nova.toml'), config);
    flags.push('--config', path.join(dir, 'nova.toml'));
  }
  const child = spawn(novaBinary(), flags, {
    cwd: repoRoot,
    env: { ...process.env, NOVA_SERVER__DATA_DIR: path.join(dir, 'data'), NOVA_LOG__FORMAT: 'json', NOVA_DEMO__ENVIRONMENT: 'false', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  child.stdout.on('data', (d) => { log += d; });
  child.stderr.on('data', (d) => { log += d; });
  let exited = null;
  child.on('exit', (code) => { exited = code; });
  const deadline = Date.now() + readyMs;
  for (;;) {
    if (exited !== null) throw new Error(`nova exited with ${exited} before it was ready:\n${log}`);
    try {
      if ((await fetch(`${base}/ready`)).status === 200) break;
    } catch { /* not listening yet */ }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`nova was not ready within ${readyMs / 1000} s:\n${log}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    base,
    dir,
    log: () => log,
    async stop() {
      if (exited === null) {
        const done = new Promise((r) => child.on('exit', r));
        child.kill('SIGTERM');
        await done;
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Debian's Chromium, headless, with a fresh profile; answers a playwright BrowserContext. */
export async function launchBrowser(options = {}) {
  const profile = await mkdtemp(path.join(tmpdir(), 'nova-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.NOVA_CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run'],
    ...options,
  });
  const close = context.close.bind(context);
  context.close = async () => {
    await close();
    await rm(profile, { recursive: true, force: true });
  };
  return context;
}

/**
 * The hooks a test file's steps share: before the first, a Nova (`start()`, by default
 * `startNova()`) and one browser page (`launchBrowser(launch)`, then `prepare(browser)`), handed
 * to `ready({ nova, browser, page })`; after the last, the browser and Nova stopped and
 * `cleanup()` run. With `skip`, nothing starts and every step is skipped. Answers
 * `step(name, body)`: a test, in file order, that saves a screenshot when it fails.
 */
export function session({ start = () => startNova(), launch = {}, prepare, cleanup, skip = false, ready = () => {} } = {}) {
  const s = {};
  before(async () => {
    if (skip) return;
    s.nova = await start();
    s.browser = await launchBrowser(launch);
    if (prepare) await prepare(s.browser);
    s.page = await s.browser.newPage();
    ready(s);
  });
  after(async () => {
    await s.browser?.close();
    await s.nova?.stop();
    if (cleanup) await cleanup();
  });
  return (name, body) => test(name, { skip }, withScreenshot(() => s.page, name, body));
}

/**
 * Wraps a test body: on failure, saves a screenshot of `page()` as test-output/browser/NAME.png
 * and rethrows.
 */
export function withScreenshot(page, name, body) {
  return async (t) => {
    try {
      await body(t);
    } catch (e) {
      await mkdir(outputDir, { recursive: true });
      const file = path.join(outputDir, `${name.replace(/[^a-z0-9-]+/gi, '-')}.png`);
      await page().screenshot({ path: file, fullPage: true }).catch(() => {});
      e.message += `\n(screenshot: ${path.relative(repoRoot, file)})`;
      throw e;
    }
  };
}

/**
 * Reloads `page` until `locator` is visible, within `ms`: what background work (the registry
 * refresh, the GitOps writer) shows only on a later render.
 */
export async function reloadUntil(page, locator, ms = 30_000) {
  const deadline = Date.now() + ms;
  while (await locator.count() === 0) {
    if (Date.now() > deadline) throw new Error(`not visible within ${ms / 1000} s: ${locator}`);
    await new Promise((r) => setTimeout(r, 500));
    await page.reload();
  }
}

/** On a component's Deployments tab: promotes the artifact whose row shows `rowText`. */
export async function promote(page, rowText, environment) {
  const row = page.locator('table.artifacts tbody tr', { hasText: rowText });
  await row.getByLabel('to').selectOption(environment);
  await row.getByRole('button', { name: 'Promote' }).click();
}

/**
 * The pending promotion into `environment` once shown, checked to have no approval yet of
 * `needed` and no Approve button for the signed-in requester.
 */
export async function pendingApproval(page, environment, needed) {
  const pending = page.locator('table.pending tbody tr', { hasText: environment });
  await pending.waitFor();
  assert.match(await pending.locator('td.approvals').innerText(), new RegExp(`^0/${needed}`));
  assert.equal(await pending.getByRole('button', { name: 'Approve' }).count(), 0, 'the requester cannot approve');
  return pending;
}

/** Where tests/oidc's provider lives, and whether its package is installed. */
const oidcDir = path.join(repoRoot, 'tests', 'oidc');
export const oidcProviderInstalled = () => existsSync(path.join(oidcDir, 'node_modules', 'oidc-provider', 'package.json'));

/**
 * Starts the real OpenID Connect provider of tests/oidc (npm oidc-provider with its development
 * login and consent forms) for one client; `accounts` maps a login to its claims. Resolves to
 * `{ issuer, stop() }` once it serves.
 */
export async function startOidcProvider({ clientId, clientSecret, redirectUri, accounts }) {
  const child = spawn(process.execPath, ['provider.mjs'], {
    cwd: oidcDir,
    env: { ...process.env, OIDC_CLIENT_ID: clientId, OIDC_CLIENT_SECRET: clientSecret, OIDC_REDIRECT_URI: redirectUri, OIDC_ACCOUNTS: JSON.stringify(accounts) },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let log = '';
  child.stderr.on('data', (d) => { log += d; });
  const issuer = await new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`the OIDC provider did not start within 20 s:\n${log}`)), 20_000);
    child.on('exit', (code) => reject(new Error(`the OIDC provider exited with ${code}:\n${log}`)));
    child.stdout.on('data', (d) => {
      out += d;
      const line = out.split('\n').find((l) => l.startsWith('issuer '));
      if (line) {
        clearTimeout(timer);
        resolve(line.slice('issuer '.length).trim());
      }
    });
  });
  return {
    issuer,
    async stop() {
      const done = new Promise((r) => child.on('exit', r));
      child.stdin.end();
      child.kill('SIGTERM');
      await done;
    },
  };
}
