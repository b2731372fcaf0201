//! Seeding the demo environment from `examples/repos/seed.toml`: a bare git repository per
//! example service (one commit of its directory), a GitOps repository (kustomize base and
//! overlays per environment) and a few images per service, built with buildah (vfs storage,
//! chroot isolation, `FROM scratch`) and pushed to the demo registry — multi-platform tags as
//! an image index. Each step is skipped when its result is already there, so a second start
//! seeds nothing.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::Deserialize;

use super::{GIT_URL_PREFIX, Seeded, progress};
use crate::registry::oci::manifest::{MANIFEST_ACCEPT, OCI_INDEX, OCI_MANIFEST};
use crate::registry::oci::scan::SARIF;

/// The GitOps repository's path on the demo git server.
pub const GITOPS_REPOSITORY: &str = "platform/gitops.git";
/// The environments of the GitOps repository, in promotion order.
pub const ENVIRONMENTS: [&str; 3] = ["dev", "staging", "production"];
/// Commits made by the demo carry this date, so every fresh demo has the same commit ids.
const COMMIT_DATE: &str = "2026-01-05T09:00:00Z";

/// `examples/repos/seed.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedPlan {
    #[serde(rename = "repository")]
    pub repositories: Vec<ExampleRepository>,
}

/// One example service repository and the images seeded from it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExampleRepository {
    /// Its directory under `examples/repos/`.
    pub dir: String,
    /// The catalog component it is the source of.
    pub component: String,
    /// Its path on the git server, e.g. `storefront/storefront-web.git`; the catalog's
    /// `nova.dev/git-repository` is `https://git.example.com/<git>`.
    pub git: String,
    /// The registry repository its images go to (`nova.dev/image-repository` is `demo/<image>`).
    pub image: String,
    /// The Dockerfile, relative to the repository; its directory is the build context.
    pub dockerfile: String,
    /// Images seeded, oldest first.
    pub images: Vec<SeedImage>,
}

impl ExampleRepository {
    /// The team that owns it: the first segment of its `git` path.
    pub fn team(&self) -> &str {
        self.git.split('/').next().unwrap_or_default()
    }
}

/// One seeded image.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedImage {
    /// The full tag (tag prefix included).
    pub tag: String,
    /// Platforms other than the builder's own, e.g. `["linux/amd64", "linux/arm64"]`: pushed
    /// as an image index.
    #[serde(default)]
    pub platforms: Vec<String>,
    /// A SARIF report under `examples/repos/` attached to the image as an OCI referrer.
    #[serde(default)]
    pub scan: Option<String>,
}

impl SeedPlan {
    /// Reads and checks `<examples>/seed.toml`.
    pub fn load(examples: &Path) -> anyhow::Result<Self> {
        let path = examples.join("seed.toml");
        let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {} (run from the repository root)", path.display()))?;
        let plan: SeedPlan = toml::from_str(&text).with_context(|| format!("{}", path.display()))?;
        for (i, r) in plan.repositories.iter().enumerate() {
            let ok = |s: &str| !s.is_empty() && !s.starts_with(['-', '/']) && !s.split('/').any(|c| c.is_empty() || c == "." || c == "..");
            if !ok(&r.dir) || !ok(&r.git) || !ok(&r.image) || !ok(&r.dockerfile) || r.images.is_empty() {
                bail!("{}: repository[{i}]: dir, git, image and dockerfile must be relative paths without '..', with at least one image", path.display());
            }
            if !examples.join(&r.dir).join(&r.dockerfile).is_file() {
                bail!("{}: repository[{i}]: {}/{} is not a file", path.display(), r.dir, r.dockerfile);
            }
            for scan in r.images.iter().filter_map(|i| i.scan.as_deref()) {
                if !ok(scan) || !examples.join(scan).is_file() {
                    bail!("{}: repository[{i}]: scan {scan} is not a file under {}", path.display(), examples.display());
                }
            }
        }
        Ok(plan)
    }

    /// The teams that own example repositories: the first segment of each repository's `git`
    /// path (`storefront/storefront-web.git` belongs to `storefront`).
    pub fn teams(&self) -> std::collections::BTreeSet<String> {
        self.repositories.iter().map(|r| r.team().to_string()).collect()
    }

    /// The catalog URLs (`nova.dev/git-repository`) of `team`'s repositories.
    pub fn repository_urls(&self, team: &str) -> Vec<String> {
        self.repositories.iter().filter(|r| r.team() == team).map(|r| format!("{}{}", super::GIT_URL_PREFIX, r.git)).collect()
    }

    /// How many images the plan pushes.
    pub fn image_count(&self) -> usize {
        self.repositories.iter().map(|r| r.images.len()).sum()
    }
}

/// Seeds the git server's repositories under `<dir>/git` and the registry at `registry_host`.
pub async fn seed(plan: &SeedPlan, examples: &Path, dir: &Path, git_base: &str, registry_host: &str) -> anyhow::Result<Seeded> {
    let git_root = dir.join("git");
    let mut seeded = Seeded::default();
    let mut commits = Vec::new();
    for r in &plan.repositories {
        let bare = git_root.join(&r.git);
        if !has_commit(&bare).await {
            progress(&format!("creating the git repository {git_base}{}", r.git));
            commit_tree(&bare, &examples.join(&r.dir), &format!("{}: the example service", r.component)).await?;
            seeded.repositories += 1;
        }
        commits.push(rev_parse(&bare).await?);
    }
    let gitops = git_root.join(GITOPS_REPOSITORY);
    if !has_commit(&gitops).await {
        progress(&format!("creating the GitOps repository {} ({})", gitops.display(), ENVIRONMENTS.join(", ")));
        let tree = tempfile::tempdir().context("cannot create a temporary directory")?;
        write_gitops(tree.path(), plan, registry_host)?;
        commit_tree(&gitops, tree.path(), "Kustomize base and overlays for dev, staging and production").await?;
        seeded.repositories += 1;
    }

    let client = reqwest::Client::builder().timeout(std::time::Duration::from_secs(10)).build()?;
    let builder = Buildah { root: dir.join("buildah") };
    let total = plan.image_count();
    let mut n = 0;
    for (r, commit) in plan.repositories.iter().zip(&commits) {
        let registry = Registry { client: &client, host: registry_host, repository: &r.image };
        for image in &r.images {
            n += 1;
            let reference = format!("{registry_host}/{}:{}", r.image, image.tag);
            if registry.has(&image.tag).await? {
                continue;
            }
            let platforms = if image.platforms.is_empty() { String::new() } else { format!(" ({})", image.platforms.join(", ")) };
            progress(&format!("[{n}/{total}] building and pushing {reference}{platforms}"));
            builder.build_and_push(&examples.join(&r.dir), r, image, commit, &reference).await?;
            seeded.images += 1;
        }
        for image in &r.images {
            if let Some(scan) = &image.scan {
                if registry.attach_report(&image.tag, &examples.join(scan)).await? {
                    progress(&format!("attached the scan report {scan} to {registry_host}/{}:{}", r.image, image.tag));
                }
            }
        }
    }
    if seeded == Seeded::default() {
        progress(&format!("{} repositories and {total} images already seeded", plan.repositories.len() + 1));
    }
    Ok(seeded)
}

/// The seeded images as release artifacts, so that a component's Deployments tab has images to
/// promote before anyone builds: each by the digest the registry answers for its tag, with
/// the commit it was built from. They name no git ref, so auto-promotion leaves them alone.
pub async fn artifacts(plan: &SeedPlan, dir: &Path, registry_host: &str) -> anyhow::Result<Vec<crate::release::artifacts::NewArtifact>> {
    let client = reqwest::Client::builder().timeout(std::time::Duration::from_secs(10)).build()?;
    let mut out = Vec::new();
    for r in &plan.repositories {
        let commit = rev_parse(&dir.join("git").join(&r.git)).await?;
        let registry = Registry { client: &client, host: registry_host, repository: &r.image };
        for image in &r.images {
            let digest = registry.digest(&image.tag).await?;
            out.push(crate::release::artifacts::NewArtifact {
                component_ref: format!("component:default/{}", r.component),
                repository: logical(r),
                digest,
                tags: vec![image.tag.clone()],
                git_ref: None,
                git_revision: Some(commit.clone()),
                build_id: None,
                source: "demo",
            });
        }
    }
    Ok(out)
}

/// The GitOps repository: per example service, `apps/<component>/base/` with its Deployment and
/// `apps/<component>/overlays/<environment>/kustomization.yaml` naming its image in the demo
/// registry — the newest tag in dev, the one before in staging, the oldest in production.
fn write_gitops(root: &Path, plan: &SeedPlan, registry_host: &str) -> anyhow::Result<()> {
    let write = |rel: &str, text: String| -> anyhow::Result<()> {
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().expect("a file has a parent"))?;
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))
    };
    write(
        "README.md",
        format!(
            "# GitOps repository of the Nova demo\n\nKustomize, per service: `apps/<service>/base/` has its Deployment, and\n`apps/<service>/overlays/<environment>/kustomization.yaml` sets the image each environment runs\n({}). Nova writes promotions into the overlays' `images` entries.\n",
            ENVIRONMENTS.join(" → ")
        ),
    )?;
    for r in &plan.repositories {
        let app = format!("apps/{}", r.component);
        write(&format!("{app}/base/kustomization.yaml"), "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - deployment.yaml\n".into())?;
        write(
            &format!("{app}/base/deployment.yaml"),
            format!(
                "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {c}\n  labels:\n    app.kubernetes.io/name: {c}\nspec:\n  replicas: 1\n  selector:\n    matchLabels:\n      app.kubernetes.io/name: {c}\n  template:\n    metadata:\n      labels:\n        app.kubernetes.io/name: {c}\n    spec:\n      containers:\n        - name: app\n          image: {image}\n",
                c = r.component,
                image = logical(r)
            ),
        )?;
        for (i, env) in ENVIRONMENTS.iter().enumerate() {
            // dev runs the newest image, each later environment one older (never before the first).
            let tag = &r.images[r.images.len().saturating_sub(1 + i)].tag;
            write(
                &format!("{app}/overlays/{env}/kustomization.yaml"),
                format!(
                    "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nnamespace: {env}\nresources:\n  - ../../base\nimages:\n  - name: {name}\n    newName: {registry_host}/{image}\n    newTag: {tag}\n",
                    name = logical(r),
                    image = r.image
                ),
            )?;
        }
    }
    Ok(())
}

/// The image as the catalog names it (`demo/storefront/storefront-web`): the Deployment's image
/// and the `name` of its kustomize `images` entries, which promotions write to.
fn logical(r: &ExampleRepository) -> String {
    format!("{}/{}", super::REGISTRY_NAME, r.image)
}

/// Whether the bare repository `bare` has a commit on `main`.
async fn has_commit(bare: &Path) -> bool {
    bare.is_dir() && git(bare).args(["rev-parse", "--verify", "--quiet", "refs/heads/main"]).output().await.is_ok_and(|o| o.status.success())
}

async fn rev_parse(bare: &Path) -> anyhow::Result<String> {
    let out = run(git(bare).args(["rev-parse", "refs/heads/main"]), "git rev-parse").await?;
    Ok(String::from_utf8_lossy(&out).trim().to_string())
}

/// Makes `bare` (a new bare repository on `main`) with one commit holding the files of `tree`.
async fn commit_tree(bare: &Path, tree: &Path, message: &str) -> anyhow::Result<()> {
    if bare.exists() {
        std::fs::remove_dir_all(bare).with_context(|| format!("cannot remove the incomplete {}", bare.display()))?;
    }
    std::fs::create_dir_all(bare).with_context(|| format!("cannot create {}", bare.display()))?;
    run(crate::process::command("git").args(["init", "--quiet", "--bare", "--initial-branch=main"]).arg(bare), "git init").await?;
    let scratch = tempfile::tempdir().context("cannot create a temporary directory for the git index")?;
    let index = scratch.path().join("index");
    let with_tree = |c: &mut crate::process::Command| {
        c.arg("--work-tree").arg(tree).env("GIT_INDEX_FILE", &index);
    };
    let mut add = git(bare);
    with_tree(&mut add);
    run(add.args(["add", "--all", "."]), "git add").await?;
    let mut commit = git(bare);
    with_tree(&mut commit);
    commit
        .args(["-c", "user.name=Nova demo", "-c", "user.email=demo@nova.invalid", "commit", "--quiet", "-m", message])
        .env("GIT_AUTHOR_DATE", COMMIT_DATE)
        .env("GIT_COMMITTER_DATE", COMMIT_DATE);
    run(&mut commit, "git commit").await?;
    Ok(())
}

/// `git --git-dir <bare>`, away from any repository around the working directory.
fn git(bare: &Path) -> crate::process::Command {
    let mut c = crate::process::command("git");
    c.arg("--git-dir").arg(bare).env("GIT_CONFIG_NOSYSTEM", "1").env("GIT_TERMINAL_PROMPT", "0");
    c
}

/// Runs `cmd`, answering its standard output, or fails with its standard error.
async fn run(cmd: &mut crate::process::Command, what: &str) -> anyhow::Result<Vec<u8>> {
    cmd.stdin(std::process::Stdio::null());
    let out = cmd.output().await.with_context(|| format!("cannot run {what}"))?;
    if !out.status.success() {
        bail!("{what} failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(out.stdout)
}

/// One repository of the demo registry, spoken to over the Distribution API.
struct Registry<'a> {
    client: &'a reqwest::Client,
    host: &'a str,
    repository: &'a str,
}

impl Registry<'_> {
    fn url(&self, rest: &str) -> String {
        format!("http://{}/v2/{}/{rest}", self.host, self.repository)
    }

    /// Whether the repository has a manifest under `reference` (a tag).
    async fn has(&self, reference: &str) -> anyhow::Result<bool> {
        let response = self
            .client
            .head(self.url(&format!("manifests/{reference}")))
            .header("accept", MANIFEST_ACCEPT)
            .send()
            .await
            .with_context(|| format!("cannot ask the demo registry at {} for {}:{reference}", self.host, self.repository))?;
        Ok(response.status().is_success())
    }

    /// The digest of the manifest tagged `tag`.
    async fn digest(&self, tag: &str) -> anyhow::Result<nova_domain::Digest> {
        let response = self.client.head(self.url(&format!("manifests/{tag}"))).header("accept", MANIFEST_ACCEPT).send().await;
        let response = response.with_context(|| format!("cannot ask the demo registry at {} for {}:{tag}", self.host, self.repository))?;
        let digest = response.headers().get("docker-content-digest").and_then(|v| v.to_str().ok()).and_then(|d| nova_domain::Digest::parse(d).ok());
        digest.with_context(|| format!("the demo registry answered {} and no digest for {}:{tag}", response.status(), self.repository))
    }

    /// Attaches the SARIF report at `path` to the image `tag` as an OCI referrer, listed in the
    /// image's fallback tag (the demo registry has no referrers API). Answers false when the
    /// image has referrers already.
    async fn attach_report(&self, tag: &str, path: &Path) -> anyhow::Result<bool> {
        let image = self.client.get(self.url(&format!("manifests/{tag}"))).header("accept", MANIFEST_ACCEPT).send().await?.error_for_status()?;
        let media_type = image.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or(OCI_MANIFEST).to_string();
        let body = image.bytes().await?;
        let digest = sha256(&body);
        let fallback = digest.replacen(':', "-", 1);
        if self.has(&fallback).await? {
            return Ok(false);
        }
        let report = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        let created = time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339)?;
        let manifest = serde_json::json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": SARIF,
            "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": self.push_blob(b"{}").await?, "size": 2},
            "layers": [{"mediaType": SARIF, "digest": self.push_blob(&report).await?, "size": report.len()}],
            "subject": {"mediaType": media_type, "digest": digest, "size": body.len()},
            "annotations": {"org.opencontainers.image.created": created},
        });
        let manifest = serde_json::to_vec(&manifest)?;
        let manifest_digest = sha256(&manifest);
        self.put_manifest(&manifest_digest, OCI_MANIFEST, manifest.clone()).await?;
        let index = serde_json::json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
            {"mediaType": OCI_MANIFEST, "digest": manifest_digest, "size": manifest.len(), "artifactType": SARIF, "annotations": {"org.opencontainers.image.created": created}}]});
        self.put_manifest(&fallback, OCI_INDEX, serde_json::to_vec(&index)?).await?;
        Ok(true)
    }

    /// A monolithic blob upload; answers the blob's digest.
    async fn push_blob(&self, data: &[u8]) -> anyhow::Result<String> {
        let digest = sha256(data);
        let start = self.client.post(self.url("blobs/uploads/")).send().await?.error_for_status()?;
        let location = start.headers().get("location").and_then(|v| v.to_str().ok()).context("the registry started an upload without a Location")?;
        let mut url = reqwest::Url::parse(&format!("http://{}/", self.host))?.join(location)?;
        url.query_pairs_mut().append_pair("digest", &digest);
        self.client.put(url).header("content-type", "application/octet-stream").body(data.to_vec()).send().await?.error_for_status()?;
        Ok(digest)
    }

    async fn put_manifest(&self, reference: &str, media_type: &str, body: Vec<u8>) -> anyhow::Result<()> {
        self.client.put(self.url(&format!("manifests/{reference}"))).header("content-type", media_type).body(body).send().await?.error_for_status()?;
        Ok(())
    }
}

fn sha256(data: &[u8]) -> String {
    use sha2::Digest as _;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(data)))
}

/// buildah with the demo's own vfs storage.
struct Buildah {
    root: PathBuf,
}

impl Buildah {
    fn command(&self) -> crate::process::Command {
        let mut c = crate::process::command("buildah");
        c.arg("--root").arg(self.root.join("root")).arg("--runroot").arg(self.root.join("run")).args(["--storage-driver", "vfs"]);
        c.env("BUILDAH_ISOLATION", "chroot");
        c
    }

    /// Builds one image of `repo` (checked out at `src`, at `commit`) and pushes it as
    /// `reference`: an image index when the image names platforms.
    async fn build_and_push(&self, src: &Path, repo: &ExampleRepository, image: &SeedImage, commit: &str, reference: &str) -> anyhow::Result<()> {
        let dockerfile = src.join(&repo.dockerfile);
        let context = dockerfile.parent().expect("a Dockerfile has a directory").to_path_buf();
        let build = || {
            let mut b = self.command();
            b.args(["build", "--quiet", "--isolation", "chroot", "--pull=never", "--layers=false"])
                .arg("--build-arg")
                .arg(format!("VERSION={}", image.tag))
                .arg("--label")
                .arg(format!("org.opencontainers.image.revision={commit}"))
                .arg("--label")
                .arg(format!("org.opencontainers.image.source={GIT_URL_PREFIX}{}", repo.git.trim_end_matches(".git")))
                .arg("-f")
                .arg(&dockerfile);
            b
        };
        if image.platforms.is_empty() {
            let mut b = build();
            b.arg("-t").arg(reference).arg("--").arg(&context);
            run(&mut b, "buildah build").await?;
            run(self.command().args(["push", "--quiet", "--tls-verify=false", "--", reference]).arg(format!("docker://{reference}")), "buildah push").await?;
            return Ok(());
        }
        // A local manifest list named after the reference; one left by an interrupted run goes
        // first. One build per platform, in the plan's order, so the index lists them so.
        let list = format!("nova-demo-seed/{}", reference.replace([':', '/'], "-"));
        let _ = self.command().args(["manifest", "rm", &list]).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).status().await;
        for platform in &image.platforms {
            let mut b = build();
            b.arg("--platform").arg(platform).arg("--manifest").arg(&list).arg("--").arg(&context);
            run(&mut b, &format!("buildah build ({platform})")).await?;
        }
        run(self.command().args(["manifest", "push", "--quiet", "--all", "--tls-verify=false", &list]).arg(format!("docker://{reference}")), "buildah manifest push").await?;
        let _ = run(self.command().args(["manifest", "rm", &list]), "buildah manifest rm").await;
        Ok(())
    }
}
