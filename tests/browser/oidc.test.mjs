// Single sign-on in a real browser against a real OpenID Connect provider (tests/oidc: npm
// oidc-provider with its development login and consent forms): sign in from Nova's sign-in page,
// come back signed in as the catalog user the ID token names, sign out.
import assert from 'node:assert/strict';
import { freePort, oidcProviderInstalled, session, startNova, startOidcProvider } from './harness.mjs';

const available = oidcProviderInstalled();
if (!available) {
  const why = 'the OIDC browser test needs tests/oidc/node_modules (cd tests/oidc && npm ci)';
  if (process.env.CI) throw new Error(why);
  console.error(`\n*** SKIPPED: ${why} ***\n`);
}

let provider;
let nova;
let browser;
let page;
const step = session({
  skip: !available,
  start: async () => {
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    const clientSecret = 'oidc-client-secret-for-the-browser-test';
    provider = await startOidcProvider({
      clientId: 'nova-browser',
      clientSecret,
      redirectUri: `${base}/auth/oidc/callback`,
      accounts: { alex: { preferred_username: 'alex.kim', email: 'alex.kim@example.com' } },
    });
    const config = `[auth.oidc]
issuer = "${provider.issuer}"
client_id = "nova-browser"
client_secret = { env = "NOVA_TEST_OIDC_SECRET" }
redirect_url = "${base}/auth/oidc/callback"
`;
    return startNova({ port, config, env: { NOVA_TEST_OIDC_SECRET: clientSecret } });
  },
  // The provider's development pages load web fonts from the internet: answer those at once.
  prepare: (b) => b.route((url) => url.hostname !== '127.0.0.1', (route) => route.abort()),
  cleanup: () => provider?.stop(),
  ready: (s) => ({ nova, browser, page } = s),
});

step('signs in with single sign-on at the provider', async () => {
  await page.goto(`${nova.base}/sign-in?next=%2Fcatalog%3Fq%3Dpayment`);
  await page.getByRole('link', { name: 'Sign in with single sign-on' }).click();
  await page.waitForURL((url) => url.href.startsWith(provider.issuer));
  await page.locator('input[name="login"]').fill('alex');
  await page.locator('input[name="password"]').fill('any password');
  await page.getByRole('button', { name: 'Sign-in' }).click();
  await page.getByRole('button', { name: 'Continue' }).click();
  await page.waitForURL((url) => url.href.startsWith(`${nova.base}/catalog?q=payment`));
});

step('sees who is signed in, from the catalog', async () => {
  await page.getByText('Signed in as').waitFor();
  assert.equal(await page.locator('.who').getByRole('link', { name: 'Alex Kim' }).count(), 1);
  const cookie = (await browser.cookies()).find((c) => c.name === 'nova_session');
  assert.ok(cookie?.httpOnly, 'the session cookie is HttpOnly');
  const me = await page.evaluate(async () => (await fetch('/api/v1/me')).json());
  assert.equal(me.user, 'user:default/alex.kim');
  assert.equal(me.method, 'oidc');
  assert.ok(me.claims.includes('group:default/payments-core'));
});

step('signs out', async () => {
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.getByRole('link', { name: 'Sign in', exact: true }).waitFor();
  assert.equal((await browser.cookies()).some((c) => c.name === 'nova_session'), false);
});
