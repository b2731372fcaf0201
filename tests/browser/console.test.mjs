// The console as a person uses it: sign in (demo), search, filter by owner, open a component,
// follow its owner link, open a user and see their claims, see a catalog error, sign out.
// The steps share one browser page and run in order.
import assert from 'node:assert/strict';
import { session } from './harness.mjs';

let nova;
let browser;
let page;
const step = session({ ready: (s) => ({ nova, browser, page } = s) });

step('signs in as a demo user', async () => {
  await page.goto(`${nova.base}/`);
  await page.getByRole('link', { name: 'Sign in' }).click();
  await page.getByLabel('Find a user').fill('alex');
  await page.getByRole('button', { name: 'Find' }).click();
  await page.getByRole('button', { name: 'Sign in as Alex Kim' }).click();
  await page.getByText('Signed in as').waitFor();
  assert.equal(await page.locator('.who').getByRole('link', { name: 'Alex Kim' }).count(), 1);
  const cookies = await browser.cookies();
  const session = cookies.find((c) => c.name === 'nova_session');
  assert.ok(session?.httpOnly, 'the session cookie is HttpOnly');
  assert.equal(session.sameSite, 'Lax');
});

step('searches the catalog from the header', async () => {
  await page.getByLabel('Search the catalog').fill('refund');
  await page.keyboard.press('Enter');
  await page.waitForURL(/q=refund/);
  const results = page.locator('table.entities');
  await results.getByRole('link', { name: 'Refund Service' }).waitFor();
  assert.equal(await results.getByRole('link', { name: 'Basket Service' }).count(), 0);
});

step('filters by owner with a shareable URL', async () => {
  await page.getByRole('link', { name: 'Clear search and filters' }).click();
  const owners = page.locator('section.facet', { has: page.getByRole('heading', { name: 'Owner' }) });
  await owners.getByRole('link', { name: /Payments Core/ }).click();
  await page.waitForURL(/owner=group%3Adefault%2Fpayments-core/);
  await page.getByRole('heading', { name: '1–5 of 5 entities' }).waitFor();
  // The URL alone reproduces the view.
  const shared = await browser.newPage();
  await shared.goto(page.url());
  await shared.getByRole('heading', { name: '1–5 of 5 entities' }).waitFor();
  await shared.close();
});

step('opens a component and follows its owner link', async () => {
  await page.locator('table.entities').getByRole('link', { name: 'Payment Service' }).click();
  await page.getByRole('heading', { level: 1, name: 'Payment Service' }).waitFor();
  await page.getByRole('link', { name: 'Overview' }).waitFor();
  const about = page.locator('section.card', { has: page.getByRole('heading', { name: 'About' }) });
  await about.getByRole('link', { name: 'Payments Core' }).click();
  await page.getByRole('heading', { level: 1, name: 'Payments Core' }).waitFor();
  assert.match(page.url(), /\/catalog\/default\/group\/payments-core$/);
});

step("opens a user and sees their ownership claims", async () => {
  const members = page.locator('section.card', { has: page.getByRole('heading', { name: 'Members', exact: true }) });
  await members.getByRole('link', { name: 'Jo Novak' }).click();
  await page.getByRole('heading', { level: 1, name: 'Jo Novak' }).waitFor();
  const claims = page.locator('section.card', { has: page.getByRole('heading', { name: 'Ownership claims' }) });
  for (const group of ['Payments Core', 'Payments', 'Engineering']) {
    assert.equal(await claims.getByRole('link', { name: group, exact: true }).count(), 1, `claim ${group}`);
  }
  await page.locator('table').getByRole('link', { name: 'Payment Service' }).first().waitFor();
});

step('sees the broken catalog file on the errors page', async () => {
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: /Errors/ }).click();
  await page.getByRole('heading', { level: 1, name: 'Catalog errors' }).waitFor();
  const row = page.locator('table.errors tr', { hasText: 'broken.yaml' });
  assert.ok((await row.count()) >= 1, 'the broken file is listed');
  assert.match(await row.first().innerText(), /spec\.owner/);
});

step('is usable at 375 px and by keyboard', async () => {
  await page.setViewportSize({ width: 375, height: 800 });
  await page.goto(`${nova.base}/catalog`);
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  assert.ok(overflow <= 0, `the page scrolls sideways by ${overflow}px`);
  await page.keyboard.press('Tab');
  assert.equal(await page.evaluate(() => document.activeElement.textContent), 'Skip to content');
  await page.keyboard.press('Enter');
  await page.keyboard.press('Tab');
  assert.equal(await page.evaluate(() => document.activeElement.id), 'q', 'after skipping, focus reaches the catalog search');
  await page.setViewportSize({ width: 1280, height: 900 });
});

step('signs out', async () => {
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.getByRole('link', { name: 'Sign in' }).waitFor();
  assert.equal((await browser.cookies()).some((c) => c.name === 'nova_session'), false);
});
