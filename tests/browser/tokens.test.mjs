// The API tokens page as a person uses it: sign in (demo), open "API tokens" from the header,
// make a token with an expiry, copy it from the page that shows it once, see it listed by
// prefix (never in full) with its last use after it is used, revoke it, and see it refused.
import assert from 'node:assert/strict';
import { session } from './harness.mjs';

let nova;
let page;
let token;
const step = session({ ready: (s) => ({ nova, page } = s) });

step('signs in and opens API tokens from the header', async () => {
  await page.goto(`${nova.base}/sign-in?q=alex`);
  await page.getByRole('button', { name: 'Sign in as Alex Kim' }).click();
  await page.getByText('Signed in as').waitFor();
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'API tokens' }).click();
  await page.getByRole('heading', { name: 'API tokens', level: 1 }).waitFor();
  await page.getByText('You have no tokens.').waitFor();
});

step('makes a token with an expiry and shows it once', async () => {
  await page.getByLabel('Name (what it is for').fill('laptop');
  await page.getByLabel('Expires after (days').fill('30');
  await page.getByRole('button', { name: 'Make token' }).click();
  await page.getByRole('heading', { name: /Your new token “laptop”/ }).waitFor();
  token = await page.getByLabel('Token', { exact: true }).inputValue();
  assert.match(token, /^nova_[0-9A-Za-z]{43}$/);
  const row = page.locator('table.tokens tbody tr', { hasText: 'laptop' });
  assert.equal(await row.locator('td').nth(2).innerText(), 'active');
  assert.match(await row.locator('td').nth(4).innerText(), /^\d{4}-\d\d-\d\d /, 'an expiry date');
  assert.equal(await row.locator('td').nth(5).innerText(), 'never', 'not used yet');
});

step('lists it by prefix only, with its last use', async () => {
  const me = await fetch(`${nova.base}/api/v1/me`, { headers: { authorization: `Bearer ${token}` } });
  assert.equal(me.status, 200);
  assert.equal((await me.json()).user, 'user:default/alex.kim');
  await page.goto(`${nova.base}/tokens`);
  const html = await page.content();
  assert.ok(!html.includes(token), 'the token is never shown again');
  const row = page.locator('table.tokens tbody tr', { hasText: 'laptop' });
  assert.equal(await row.locator('code').innerText(), `${token.slice(0, 12)}…`);
  assert.notEqual(await row.locator('td').nth(5).innerText(), 'never', 'its last use is shown');
});

step('revokes it', async () => {
  await page.getByRole('button', { name: 'Revoke laptop' }).click();
  await page.getByText('Token revoked: it no longer works.').waitFor();
  const row = page.locator('table.tokens tbody tr', { hasText: 'laptop' });
  assert.equal(await row.locator('td').nth(2).innerText(), 'revoked');
  assert.equal(await row.getByRole('button').count(), 0);
  const me = await fetch(`${nova.base}/api/v1/me`, { headers: { authorization: `Bearer ${token}` } });
  assert.equal(me.status, 401);
});
