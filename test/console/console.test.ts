/**
 * The web console in a real browser (headless Chromium): sign in with a pasted token, create a
 * secret from the OpenAI template and find it with the CLI, edit it, attach it to a deployment
 * (clashes shown before saving), watch a running lockbox-agent's rollout reach "1/1 on v2", reveal
 * a value (audited), verify the audit chain, create and revoke a token, and a 401 back to
 * sign-in. Throughout: hostile strings stay text, no value in the page unless revealed, the
 * token only in a header and sessionStorage, no CSP violation, usable in a narrow window.
 *
 * Screenshots of each page go to $LOCKBOX_CONSOLE_SCREENSHOTS when set (`npm run
 * screenshots:console` writes docs/console/), else to a temp dir.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import type { Page } from 'playwright-core';
import { launchBrowser, watchedPage } from '../helpers/browser.js';
import { startTestDaemon, tempDir } from '../helpers/daemon.js';
import { startNats } from '../helpers/nats.js';
import { restClient } from '../helpers/rest.js';
import { agentBin, agentFlags, cliBin } from '../helpers/spawn.js';

// Browser globals, for the functions page.evaluate runs in the page (this file compiles without the DOM lib).
declare const document: any, window: any, sessionStorage: any, localStorage: any, location: any, navigator: any;
type HTMLInputElement = { labels?: unknown[] };

const CANARY_V1 = 'sk-console-CANARY-v1-7f3a';
const CANARY_V2 = 'sk-console-CANARY-v2-91c4';
const HOSTILE = '<img src=x onerror="window.__pwned=(window.__pwned||0)+1;alert(1)">';

function runCli(args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [cliBin, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c) => (stdout += c));
    child.stderr.on('data', (c) => (stderr += c));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** Every regular file's text under `dir` (the agent writes through symlinks; readFileSync follows them). */
function filesUnder(dir: string): string {
  let all = '';
  for (const entry of readdirSync(dir)) {
    const path = join(dir, entry);
    const stat = statSync(path);
    if (stat.isDirectory()) all += filesUnder(path);
    else if (stat.isFile()) all += readFileSync(path, 'utf8');
  }
  return all;
}

t.test('the console in headless Chromium', async (t) => {
  const nats = await startNats(t); // the agent follows changes by its notices
  const d = await startTestDaemon(t, { natsUrl: nats.url });
  const rest = restClient(d);
  const base = d.daemon.httpUrl!;
  const shots = process.env.LOCKBOX_CONSOLE_SCREENSHOTS ?? tempDir(t, 'lockbox-shots-');
  mkdirSync(shots, { recursive: true });
  const context = await launchBrowser(t);
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: base });
  const w = await watchedPage(context);
  const { page } = w;
  const shoot = (name: string) => page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });
  const hostileInert = async (where: string) => {
    const state = await page.evaluate(() => ({ images: document.querySelectorAll('img').length, pwned: (window as unknown as { __pwned?: number }).__pwned ?? 0 }));
    t.same(state, { images: 0, pwned: 0 }, `${where}: no element created from a hostile string, no handler ran`);
  };
  const noValueInPage = async (where: string, ...values: string[]) => {
    const html = await page.content();
    for (const value of values) t.notOk(html.includes(value), `${where}: the value is not in the DOM`);
  };

  await t.test('the page is served with a strict CSP and no framing', async (t) => {
    const answer = await fetch(`${base}/ui/`);
    t.equal(answer.status, 200);
    const csp = answer.headers.get('content-security-policy') ?? '';
    t.match(csp, /script-src 'self'(;|$)/, 'scripts from this origin only: no inline script, no eval');
    t.match(csp, /frame-ancestors 'none'/);
    t.equal(answer.headers.get('x-frame-options'), 'DENY');
    const html = await answer.text();
    t.notMatch(html, /<script(?![^>]*\bsrc=)[^>]*>/, 'no inline script in the page');
    t.notMatch(html, /<style|style=/, 'no inline style');
  });

  await t.test('sign in with a pasted token, by keyboard', async (t) => {
    await page.goto(`${base}/ui/`);
    await page.getByLabel('API token').waitFor();
    await shoot('sign-in');
    await page.getByLabel('API token').fill('lbx_0000000000000000_' + 'A'.repeat(43));
    await page.keyboard.press('Enter');
    await page.getByRole('alert').waitFor();
    t.match(await page.getByRole('alert').textContent(), /token/i, 'an unknown token is refused with a message');
    await page.getByLabel('API token').fill(d.adminToken);
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { name: 'Secrets' }).waitFor();
    const storage = await page.evaluate(() => ({ session: sessionStorage.getItem('lockbox.token'), local: localStorage.length, cookie: document.cookie, url: location.href }));
    t.equal(storage.session, d.adminToken, 'the token is kept in sessionStorage');
    t.equal(storage.local, 0, 'nothing in localStorage');
    t.equal(storage.cookie, '', 'no cookie');
    t.notOk(storage.url.includes(d.adminToken), 'not in the URL');
    const scopes = await page.getByLabel('Scope').locator('option').allTextContents();
    t.same(scopes.slice(0, 2), ['main tenant scope', 'tenant-wide (*)'], 'the scope picker offers what a tenant-admin sees');
  });

  await t.test('create from the OpenAI template; the CLI finds it', async (t) => {
    await page.getByRole('link', { name: 'Create secret' }).click();
    await page.getByLabel('Template').selectOption('openai');
    t.equal(await page.getByLabel('Key 1', { exact: true }).inputValue(), 'OPENAI_API_KEY', 'the template names its key');
    t.equal(await page.getByLabel('Key 1', { exact: true }).getAttribute('readonly'), '', 'a required key cannot be renamed');
    await page.getByLabel('Name', { exact: true }).fill('openai-prod');
    await page.getByLabel('Description').fill(HOSTILE);
    await page.getByLabel('Labels (key=value, comma separated)').fill('team=ml');
    await page.getByLabel('environment variables').check();
    await page.getByLabel('Env file format').selectOption('dotenv');
    await page.getByLabel('Value of OPENAI_API_KEY').fill(CANARY_V1);
    await shoot('secret-create');
    await page.getByRole('button', { name: 'Create' }).click();
    await page.getByRole('heading', { name: 'Secret openai-prod' }).waitFor();
    t.ok(await page.getByText(HOSTILE).count(), 'the hostile description is shown as text');
    await hostileInert('details page');
    await noValueInPage('details page', CANARY_V1);
    const listed = await runCli(['-o', 'json', 'secret', 'get', 'openai-prod'], { LOCKBOX_ADDR: d.daemon.address, LOCKBOX_TOKEN: d.adminToken });
    t.equal(listed.code, 0, listed.stderr);
    const got = JSON.parse(listed.stdout);
    t.same([got.name, got.template ?? got.provider_slug, got.keys, got.mount.kind, got.description], ['openai-prod', 'openai', ['OPENAI_API_KEY'], 'env', HOSTILE], 'lockbox secret get sees what the console created');
  });

  await t.test('a failed create shows the API error as text', async (t) => {
    await page.goto(`${base}/ui/#/new-secret`);
    await page.getByLabel('Template').selectOption('custom');
    await page.getByLabel('Name', { exact: true }).fill(HOSTILE);
    await page.getByLabel('Key 1', { exact: true }).fill('A');
    await page.getByLabel('Value of A').fill('x');
    await page.getByRole('button', { name: 'Create' }).click();
    await page.getByRole('alert').waitFor();
    t.match(await page.getByRole('alert').textContent(), /name/, 'the error names the field');
    await hostileInert('error line');
  });

  // A second secret whose env key clashes with openai-prod's, and a file secret that fits.
  for (const body of [
    { name: 'openai-old', provider_slug: 'openai', data: { OPENAI_API_KEY: 'x' }, mount: { kind: 'env' } },
    { name: 'hf', provider_slug: 'huggingface', data: { HF_TOKEN: 'y' }, mount: { kind: 'file', path: 'hf' } },
  ])
    t.equal((await rest('POST', '/v1/admin/secrets', { body })).status, 201);

  let agentHome = '';
  await t.test('create a deployment: clashes are shown before saving', async (t) => {
    await page.goto(`${base}/ui/#/new-deployment`);
    await page.getByLabel('Name', { exact: true }).fill('app');
    await page.getByLabel('Description').fill(HOSTILE);
    await page.getByLabel('openai-prod').check();
    await page.getByLabel('openai-old').check();
    const clash = page.locator('ul.clashes li');
    await clash.first().waitFor();
    t.same(await clash.allTextContents(), ['environment variable "OPENAI_API_KEY" from secrets "openai-prod" and "openai-old"'], 'one line per clash, the API\'s own words');
    t.ok(await page.getByRole('button', { name: 'Create' }).isDisabled(), 'save is off while secrets clash');
    await shoot('deployment-clash');
    await page.getByLabel('openai-old').uncheck();
    await page.getByLabel('hf').check();
    await page.getByText('No clashes.').waitFor();
    await page.getByRole('button', { name: 'Create' }).click();
    await page.getByRole('heading', { name: 'Deployment app' }).waitFor();
    await hostileInert('deployment page');
    const stored = await rest('GET', '/v1/admin/deployments/app', { headers: { 'AI-Tenant-Scope': 'true' } });
    t.same(stored.json.secrets, ['openai-prod', 'hf'], 'saved through the REST API');
    // Edit: the form starts from what is stored; a clash shows there too.
    await page.getByRole('link', { name: 'Edit' }).click();
    await page.getByRole('heading', { name: 'Edit deployment app' }).waitFor();
    await page.waitForFunction(() => (document.getElementById('deployment-description') as { value: string } | null)?.value !== '');
    t.same([await page.getByLabel('openai-prod').isChecked(), await page.getByLabel('hf').isChecked(), await page.getByLabel('openai-old').isChecked()], [true, true, false]);
    await page.getByLabel('openai-old').check();
    await page.locator('ul.clashes li').first().waitFor();
    await page.getByLabel('openai-old').uncheck();
    await page.getByText('No clashes.').waitFor();
    await page.getByLabel('Description').fill('serves the chat model');
    await page.getByRole('button', { name: 'Save changes' }).click();
    await page.getByText('serves the chat model').waitFor();
    t.same((await rest('GET', '/v1/admin/deployments/app')).json.version, 2, 'the edit is saved as version 2');
  });

  await t.test('a running agent\'s rollout reaches 1/1 on v2 after an edit', async (t) => {
    const { json } = await rest('POST', '/v1/admin/tokens', { body: { role: 'agent', deployment: 'app' } });
    agentHome = tempDir(t, 'lockbox-console-home-');
    const agent = spawn(process.execPath, [...agentFlags, agentBin, 'run', '--addr', d.daemon.address, '--bentoml-home', agentHome, '--agent-id', 'console-agent-1'], {
      env: { ...process.env, LOCKBOX_TOKEN: json.token },
      stdio: 'ignore',
    });
    t.teardown(() => agent.kill('SIGTERM'));
    const summary = page.locator('[data-summary="openai-prod"]');
    await page.waitForFunction(() => document.querySelector('[data-summary="openai-prod"]')?.textContent === '1/1 on v1', undefined, { timeout: 30_000 });
    t.equal(await summary.textContent(), '1/1 on v1', 'the agent shows up, holding v1');
    t.ok(await page.getByRole('cell', { name: 'console-agent-1' }).first().count(), 'the agent is listed by its id');

    // The edit: a new value for the fixed key, a label more.
    await page.goto(`${base}/ui/#/secrets/openai-prod/edit`);
    await page.getByLabel('New value of OPENAI_API_KEY').fill(CANARY_V2);
    t.equal(await page.getByLabel('Key 1', { exact: true }).getAttribute('readonly'), '', 'key names are fixed on edit');
    await page.getByLabel('Labels (key=value, comma separated)').fill('team=ml, tier=prod');
    await page.getByRole('button', { name: 'Save changes' }).click();
    await page.getByRole('heading', { name: 'Secret openai-prod' }).waitFor();
    await page.getByText('v2', { exact: true }).first().waitFor();

    await page.goto(`${base}/ui/#/deployments/app`);
    await page.waitForFunction(() => document.querySelector('[data-summary="openai-prod"]')?.textContent === '1/1 on v2', undefined, { timeout: 30_000 });
    t.equal(await summary.textContent(), '1/1 on v2', 'the rollout view follows the edit to the agent');
    t.ok(filesUnder(agentHome).includes(CANARY_V2), 'the agent wrote v2');
    await noValueInPage('rollout page', CANARY_V1, CANARY_V2);
    await shoot('deployment-rollout');
  });

  await t.test('reveal is an audited read, shown only while asked', async (t) => {
    await page.goto(`${base}/ui/#/secrets/openai-prod`);
    await page.getByRole('heading', { name: 'Secret openai-prod' }).waitFor();
    await page.getByText('Restore v1').waitFor();
    await shoot('secret-details');
    await noValueInPage('before reveal', CANARY_V2);
    const before = await rest('GET', '/v1/admin/audit?action=secret.read&target=openai-prod');
    const readsBefore = before.json.entries.filter((e: { action: string; target: string }) => e.action === 'secret.read' && e.target === 'openai-prod').length;
    await page.getByRole('button', { name: 'Reveal OPENAI_API_KEY (audited)' }).click();
    const shown = page.locator('[data-revealed="OPENAI_API_KEY"]');
    await shown.waitFor();
    t.equal(await shown.textContent(), CANARY_V2, 'the current value, revealed');
    const after = await rest('GET', '/v1/admin/audit?action=secret.read&target=openai-prod');
    t.equal(after.json.entries.length, readsBefore + 1, 'one audited read');
    await page.getByRole('button', { name: 'Hide' }).click();
    await noValueInPage('after hide', CANARY_V2);

    await page.goto(`${base}/ui/#/audit`);
    await page.getByLabel('Action').selectOption('secret.read');
    await page.getByLabel('Target').fill('openai-prod');
    await page.getByLabel('Target').press('Tab');
    await page.locator('tr[data-action="secret.read"]').first().waitFor();
    t.ok(await page.locator('tr[data-action="secret.read"]').count(), 'the reveal is in the audit page');
    await page.getByRole('button', { name: 'Verify chain' }).click();
    await page.locator('[data-verify]').waitFor();
    t.equal(await page.locator('[data-verify]').getAttribute('data-verify'), 'ok', 'the chain verifies');
    await shoot('audit');
  });

  await t.test('the container-registry form; restore a version; delete names the deployments and needs force', async (t) => {
    await page.goto(`${base}/ui/#/new-secret`);
    await page.getByLabel('Template').selectOption('container-registry');
    t.same(
      await page.locator('input[id^="key-"]').evaluateAll((inputs) => inputs.map((i) => (i as { value: string }).value)),
      ['server', 'username', 'password', 'email'],
      'the registry form names its keys',
    );
    await page.getByLabel('Name', { exact: true }).fill('registry');
    await page.getByLabel('Value of server').fill('registry.example.com');
    await page.getByLabel('Value of username').fill('bot');
    await page.getByLabel('Value of password').fill(CANARY_V1);
    await page.getByRole('button', { name: 'Create' }).click();
    await page.getByRole('heading', { name: 'Secret registry' }).waitFor();
    const registry = await rest('GET', '/v1/admin/secrets/registry');
    t.same([registry.json.type, registry.json.keys], ['container_registry', ['password', 'server', 'username']], 'a container_registry secret, the empty optional email left out');

    await page.goto(`${base}/ui/#/secrets/openai-prod`);
    await page.getByRole('button', { name: 'Restore v1' }).click();
    await page.getByText('Restored version 1 as version 3.').waitFor();
    const restored = await rest('GET', '/v1/admin/secrets/openai-prod?reveal=true');
    t.same([restored.json.version, restored.json.data.OPENAI_API_KEY], [3, CANARY_V1], 'v1\'s value is current again, as v3');

    await page.goto(`${base}/ui/#/secrets/hf`);
    await page.getByRole('button', { name: 'Delete', exact: true }).click();
    const confirm = page.getByRole('group', { name: 'Confirm delete' });
    await confirm.waitFor();
    t.same(await confirm.locator('li').allTextContents(), ['app'], 'the deployment that mounts it is named');
    t.ok(await confirm.getByRole('button', { name: 'Delete secret' }).isDisabled(), 'delete needs force while a deployment mounts it');
    await confirm.getByLabel('delete anyway (force)').check();
    await confirm.getByRole('button', { name: 'Delete secret' }).click();
    await page.getByRole('heading', { name: 'Secrets', level: 1 }).waitFor();
    t.equal((await rest('GET', '/v1/admin/secrets/hf')).status, 404, 'deleted');
    await page.goto(`${base}/ui/#/deployments/app`);
    await page.waitForFunction(() => document.querySelector('[data-summary="hf"]')?.textContent === 'not found');
    t.pass('the rollout view shows the forced-away secret as not found');
  });

  let adminTwo = '';
  await t.test('tokens: created and shown once with a copy button, listed, revoked', async (t) => {
    await page.goto(`${base}/ui/#/tokens`);
    await page.getByLabel('Role').selectOption('tenant-admin');
    await page.getByLabel('Description').fill(HOSTILE);
    await page.getByRole('button', { name: 'Create token' }).click();
    const shownToken = page.getByRole('textbox', { name: 'New token' });
    await shownToken.waitFor();
    adminTwo = await shownToken.inputValue();
    t.match(adminTwo, /^lbx_[0-9a-f]{16}_/, 'the new token is shown');
    await page.getByRole('button', { name: 'Copy' }).click();
    await page.getByRole('button', { name: 'Copied' }).waitFor();
    t.equal(await page.evaluate(() => navigator.clipboard.readText()), adminTwo, 'the copy button puts it on the clipboard');
    await page.getByRole('button', { name: 'Done' }).click();
    t.notOk((await page.content()).includes(adminTwo), 'gone from the page once dismissed');
    await hostileInert('tokens page');
    const id = adminTwo.slice(4, 20);
    await page.getByRole('cell', { name: id }).waitFor();
    await shoot('tokens');

    // A reader token, revoked from the list.
    const reader = await rest('POST', '/v1/admin/tokens', { body: { role: 'reader', description: 'to revoke' } });
    await page.reload();
    const row = page.locator('tr', { has: page.getByRole('cell', { name: reader.json.info.id }) });
    await row.getByRole('button', { name: 'Revoke' }).click();
    await row.getByRole('button', { name: `Revoke ${reader.json.info.id}` }).click();
    await row.waitFor({ state: 'detached' });
    t.equal((await rest('GET', '/v1/whoami', { token: reader.json.token })).status, 401, 'the revoked token no longer works');
  });

  await t.test('a 401 returns to sign-in', async (t) => {
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByLabel('API token').fill(adminTwo);
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { name: 'Tokens', level: 1 }).waitFor(); // back where the user was
    t.equal((await rest('DELETE', `/v1/admin/tokens/${adminTwo.slice(4, 20)}`)).status, 200);
    await page.getByRole('link', { name: 'Deployments' }).click();
    await page.getByLabel('API token').waitFor();
    t.equal(await page.evaluate(() => sessionStorage.getItem('lockbox.token')), null, 'the session is forgotten');
    await page.getByLabel('API token').fill(d.adminToken);
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { name: 'Deployments' }).waitFor();
  });

  await t.test('usable in a narrow window and by keyboard', async (t) => {
    await page.setViewportSize({ width: 390, height: 800 });
    await page.goto(`${base}/ui/#/secrets`);
    await page.getByRole('link', { name: 'openai-prod' }).waitFor();
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    t.ok(overflow <= 0, `the page fits 390px (table scrolls inside its box); overflow ${overflow}px`);
    await shoot('secrets-narrow');
    await page.setViewportSize({ width: 1280, height: 800 });
    await page.getByLabel('Search this page').fill('openai');
    t.equal(await page.locator('tbody tr').count(), 2, 'search narrows the list');
    await page.getByLabel('Search this page').fill('');
    await page.getByLabel('Type').selectOption('container_registry');
    await page.waitForFunction(() => document.querySelectorAll('tbody tr').length === 1);
    t.equal(await page.locator('tbody tr').textContent().then((text) => text?.startsWith('registry')), true, 'the type filter runs in the API');
    await page.getByLabel('Type').selectOption('');
    await page.getByLabel('Template').selectOption('openai');
    await page.waitForFunction(() => document.querySelectorAll('tbody tr').length === 2);
    t.pass('so does the template filter');
    await page.getByLabel('Template').selectOption('');
    await page.getByRole('link', { name: 'openai-prod' }).waitFor();
    await shoot('secrets');
    // Keyboard: Tab from the page top reaches the nav links, Enter follows one.
    await page.locator('a.brand').focus();
    await page.keyboard.press('Tab');
    await page.keyboard.press('Tab');
    t.equal(await page.evaluate(() => document.activeElement?.textContent), 'Deployments', 'Tab moves through the nav');
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { name: 'Deployments' }).waitFor();
    const unlabelled = await page.evaluate(() => [...document.querySelectorAll('input, select')].filter((el) => !(el as HTMLInputElement).labels?.length && !el.getAttribute('aria-label')).length);
    t.equal(unlabelled, 0, 'every input has a label');
  });

  t.same(w.dialogs, [], 'no dialog was ever opened');
  t.same(w.cspViolations, [], 'no CSP violation');
  const api = w.requests.filter((r) => !r.url.includes('/ui/'));
  t.ok(api.length > 10, 'the console called the API');
  t.ok(api.every((r) => r.authorization?.startsWith('Bearer lbx_')), 'every API call carries the token as a header');
  t.ok(w.requests.every((r) => !/lbx_[0-9a-f]{16}_/.test(r.url)), 'no token in any URL');
  t.notOk(d.logs.some((line) => line.includes(CANARY_V1) || line.includes(CANARY_V2)), 'no value in the daemon log');
});
