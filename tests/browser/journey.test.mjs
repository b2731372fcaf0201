// The demo's journey end to end, on real parts: `nova serve --demo` with its environment (a CNCF
// registry and a git server seeded from examples/repos, builds with buildah). A Storefront team
// member signs in, opens Storefront Web, sees its seeded images (a multi-platform index among
// them) and one image's scan findings, presses "Build image", follows the live log to success,
// sees the new image on the Images tab, finds it promoted to dev by itself, promotes it to
// staging and asks for production, which two other engineers approve; the GitOps repository
// then holds the commit that names the new image by digest. Each step saves a screenshot under test-output/tour/, and the passing run writes
// test-output/tour/TOUR.md from them; with NOVA_UPDATE_TOUR=1 it writes docs/TOUR.md and
// docs/tour/ instead (how the committed tour is made).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { outputDir, pendingApproval, promote, reloadUntil, repoRoot, session, startNova } from './harness.mjs';

const tourRoot = process.env.NOVA_UPDATE_TOUR ? path.join(repoRoot, 'docs') : path.join(outputDir, '..', 'tour');
const NEW_TAG = 'v1.3.0';

let nova;
let page;
const shots = [];
const steps = [];
let passed = 0;
const sessionStep = session({
  start: async () => {
    // Production waits two minutes after staging in the demo; a few seconds do here.
    const started = await startNova({ env: { NOVA_DEMO__ENVIRONMENT: 'true', NOVA_ENVIRONMENTS__PRODUCTION__GATES__WAIT: '"3s"' }, brokenFile: false, readyMs: 180_000 });
    assert.match(started.log(), /demo: environment up in/, 'the demo environment started');
    return started;
  },
  launch: { viewport: { width: 1100, height: 720 } },
  cleanup: async () => {
    if (passed === steps.length) await writeTour();
  },
  ready: (s) => ({ nova, page } = s),
});
/** A step of the journey; the tour is written only when every one passed. */
const step = (name, body) => {
  steps.push(name);
  sessionStep(name, async (t) => {
    await body(t);
    passed += 1;
  });
};

/** Saves the page as the tour's next picture, with the words the tour shows under it. */
async function shot(slug, title, caption) {
  const file = `tour/${String(shots.length + 1).padStart(2, '0')}-${slug}.png`;
  await mkdir(path.join(tourRoot, 'tour'), { recursive: true });
  await page.screenshot({ path: path.join(tourRoot, file), type: 'png' });
  shots.push({ file, title, caption });
}

step('signs in as a member of the Storefront team', async () => {
  await page.goto(`${nova.base}/`);
  await page.getByRole('link', { name: 'Sign in' }).click();
  await page.getByLabel('Find a user').fill('nina');
  await page.getByRole('button', { name: 'Find' }).click();
  await page.getByRole('button', { name: 'Sign in as Nina Patel' }).waitFor();
  await shot('sign-in', 'Sign in', 'The demo signs you in as any person in the example catalog, without a password. Nina Patel is on the Storefront team, which owns Storefront Web.');
  await page.getByRole('button', { name: 'Sign in as Nina Patel' }).click();
  await page.getByText('Signed in as').waitFor();
});

step('opens the Storefront Web component', async () => {
  await page.getByLabel('Search the catalog').fill('storefront web');
  await page.keyboard.press('Enter');
  await page.locator('table.entities').getByRole('link', { name: 'Storefront Web' }).click();
  await page.getByRole('heading', { level: 1, name: 'Storefront Web' }).waitFor();
  await shot('component', 'A component', 'Its page says who owns it, where its source is, and what it provides and consumes; the tabs hold its images and builds.');
});

step('sees its images in the demo registry', async () => {
  await page.getByRole('link', { name: 'Images', exact: true }).click();
  const images = page.locator('table.images');
  await reloadUntil(page, images.getByText('v1.2.0', { exact: true }), 60_000);
  for (const tag of ['v1.0.0', 'v1.1.0']) await images.getByText(tag, { exact: true }).waitFor();
  const index = images.locator('tr', { has: page.getByText('v1.2.0', { exact: true }) });
  const platforms = await index.innerText();
  assert.ok(platforms.includes('linux/amd64') && platforms.includes('linux/arm64'), `v1.2.0 is a multi-platform index: ${platforms}`);
  await shot('images', 'Its images', 'The Images tab reads the registry: tags, digest and pull reference, push time, size, platforms (v1.2.0 is a multi-platform index), and the git revision each image was built from.');
});

step('opens the scan findings of an image', async () => {
  const images = page.locator('table.images');
  const scanned = images.locator('tr', { has: page.getByText('v1.1.0', { exact: true }) });
  assert.match(await scanned.innerText(), /critical 1 · high 1 · medium 1/);
  await scanned.getByRole('link', { name: 'findings' }).click();
  const findings = page.locator('#findings');
  await findings.getByText('CVE-2024-45337').waitFor();
  assert.match(await findings.innerText(), /critical[\s\S]*golang\.org\/x\/crypto[\s\S]*0\.31\.0/);
  await shot('findings', 'Scan findings', 'An image\'s scan report (a SARIF report attached to it in the registry, the way scanners publish results; the demo\'s is sample data): each finding with its package, installed and fixed version, most severe first.');
});

step('asks for a build of a new image', async () => {
  await page.getByRole('link', { name: 'Builds', exact: true }).click();
  await page.getByLabel('Dockerfile').fill('docker/Dockerfile');
  await page.getByLabel('Tag', { exact: true }).fill(NEW_TAG);
  await shot('build-form', 'Build image', 'Owners can build an image from any git ref: Nova clones the repository from the demo git server, builds with buildah and pushes to the demo registry.');
  await page.getByRole('button', { name: 'Build image' }).click();
  await page.waitForURL(/\/builds\/[^/]+$/);
});

step('follows the live log to success', async () => {
  await page.locator('#build-state', { hasText: 'succeeded' }).waitFor({ timeout: 120_000 });
  const log = await page.locator('#build-log').innerText();
  assert.match(log, /\[nova\] git clone/);
  assert.match(log, /\[nova\] pushed .*storefront\/storefront-web:v1\.3\.0@sha256:[0-9a-f]{64}/);
  assert.match(await page.locator('#build-digest').innerText(), /storefront\/storefront-web@sha256:[0-9a-f]{64}$/);
  await shot('build-log', 'The build, live', 'The build page follows the log as it is written (Server-Sent Events) and ends with the pushed digest.');
});

step('sees the new image on the Images tab', async () => {
  await page.goto(`${nova.base}/catalog/default/component/storefront-web/images`);
  const images = page.locator('table.images');
  await reloadUntil(page, images.getByText(NEW_TAG, { exact: true }), 60_000);
  const row = images.locator('tbody tr').first();
  const newest = await row.innerText();
  assert.match(newest, new RegExp(NEW_TAG.replace(/\./g, '\\.')), 'the new image is the newest');
  assert.match(newest, /\b[0-9a-f]{12}\b[\s\S]*git\.example\.com\/storefront\/storefront-web/, 'it carries the revision and source it was built from');
  await shot('new-image', 'The new image', `Nova refreshes the repository as soon as its build pushed, so ${NEW_TAG} is at the top of the Images tab.`);
});

step("sees that the build cloned with the team's own read-only credential", async () => {
  await page.goto(`${nova.base}/teams/storefront/credentials`);
  const row = page.locator('table.credentials tbody tr', { hasText: 'demo-git' });
  const text = await row.innerText();
  assert.match(text, /git\.example\.com\/storefront\/storefront-web/);
  assert.match(text, /read-only \(push refused\)/);
  assert.match(text, /\(build [0-9a-f-]+\)/, 'its last use names the build');
  await shot('credentials', "The team's credentials", "The demo's git server lets each team read its own repositories with a token of its own, registered as the team's credential: checked read-only, kept in the secret store, never shown again, and used only for the team's components. Its last use is the build.");
});

/** Signs out and signs in as `name` (development sign-in), back on the Deployments tab. */
async function signInAs(query, name) {
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.goto(`${nova.base}/sign-in?q=${query}`);
  await page.getByRole('button', { name: `Sign in as ${name}` }).click();
  await page.getByText('Signed in as').waitFor();
  await page.goto(`${nova.base}/catalog/default/component/storefront-web/deployments`);
  await page.getByRole('heading', { name: 'Environments' }).waitFor();
}

step('finds the new image in dev, promoted there by itself', async () => {
  await page.goto(`${nova.base}/catalog/default/component/storefront-web/deployments`);
  await reloadUntil(page, page.locator('tr[data-environment="dev"]', { hasText: NEW_TAG }), 60_000);
  await page.locator('table.artifacts').getByText(NEW_TAG, { exact: true }).waitFor();
  await page.locator('table.artifacts').getByText('v1.2.0', { exact: true }).waitFor();
  await shot('dev', 'In dev by itself', `Every image is an artifact, identified by its digest: the images the demo seeded, and each one Nova builds. Builds of main go to dev by themselves: Nova wrote ${NEW_TAG}'s digest into dev's overlay in the GitOps repository, which Argo CD or Flux would sync.`);
});

step('promotes it to staging', async () => {
  await promote(page, NEW_TAG, 'staging');
  await reloadUntil(page, page.locator('tr[data-environment="staging"]', { hasText: NEW_TAG }), 60_000);
});

step('asks for production, which needs two approvals', async () => {
  await promote(page, NEW_TAG, 'production');
  await pendingApproval(page, 'production', 2);
  await shot('production-asked', 'Production needs two approvals', 'The same digest that ran in staging is asked for production. Its gates: two approvals from Engineering (never the requester) and a wait after staging.');
});

step('two other engineers approve, and production runs the same digest', async () => {
  await signInAs('ana', 'Ana Lima');
  await page.locator('table.pending tbody tr', { hasText: 'production' }).getByRole('button', { name: 'Approve' }).click();
  await page.locator('table.pending td.approvals', { hasText: '1/2' }).waitFor();
  await signInAs('omar', 'Omar Haddad');
  await page.locator('table.pending tbody tr', { hasText: 'production' }).getByRole('button', { name: 'Approve' }).click();
  const production = page.locator('tr[data-environment="production"]', { hasText: NEW_TAG });
  await reloadUntil(page, production, 60_000);
  assert.match(await production.innerText(), /approved by user:default\/ana\.lima, user:default\/omar\.haddad/);
  // The GitOps repository's production overlay names the image by the digest the build pushed.
  const gitops = path.join(nova.dir, 'data', 'demo', 'git', 'platform', 'gitops.git');
  const git = (...args) => execFileSync('git', ['--git-dir', gitops, ...args], { encoding: 'utf8' });
  const overlay = git('show', 'main:apps/storefront-web/overlays/production/kustomization.yaml');
  const staging = git('show', 'main:apps/storefront-web/overlays/staging/kustomization.yaml');
  const digest = overlay.match(/digest: (sha256:[0-9a-f]{64})/)[1];
  assert.ok(staging.includes(digest), 'staging and production run the same bytes');
  assert.match(overlay, /newName: 127\.0\.0\.1:\d+\/storefront\/storefront-web/, 'named as a cluster pulls it');
  assert.match(git('log', '-1', '--format=%B', 'main'), /Approved-by: user:default\/ana\.lima, user:default\/omar\.haddad/);
  const sha = git('rev-parse', 'main').trim();
  assert.ok((await production.innerText()).includes(sha.slice(0, 12)), 'the tab shows the commit');
  await shot('production', 'In production', 'After the second approval Nova wrote production\'s overlay: the commit names the digest staging ran, the requester and both approvers. Every step is in the audit log.');
});

/** TOUR.md: the screenshots of this run with their captions. */
async function writeTour() {
  const lines = [
    '# A tour of the Nova demo',
    '',
    '<!-- Generated by tests/browser/journey.test.mjs (NOVA_UPDATE_TOUR=1 node --test journey.test.mjs',
    '     in tests/browser); edit the captions there, not here. -->',
    '',
    'What `cargo run -- serve --demo` shows you, step by step. The pictures are the screenshots of',
    "the end-to-end browser test, which walks this same path on the demo's real registry, git",
    'server and buildah on every CI run. docs/DEMO.md describes the demo environment.',
    '',
  ];
  shots.forEach((s, i) => {
    lines.push(`## ${i + 1}. ${s.title}`, '', s.caption, '', `![${s.title}](${s.file})`, '');
  });
  await writeFile(path.join(tourRoot, 'TOUR.md'), lines.join('\n'));
  // Pictures of an earlier tour that this one did not take.
  const taken = new Set(shots.map((s) => path.basename(s.file)));
  for (const file of await readdir(path.join(tourRoot, 'tour'))) {
    if (file.endsWith('.png') && !taken.has(file)) await rm(path.join(tourRoot, 'tour', file));
  }
}
