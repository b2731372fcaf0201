// A real OpenID Connect provider for Nova's sign-in tests: panva's oidc-provider with its
// development interactions (a login form that accepts any password, then a consent form),
// one static confidential client, and accounts given by the test.
//
// Started by the Rust test harness (crates/nova/tests/support/oidc.rs), configured through the
// environment:
//   OIDC_CLIENT_ID, OIDC_CLIENT_SECRET, OIDC_REDIRECT_URI  the one client Nova signs in as
//   OIDC_ACCOUNTS  JSON: { "<login>": { "preferred_username": ..., "email": ..., "groups": [...] } }
// It listens on 127.0.0.1 on a free port and prints one line, `issuer <url>`, once it serves.
import http from 'node:http';
import Provider from 'oidc-provider';

const env = (name) => {
  const value = process.env[name];
  if (!value) {
    console.error(`provider.mjs: ${name} is required`);
    process.exit(2);
  }
  return value;
};

const accounts = JSON.parse(env('OIDC_ACCOUNTS'));
const server = http.createServer();
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const issuer = `http://127.0.0.1:${server.address().port}`;

const provider = new Provider(issuer, {
  clients: [{
    client_id: env('OIDC_CLIENT_ID'),
    client_secret: env('OIDC_CLIENT_SECRET'),
    redirect_uris: [env('OIDC_REDIRECT_URI')],
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  // Nova reads who signed in from the ID token, so the scope claims go there too.
  conformIdTokenClaims: false,
  claims: {
    openid: ['sub'],
    profile: ['preferred_username', 'name'],
    email: ['email', 'email_verified'],
    groups: ['groups'],
  },
  pkce: { required: () => true },
  features: { devInteractions: { enabled: true } },
  async findAccount(ctx, id) {
    const claims = accounts[id];
    if (!claims) return undefined;
    return { accountId: id, claims: async () => ({ sub: id, ...claims }) };
  },
});

server.on('request', provider.callback());
process.stdout.write(`issuer ${issuer}\n`);
// The harness closes stdin when it stops (or dies): stop with it.
process.stdin.resume();
process.stdin.on('end', () => process.exit(0));
