//! `[environments.<name>]` and `[release]`: the ordered environments artifacts are promoted
//! through, their GitOps targets and gates (docs/RELEASE.md).

use std::collections::BTreeMap;
use std::time::Duration;

use nova_domain::EntityRef;
use serde::Deserialize;

use crate::secrets::SecretRef;

/// `[release]`: limits shared by every environment.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReleaseSettings {
    /// Tries of a GitOps push that another writer beat (fetch, re-apply, push again).
    pub push_attempts: u32,
    /// Longest one git command may take.
    #[serde(with = "humantime_serde")]
    pub git_timeout: Duration,
    /// How far an intake request's timestamp may be from Nova's clock.
    #[serde(with = "humantime_serde")]
    pub intake_window: Duration,
    /// The platform policy file the policy gate checks with; default: nova-policy's defaults.
    pub policy: Option<std::path::PathBuf>,
}

impl Default for ReleaseSettings {
    fn default() -> Self {
        Self { push_attempts: 5, git_timeout: Duration::from_secs(120), intake_window: Duration::from_secs(300), policy: None }
    }
}

/// One `[environments.<name>]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvironmentConfig {
    /// Position in the promotion path (lowest first), unique.
    pub order: i64,
    pub gitops: GitOpsTarget,
    #[serde(default)]
    pub gates: Gates,
    /// Promote Nova's succeeded builds of these refs here automatically.
    #[serde(default)]
    pub auto_promote: Option<AutoPromote>,
    /// The image repository this environment's images must live in, `<registry>/<path>` in a
    /// configured OCI registry (`{component}`, `{namespace}` filled in); promotion copies the
    /// artifact there first (release/copy.rs).
    #[serde(default)]
    pub repository: Option<String>,
    /// The user name sent with `push_credential`.
    #[serde(default)]
    pub push_username: Option<String>,
    /// The credential that may push to `repository`, by reference; default: the registry's own.
    #[serde(default)]
    pub push_credential: Option<SecretRef>,
    /// A check after the GitOps write (release/verify.rs).
    #[serde(default)]
    pub verify: Option<super::verify::VerifyConfig>,
}

/// Where and how an environment's image reference is written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GitOpsTarget {
    /// The clone URL (`https://`, `http://`, `file://`).
    pub repository: String,
    #[serde(default = "default_branch")]
    pub branch: String,
    /// The file edited; `{component}` and `{namespace}` are filled in.
    pub path: String,
    #[serde(default)]
    pub write: WriteKind,
    /// The kustomize `images` entry's `name`; default: the artifact's repository.
    #[serde(default)]
    pub image_name: Option<String>,
    /// With `write = "yaml-path"`: where the image reference is, e.g.
    /// `spec.template.spec.containers[name=app].image`.
    #[serde(default)]
    pub yaml_path: Option<String>,
    /// With `write = "helm-values"`: the mapping holding `repository`, `digest` (and `tag`);
    /// default `image`.
    #[serde(default)]
    pub values_key: Option<String>,
    /// A web page of a commit, `{commit}` replaced by its SHA (e.g.
    /// `https://git.example.com/platform/deploy/commit/{commit}`), linked on the Deployments tab.
    #[serde(default)]
    pub commit_url: Option<String>,
    /// HTTP basic user sent with the credential.
    #[serde(default = "default_username")]
    pub username: String,
    /// The write credential, by reference.
    #[serde(default)]
    pub credential: Option<SecretRef>,
}

fn default_branch() -> String {
    "main".into()
}

fn default_username() -> String {
    "git".into()
}

/// How the image reference is written into the file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WriteKind {
    /// The kustomize `images` entry: `newName` and `digest`.
    #[default]
    Kustomize,
    /// The string at `yaml_path` becomes `repository@digest`.
    YamlPath,
    /// A Helm values file: `<values_key>.repository` and `.digest` (and `.tag` if present).
    HelmValues,
}

/// An environment's gates; all enforced by the server.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Gates {
    /// Distinct approvals needed.
    pub approvals: u32,
    /// Groups whose members may approve; empty: the component's owners.
    pub approver_groups: Vec<String>,
    /// Soak time in the previous environment.
    #[serde(with = "humantime_serde")]
    pub wait: Option<Duration>,
    /// Allowed git refs of the artifact (glob patterns); empty allows any.
    pub refs: Vec<String>,
    /// Check the manifests of the target directory with nova-policy before the commit.
    pub policy: bool,
}

/// Automatic promotion of Nova's builds.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AutoPromote {
    /// Git refs (glob patterns) whose succeeded builds are promoted.
    pub refs: Vec<String>,
}

/// An environment with its name, checked.
#[derive(Debug, Clone)]
pub struct Environment {
    pub name: String,
    pub config: EnvironmentConfig,
    /// `approver_groups`, parsed.
    pub approver_groups: Vec<EntityRef>,
}

impl Environment {
    /// The file to edit for a component.
    pub fn path_for(&self, component: &EntityRef) -> String {
        self.config.gitops.path.replace("{component}", component.name()).replace("{namespace}", component.namespace())
    }

    /// What in the environment's file names the promotion's image.
    pub fn write_target(&self, p: &super::store::Promotion) -> Result<super::gitops::WriteTarget, String> {
        use super::gitops::WriteTarget;
        let g = &self.config.gitops;
        Ok(match g.write {
            WriteKind::YamlPath => {
                let shown = g.yaml_path.clone().unwrap_or_default();
                let path = super::yaml_path::YamlPath::parse(&shown).map_err(|e| format!("environments.{}.gitops.yaml_path: {e}", self.name))?;
                WriteTarget::YamlPath { path, shown }
            }
            WriteKind::HelmValues => {
                let key = super::helm_values::ValuesKey::parse(g.values_key.as_deref().unwrap_or("image")).map_err(|e| format!("environments.{}.gitops.values_key: {e}", self.name))?;
                WriteTarget::HelmValues { key, tag: p.tags.first().cloned() }
            }
            WriteKind::Kustomize => WriteTarget::Kustomize { image_name: g.image_name.clone().unwrap_or_else(|| p.repository.clone()) },
        })
    }

    /// The web page of a GitOps commit, when `gitops.commit_url` is set.
    pub fn commit_link(&self, commit: &str) -> Option<String> {
        self.config.gitops.commit_url.as_ref().map(|t| t.replace("{commit}", commit))
    }

    /// Whether `git_ref` passes the `refs` gate.
    pub fn allows_ref(&self, git_ref: Option<&str>) -> bool {
        matches_any(&self.config.gates.refs, git_ref, true)
    }

    /// Whether a build of `git_ref` is promoted here automatically.
    pub fn auto_promotes(&self, git_ref: Option<&str>) -> bool {
        self.config.auto_promote.as_ref().is_some_and(|a| matches_any(&a.refs, git_ref, false))
    }
}

fn matches_any(patterns: &[String], git_ref: Option<&str>, empty: bool) -> bool {
    if patterns.is_empty() {
        return empty;
    }
    let Some(r) = git_ref else { return false };
    let r = r.strip_prefix("refs/heads/").or_else(|| r.strip_prefix("refs/tags/")).unwrap_or(r);
    patterns.iter().any(|p| glob::Pattern::new(p).is_ok_and(|p| p.matches(r)))
}

/// The environments in promotion order.
#[derive(Debug, Clone, Default)]
pub struct Environments(Vec<Environment>);

impl Environments {
    /// Checks the `[environments]` tables; an error is `(key, message)`.
    pub fn from_config(raw: &BTreeMap<String, EnvironmentConfig>) -> Result<Self, (String, String)> {
        let mut list = Vec::new();
        for (name, config) in raw {
            let key = |k: &str| format!("environments.{name}{k}");
            if name.is_empty() || name.len() > 63 || !name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') || name.starts_with('-') {
                return Err((key(""), "an environment name is 1 to 63 of a-z, 0-9 and `-`, not starting with `-`".into()));
            }
            if let Some((other, _)) = raw.iter().find(|(n, c)| *n != name && c.order == config.order) {
                return Err((key(".order"), format!("{} is also the order of environments.{other}; each environment needs its own", config.order)));
            }
            let g = &config.gitops;
            let scheme_ok = ["https://", "http://", "file://"].iter().any(|s| g.repository.starts_with(s));
            if !scheme_ok || g.repository.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err((key(".gitops.repository"), "must be an https://, http:// or file:// clone URL without spaces".into()));
            }
            if url::Url::parse(&g.repository).is_ok_and(|u| u.password().is_some() || !u.username().is_empty()) {
                return Err((key(".gitops.repository"), "must not carry a user or password; use gitops.username and gitops.credential".into()));
            }
            if g.branch.is_empty() || g.branch.starts_with('-') || g.branch.contains("..") || g.branch.chars().any(|c| c.is_whitespace() || c.is_control() || "~^:?*[\\".contains(c)) {
                return Err((key(".gitops.branch"), "must be a valid git branch name".into()));
            }
            let path_ok = !g.path.is_empty() && !g.path.starts_with('/') && !g.path.split('/').any(|s| s.is_empty() || s == "." || s == "..") && !g.path.chars().any(char::is_control);
            if !path_ok {
                return Err((key(".gitops.path"), "must be a relative file path without empty, `.` or `..` segments".into()));
            }
            match (g.write, &g.yaml_path, &g.image_name) {
                (WriteKind::YamlPath, None, _) => return Err((key(".gitops.yaml_path"), "is required with write = \"yaml-path\"".into())),
                (WriteKind::YamlPath, Some(p), None) => {
                    super::yaml_path::YamlPath::parse(p).map_err(|e| (key(".gitops.yaml_path"), e))?;
                }
                (WriteKind::YamlPath | WriteKind::HelmValues, _, Some(_)) => return Err((key(".gitops.image_name"), "is for write = \"kustomize\" only".into())),
                (WriteKind::Kustomize | WriteKind::HelmValues, Some(_), _) => return Err((key(".gitops.yaml_path"), "is for write = \"yaml-path\" only".into())),
                (WriteKind::Kustomize | WriteKind::HelmValues, None, _) => {}
            }
            match (&g.values_key, g.write) {
                (Some(_), WriteKind::Kustomize | WriteKind::YamlPath) => return Err((key(".gitops.values_key"), "is for write = \"helm-values\" only".into())),
                (Some(k), WriteKind::HelmValues) => {
                    super::helm_values::ValuesKey::parse(k).map_err(|e| (key(".gitops.values_key"), e))?;
                }
                (None, _) => {}
            }
            if let Some(u) = &g.commit_url {
                let web = url::Url::parse(&u.replace("{commit}", "0")).is_ok_and(|p| matches!(p.scheme(), "https" | "http"));
                if !web || !u.contains("{commit}") {
                    return Err((key(".gitops.commit_url"), "must be an https:// or http:// URL containing {commit}, e.g. https://git.example.com/platform/deploy/commit/{commit}".into()));
                }
            }
            if g.username.is_empty() || g.username.contains(':') {
                return Err((key(".gitops.username"), "must be non-empty and contain no `:`".into()));
            }
            let mut approver_groups = Vec::new();
            for (i, group) in config.gates.approver_groups.iter().enumerate() {
                let parsed = EntityRef::parse_with(group, Some("group"), "default").ok().filter(|r| r.kind() == "group");
                approver_groups.push(parsed.ok_or_else(|| (key(&format!(".gates.approver_groups[{i}]")), "must be a group reference such as group:default/release-managers".into()))?);
            }
            let patterns = config.gates.refs.iter().enumerate().map(|(i, p)| (format!(".gates.refs[{i}]"), p));
            let auto = config.auto_promote.iter().flat_map(|a| a.refs.iter().enumerate().map(|(i, p)| (format!(".auto_promote.refs[{i}]"), p)));
            for (k, p) in patterns.chain(auto) {
                glob::Pattern::new(p).map_err(|e| (key(&k), format!("is not a valid glob pattern: {e}")))?;
            }
            if config.auto_promote.as_ref().is_some_and(|a| a.refs.is_empty()) {
                return Err((key(".auto_promote.refs"), "must name at least one ref pattern".into()));
            }
            list.push(Environment { name: name.clone(), config: config.clone(), approver_groups });
        }
        list.sort_by_key(|e| e.config.order);
        if let Some(e) = list.iter().skip(1).find(|e| e.config.auto_promote.is_some()) {
            return Err((format!("environments.{}.auto_promote", e.name), "only the first environment may promote automatically; later ones need the one before them".into()));
        }
        Ok(Self(list))
    }

    /// Every environment, in order.
    pub fn all(&self) -> &[Environment] {
        &self.0
    }

    /// The environment named `name`.
    pub fn get(&self, name: &str) -> Option<&Environment> {
        self.0.iter().find(|e| e.name == name)
    }

    /// The environment before `name` in the promotion path.
    pub fn previous(&self, name: &str) -> Option<&Environment> {
        let i = self.0.iter().position(|e| e.name == name)?;
        i.checked_sub(1).map(|p| &self.0[p])
    }

    /// The names, in order, for messages.
    pub fn names(&self) -> String {
        self.0.iter().map(|e| e.name.as_str()).collect::<Vec<_>>().join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Environments, (String, String)> {
        #[derive(Deserialize)]
        struct T {
            environments: BTreeMap<String, EnvironmentConfig>,
        }
        let t: T = toml::from_str(text).map_err(|e| ("toml".to_string(), e.to_string()))?;
        Environments::from_config(&t.environments)
    }

    const GITOPS: &str = "gitops = { repository = \"https://git.example.com/deploy.git\", path = \"apps/{component}/kustomization.yaml\" }";

    #[test]
    fn environments_are_ordered_and_checked() {
        let envs = parse(&format!("[environments.prod]\norder = 3\n{GITOPS}\n[environments.dev]\norder = 1\n{GITOPS}\nauto_promote = {{ refs = [\"main\"] }}\n")).unwrap();
        assert_eq!(envs.names(), "dev, prod");
        assert_eq!(envs.previous("prod").unwrap().name, "dev");
        assert!(envs.previous("dev").is_none());
        assert!(envs.get("dev").unwrap().auto_promotes(Some("refs/heads/main")));
        assert!(!envs.get("dev").unwrap().auto_promotes(Some("feature")));

        let e = parse(&format!("[environments.a]\norder = 1\n{GITOPS}\n[environments.b]\norder = 1\n{GITOPS}\n")).unwrap_err();
        assert!(e.0.ends_with(".order") && e.1.contains("also the order"), "{e:?}");
        let e = parse(&format!("[environments.a]\norder = 1\n{GITOPS}\ngates = {{ approver_groups = [\"user:bob\"] }}\n")).unwrap_err();
        assert_eq!(e.0, "environments.a.gates.approver_groups[0]");
        let e = parse("[environments.a]\norder = 1\ngitops = { repository = \"ssh://x\", path = \"a.yaml\" }\n").unwrap_err();
        assert_eq!(e.0, "environments.a.gitops.repository");
        let e = parse("[environments.a]\norder = 1\ngitops = { repository = \"https://h/r.git\", path = \"a.yaml\", write = \"yaml-path\" }\n").unwrap_err();
        assert_eq!(e.0, "environments.a.gitops.yaml_path");
        let e = parse("[environments.a]\norder = 1\ngitops = { repository = \"https://h/r.git\", path = \"a.yaml\", write = \"yaml-path\", yaml_path = \"a[\" }\n").unwrap_err();
        assert_eq!(e.0, "environments.a.gitops.yaml_path");
        assert!(parse("[environments.a]\norder = 1\ngitops = { repository = \"https://h/r.git\", path = \"a.yaml\", write = \"yaml-path\", yaml_path = \"spec.containers[name=app].image\" }\n").is_ok());
        assert!(parse("[environments.a]\norder = 1\ngitops = { repository = \"https://h/r.git\", path = \"values.yaml\", write = \"helm-values\", values_key = \"app.image\" }\n").is_ok());
        let with_url = parse("[environments.a]\norder = 1\ngitops = { repository = \"https://h/r.git\", path = \"a.yaml\", commit_url = \"https://h/r/commit/{commit}\" }\n").unwrap();
        assert_eq!(with_url.get("a").unwrap().commit_link("abc").as_deref(), Some("https://h/r/commit/abc"));
        for bad in ["https://h/r/commit/", "javascript:alert(1)//{commit}"] {
            let e = parse(&format!("[environments.a]\norder = 1\ngitops = {{ repository = \"https://h/r.git\", path = \"a.yaml\", commit_url = \"{bad}\" }}\n")).unwrap_err();
            assert_eq!(e.0, "environments.a.gitops.commit_url", "{bad}");
        }
        let e = parse("[environments.a]\norder = 1\ngitops = { repository = \"https://h/r.git\", path = \"values.yaml\", write = \"helm-values\", values_key = \"app..image\" }\n").unwrap_err();
        assert_eq!(e.0, "environments.a.gitops.values_key");
        let e = parse("[environments.a]\norder = 1\ngitops = { repository = \"https://h/r.git\", path = \"k.yaml\", values_key = \"image\" }\n").unwrap_err();
        assert!(e.0 == "environments.a.gitops.values_key" && e.1.contains("helm-values"), "{e:?}");
        let e = parse("[environments.a]\norder = 1\ngitops = { repository = \"https://h/r.git\", path = \"../a.yaml\" }\n").unwrap_err();
        assert_eq!(e.0, "environments.a.gitops.path");
        let e = parse(&format!("[environments.a]\norder = 1\n{GITOPS}\n[environments.b]\norder = 2\n{GITOPS}\nauto_promote = {{ refs = [\"main\"] }}\n")).unwrap_err();
        assert_eq!(e.0, "environments.b.auto_promote");
        // Through the configuration loader: the key is named, an inline secret never echoed.
        let mut f = tempfile::NamedTempFile::new().unwrap();
        std::io::Write::write_all(&mut f, b"[environments.a]\norder = 1\ngitops = { repository = \"https://h/r.git\", path = \"a.yaml\", credential = \"hunter2\" }\n").unwrap();
        let e = crate::config::Config::load(Some(f.path()), std::iter::empty()).unwrap_err().to_string();
        assert!(e.contains("environments.a.gitops.credential") && !e.contains("hunter2"), "{e}");
        let mut f = tempfile::NamedTempFile::new().unwrap();
        std::io::Write::write_all(&mut f, format!("[environments.a]\norder = 1\n{GITOPS}\ngates = {{ refs = [\"[\"] }}\n").as_bytes()).unwrap();
        let e = crate::config::Config::load(Some(f.path()), std::iter::empty()).unwrap_err().to_string();
        assert!(e.contains("environments.a.gates.refs[0]") && e.contains("glob"), "{e}");
    }
}
