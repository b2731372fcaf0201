//! `[secrets]`: which store, where, and how Nova signs in to it (docs/CONFIG.md).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::SecretRef;

/// The secret store, chosen by `type`.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum SecretsConfig {
    /// The embedded encrypted file (the default).
    File(FileStoreConfig),
    /// HashiCorp Vault or OpenBao, KV version 2.
    Vault(VaultConfig),
    /// AWS Secrets Manager.
    AwsSecretsManager(AwsSecretsConfig),
}

impl Default for SecretsConfig {
    fn default() -> Self {
        SecretsConfig::File(FileStoreConfig::default())
    }
}

/// `type = "file"`: one encrypted file on local disk.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FileStoreConfig {
    /// The encrypted store.
    pub path: PathBuf,
    /// The 256-bit key, base64 on one line, mode 0600; created with the store when missing.
    /// Default: `secrets.key` beside `path`.
    pub key_file: Option<PathBuf>,
    /// Read the key (base64) from this environment variable instead of a file.
    pub key_env: Option<String>,
}

impl Default for FileStoreConfig {
    fn default() -> Self {
        Self { path: PathBuf::from("nova-data/secrets.enc"), key_file: None, key_env: None }
    }
}

impl FileStoreConfig {
    /// The key file in use: `key_file`, or `secrets.key` beside the store.
    pub fn key_path(&self) -> PathBuf {
        self.key_file.clone().unwrap_or_else(|| self.path.with_file_name("secrets.key"))
    }
}

/// `type = "vault"`: Vault or OpenBao KV version 2 over its HTTP API.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VaultConfig {
    /// `https://vault.internal:8200`.
    pub address: String,
    /// The KV v2 mount.
    #[serde(default = "default_mount")]
    pub mount: String,
    /// Every Nova secret lives under this path in the mount.
    #[serde(default = "default_prefix")]
    pub prefix: String,
    /// A Vault Enterprise / OpenBao namespace, sent as `X-Vault-Namespace`.
    #[serde(default)]
    pub namespace: Option<String>,
    /// How Nova signs in.
    pub auth: VaultAuthConfig,
    /// Per-team sign-in: a path under `teams/<team>/` is read and written with that team's
    /// own token or role, so that Vault's policies keep teams apart.
    #[serde(default)]
    pub team_auth: BTreeMap<String, VaultAuthConfig>,
    /// Longest time one request to Vault may take.
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
}

/// How Nova signs in to Vault.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "method", rename_all = "kebab-case", deny_unknown_fields)]
pub enum VaultAuthConfig {
    /// A token; renewed before it expires when renewable, and read again from its reference
    /// when renewal fails (so a file kept fresh by Vault Agent works).
    Token { token: SecretRef },
    /// AppRole: a role id and a secret id, signed in again whenever the token cannot be renewed.
    Approle {
        role_id: String,
        secret_id: SecretRef,
        /// Where the AppRole auth method is mounted.
        #[serde(default = "default_approle_mount")]
        mount: String,
    },
}

/// `type = "aws-secrets-manager"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AwsSecretsConfig {
    /// The region; the SDK's default chain (`AWS_REGION`, profile) when unset.
    pub region: Option<String>,
    /// Another endpoint (a VPC endpoint, or a local stand-in for tests).
    pub endpoint: Option<String>,
    /// Secret names are `<prefix>/<path>`.
    pub prefix: String,
    /// Static credentials by reference; the SDK's default chain (instance or task role,
    /// `AWS_*` variables, profile) when unset.
    pub access_key_id: Option<SecretRef>,
    pub secret_access_key: Option<SecretRef>,
    pub session_token: Option<SecretRef>,
    /// A customer-managed KMS key for new secrets; the account's default key when unset.
    pub kms_key_id: Option<String>,
    /// Longest time one call may take.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
}

impl Default for AwsSecretsConfig {
    fn default() -> Self {
        Self {
            region: None,
            endpoint: None,
            prefix: default_prefix(),
            access_key_id: None,
            secret_access_key: None,
            session_token: None,
            kms_key_id: None,
            timeout: default_timeout(),
        }
    }
}

fn default_mount() -> String {
    "secret".into()
}
fn default_prefix() -> String {
    "nova".into()
}
fn default_approle_mount() -> String {
    "approle".into()
}
fn default_timeout() -> Duration {
    Duration::from_secs(10)
}

impl SecretsConfig {
    /// Checks what serde cannot: the store's own credentials never come from the store, static
    /// AWS keys come in pairs, prefixes and mounts are plain path segments. `Err` holds the key
    /// and the rule.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let fail = |key: &str, message: &str| Err((format!("secrets.{key}"), message.to_owned()));
        let segments = |s: &str| !s.is_empty() && s.split('/').all(|p| !p.is_empty() && p != "." && p != ".." && p.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)));
        match self {
            SecretsConfig::File(c) => {
                if c.key_env.as_deref() == Some("") {
                    return fail("key_env", "must name an environment variable");
                }
            }
            SecretsConfig::Vault(c) => {
                match url::Url::parse(&c.address) {
                    Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
                    _ => return fail("address", "must be an http:// or https:// URL"),
                }
                if !segments(&c.mount) {
                    return fail("mount", "must be a path such as `secret`");
                }
                if !segments(&c.prefix) {
                    return fail("prefix", "must be a path such as `nova`");
                }
                let auths = std::iter::once(("auth".to_owned(), &c.auth)).chain(c.team_auth.iter().map(|(t, a)| (format!("team_auth.{t}"), a)));
                for (key, auth) in auths {
                    let credential = match auth {
                        VaultAuthConfig::Token { token } => (format!("{key}.token"), token),
                        VaultAuthConfig::Approle { secret_id, .. } => (format!("{key}.secret_id"), secret_id),
                    };
                    if credential.1.is_store() {
                        return fail(&credential.0, "the store's own credential cannot come from the store; use env or file");
                    }
                }
                if let Some(team) = c.team_auth.keys().find(|t| super::SecretPath::team(t, "x").is_err()) {
                    return fail(&format!("team_auth.{team}"), "is not a valid team name");
                }
            }
            SecretsConfig::AwsSecretsManager(c) => {
                if !segments(&c.prefix) {
                    return fail("prefix", "must be a path such as `nova`");
                }
                if c.access_key_id.is_some() != c.secret_access_key.is_some() {
                    return fail("access_key_id", "access_key_id and secret_access_key are set together or not at all");
                }
                for (key, r) in [("access_key_id", &c.access_key_id), ("secret_access_key", &c.secret_access_key), ("session_token", &c.session_token)] {
                    if r.as_ref().is_some_and(SecretRef::is_store) {
                        return fail(key, "the store's own credential cannot come from the store; use env or file");
                    }
                }
                if let Some(e) = &c.endpoint {
                    if url::Url::parse(e).is_err() {
                        return fail("endpoint", "must be a URL");
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    fn load(toml: &str) -> Result<Config, String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nova.toml");
        std::fs::write(&path, toml).unwrap();
        Config::load(Some(&path), std::iter::empty()).map_err(|e| e.to_string())
    }

    #[test]
    fn each_store_type_parses_with_defaults() {
        let c = load("").unwrap();
        assert!(matches!(c.secrets, super::SecretsConfig::File(ref f) if f.key_path().ends_with("nova-data/secrets.key")));
        let c = load("[secrets]\ntype = \"vault\"\naddress = \"http://127.0.0.1:8200\"\nauth = { method = \"approle\", role_id = \"r\", secret_id = { file = \"/run/s\" } }\n[secrets.team_auth.payments]\nmethod = \"token\"\ntoken = { env = \"T\" }\n").unwrap();
        let super::SecretsConfig::Vault(v) = c.secrets else { panic!("vault") };
        assert_eq!((v.mount.as_str(), v.prefix.as_str(), v.timeout.as_secs()), ("secret", "nova", 10));
        assert!(matches!(v.auth, super::VaultAuthConfig::Approle { ref mount, .. } if mount == "approle"));
        assert!(v.team_auth.contains_key("payments"));
        let c = load("[secrets]\ntype = \"aws-secrets-manager\"\nregion = \"eu-west-1\"\n").unwrap();
        assert!(matches!(c.secrets, super::SecretsConfig::AwsSecretsManager(ref a) if a.prefix == "nova"));
        let env = [("NOVA_SECRETS__TYPE".to_owned(), "file".to_owned()), ("NOVA_SECRETS__KEY_ENV".to_owned(), "K".to_owned())];
        let c = Config::load(None, env).unwrap();
        assert!(matches!(c.secrets, super::SecretsConfig::File(ref f) if f.key_env.as_deref() == Some("K")));
    }

    #[test]
    fn bad_store_settings_are_named_and_inline_secrets_refused() {
        let vault = |extra: &str| format!("[secrets]\ntype = \"vault\"\naddress = \"http://v:8200\"\n{extra}\n");
        for (toml, expected) in [
            ("[secrets]\ntype = \"vault\"\naddress = \"http://v\"\nauth = { method = \"token\", token = { env = \"T\" } }\npath = \"x\"".to_owned(), "path"),
            ("[secrets]\ntype = \"nope\"".to_owned(), "nope"),
            (vault("auth = { method = \"token\", token = \"hunter2\" }"), "exactly one of"),
            (vault("auth = { method = \"token\", token = { store = \"x\" } }"), "secrets.auth.token"),
            (vault("auth = { method = \"token\", token = { env = \"T\" } }\nprefix = \"../x\""), "secrets.prefix"),
            ("[secrets]\ntype = \"vault\"\naddress = \"ftp://v\"\nauth = { method = \"token\", token = { env = \"T\" } }".to_owned(), "secrets.address"),
            ("[secrets]\ntype = \"aws-secrets-manager\"\naccess_key_id = { env = \"A\" }".to_owned(), "secrets.access_key_id"),
        ] {
            let e = load(&toml).unwrap_err();
            assert!(e.contains(expected), "{toml}\n=> {e}");
            assert!(!e.contains("hunter2"), "{e}");
        }
    }
}
