// A promotion to production through the console, by three people: Alex Kim (Payments Core,
// which owns the component) asks, Pat Chen and Sam Okafor (Platform, production's approver
// group) approve, and the tab shows the new artifact with a link to its GitOps commit. On real
// parts: a CNCF registry (docker-registry) holding the image CI reported through the signed
// intake webhook, and a local bare git repository served over file:// as the GitOps repository,
// in which the test finds the commit the link names.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { createHash, createHmac } from 'node:crypto';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { freePort, outputDir, pendingApproval, promote, reloadUntil, session, startNova } from './harness.mjs';

const COMPONENT = 'release-demo';
const KUSTOMIZATION = 'apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n- ../../base\nimages:\n- name: release-demo\n  newTag: old\n';
const CATALOG = `apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: ${COMPONENT}
  annotations:
    nova.dev/image-repository: local/payments/${COMPONENT}
spec:
  type: service
  lifecycle: production
  owner: payments-core
`;

let nova;
let page;
let registry;
let work;
let bare;
let digest;
let registryHost;

const git = (args, cwd) => execFileSync('git', ['-c', 'user.name=Test', '-c', 'user.email=test@example.com', '-c', 'init.defaultBranch=main', ...args], { cwd, encoding: 'utf8' });
const sha256 = (data) => `sha256:${createHash('sha256').update(data).digest('hex')}`;

/** Starts docker-registry on a free port with its own storage; answers its base URL. */
async function startRegistry(dir) {
  const port = await freePort();
  const config = path.join(dir, 'registry.yml');
  await writeFile(config, `version: 0.1\nlog: {level: error}\nstorage: {filesystem: {rootdirectory: ${path.join(dir, 'storage')}}}\nhttp: {addr: 127.0.0.1:${port}}\n`);
  registry = spawn(process.env.NOVA_TEST_REGISTRY_BIN || 'docker-registry', ['serve', config], { stdio: 'ignore' });
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 100; i++) {
    try { if ((await fetch(`${url}/v2/`)).ok) return url; } catch { /* not up yet */ }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('docker-registry did not start');
}

/** Pushes a small image (config and one layer) through the Distribution API; answers its digest. */
async function pushImage(url, repository, tag) {
  const blob = async (data) => {
    const start = await fetch(`${url}/v2/${repository}/blobs/uploads/`, { method: 'POST' });
    assert.equal(start.status, 202);
    const put = new URL(start.headers.get('location'), url);
    put.searchParams.set('digest', sha256(data));
    assert.equal((await fetch(put, { method: 'PUT', body: data, headers: { 'content-type': 'application/octet-stream' } })).status, 201);
    return { digest: sha256(data), size: data.length };
  };
  const config = await blob(Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } })));
  const layer = await blob(Buffer.from('release demo layer'));
  const type = 'application/vnd.docker.distribution.manifest.v2+json';
  const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: type,
    config: { mediaType: 'application/vnd.docker.container.image.v1+json', ...config },
    layers: [{ mediaType: 'application/vnd.docker.image.rootfs.diff.tar.gzip', ...layer }] }));
  const r = await fetch(`${url}/v2/${repository}/manifests/${tag}`, { method: 'PUT', body: manifest, headers: { 'content-type': type } });
  assert.equal(r.status, 201);
  return sha256(manifest);
}

/** Signs out (if signed in) and signs in as `name` through development sign-in. */
async function signInAs(query, name) {
  await page.goto(`${nova.base}/`);
  const out = page.getByRole('button', { name: 'Sign out' });
  if (await out.count() > 0) await out.click();
  await page.goto(`${nova.base}/sign-in?q=${query}`);
  await page.getByRole('button', { name: `Sign in as ${name}` }).click();
  await page.getByText('Signed in as').waitFor();
  await page.goto(`${nova.base}/catalog/default/component/${COMPONENT}/deployments`);
  await page.getByRole('heading', { name: 'Environments' }).waitFor();
}

/** The GitOps repository and the registry holding the image, then Nova configured with both. */
async function start() {
  work = await mkdtemp(path.join(tmpdir(), 'nova-release-'));
  const seed = path.join(work, 'seed');
  for (const env of ['dev', 'production']) {
    await mkdir(path.join(seed, 'apps', COMPONENT, env), { recursive: true });
    await writeFile(path.join(seed, 'apps', COMPONENT, env, 'kustomization.yaml'), KUSTOMIZATION);
  }
  git(['init', '--quiet'], seed);
  git(['add', '-A'], seed);
  git(['commit', '--quiet', '-m', 'overlays'], seed);
  bare = path.join(work, 'deploy.git');
  git(['clone', '--quiet', '--bare', seed, bare], work);
  const registryUrl = await startRegistry(work);
  registryHost = new URL(registryUrl).host;
  digest = await pushImage(registryUrl, `payments/${COMPONENT}`, 'v1.0.0');
  const target = (env) => `[environments.${env}.gitops]\nrepository = "file://${bare}"\npath = "apps/{component}/${env}/kustomization.yaml"\nimage_name = "${COMPONENT}"\ncommit_url = "https://git.example.com/platform/deploy/commit/{commit}"\n`;
  const config = `[registries.local]\ntype = "oci"\nurl = "${registryUrl}"\n\n[environments.dev]\norder = 1\n${target('dev')}\n[environments.production]\norder = 2\n${target('production')}\n[environments.production.gates]\napprovals = 2\napprover_groups = ["group:default/platform"]\n`;
  return startNova({ config, catalogFiles: { 'release-demo.yaml': CATALOG }, brokenFile: false });
}

const step = session({
  start,
  launch: { viewport: { width: 1280, height: 900 } },
  cleanup: async () => {
    registry?.kill();
    if (work) await rm(work, { recursive: true, force: true });
  },
  ready: (s) => ({ nova, page } = s),
});

step('CI reports the pushed image through the signed intake webhook', async () => {
  await signInAs('alex', 'Alex Kim');
  const made = await page.request.post(`${nova.base}/api/v1/teams/payments-core/intake-secret`);
  assert.equal(made.status(), 201, await made.text());
  const { secret } = await made.json();
  const body = JSON.stringify({ component: COMPONENT, repository: `${registryHost}/payments/${COMPONENT}`, digest, tags: ['v1.0.0'], gitRef: 'main' });
  const ts = Math.floor(Date.now() / 1000);
  const sig = `sha256=${createHmac('sha256', secret).update(`${ts}.${body}`).digest('hex')}`;
  const r = await fetch(`${nova.base}/api/v1/artifacts`, { method: 'POST', body, headers: { 'content-type': 'application/json', 'x-nova-timestamp': String(ts), 'x-nova-signature-256': sig } });
  assert.equal(r.status, 201, await r.text());
  await page.reload();
  await page.locator('table.artifacts').getByText(digest.slice(0, 19)).waitFor();
});

step('the owner promotes it to dev, where it lands', async () => {
  await promote(page, digest.slice(0, 19), 'dev');
  await reloadUntil(page, page.locator('tr[data-environment="dev"]', { hasText: digest.slice(0, 19) }));
});

step('the owner asks for production, which needs two approvals', async () => {
  await promote(page, digest.slice(0, 19), 'production');
  await pendingApproval(page, 'production', 2);
});

step('a first approver approves: 1/2, with their name', async () => {
  await signInAs('pat', 'Pat Chen');
  const pending = page.locator('table.pending tbody tr', { hasText: 'production' });
  await pending.getByRole('button', { name: 'Approve' }).click();
  await page.getByRole('heading', { name: 'Environments' }).waitFor();
  assert.equal(await page.locator('table.pending td.approvals').innerText(), '1/2 · user:default/pat.chen');
  assert.equal(await page.locator('tr[data-environment="production"]', { hasText: digest.slice(0, 19) }).count(), 0, 'not written yet');
});

step('the second approver approves, and production shows the artifact with its commit', async () => {
  await signInAs('sam', 'Sam Okafor');
  await page.locator('table.pending tbody tr', { hasText: 'production' }).getByRole('button', { name: 'Approve' }).click();
  const production = page.locator('tr[data-environment="production"]', { hasText: digest.slice(0, 19) });
  await reloadUntil(page, production);
  assert.match(await production.innerText(), /v1\.0\.0/);
  assert.match(await production.innerText(), /approved by user:default\/pat\.chen, user:default\/sam\.okafor/);
  const href = await production.locator('a.commit').getAttribute('href');
  const sha = href.split('/').pop();
  assert.match(href, /^https:\/\/git\.example\.com\/platform\/deploy\/commit\/[0-9a-f]{40}$/);
  // The commit really is on the GitOps repository's branch, and holds the digest.
  assert.equal(git(['--git-dir', bare, 'rev-parse', 'main']).trim(), sha);
  assert.match(git(['--git-dir', bare, 'show', `${sha}:apps/${COMPONENT}/production/kustomization.yaml`]), new RegExp(`digest: ${digest}`));
  assert.match(git(['--git-dir', bare, 'log', '-1', '--format=%B', sha]), /Approved-by: user:default\/pat\.chen, user:default\/sam\.okafor/);
  assert.equal(await page.locator('table.pending').count(), 0, 'nothing pending any more');
  await mkdir(outputDir, { recursive: true });
  await page.screenshot({ path: path.join(outputDir, 'release-deployments.png'), fullPage: true });
});
