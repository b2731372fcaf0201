//! [`SecretRef`]: how a setting names a secret without containing it — the one type every
//! setting uses (`[auth]`, `[catalog]` credentials, registries, build backends, secret
//! stores, GitOps), with one parser and one error, [`SecretRefError`].
//!
//! ```toml
//! password = { env = "REGISTRY_PASSWORD" }          # an environment variable
//! password = { file = "/run/secrets/registry" }      # a file (surrounding whitespace is dropped)
//! password = { store = "registry/main" }             # the secret store, field "value"
//! password = { store = "registry/main", field = "password" }
//! ```

use std::fmt;
use std::path::PathBuf;

use nova_domain::Sensitive;
use serde::Deserialize;
use serde::de::{self, MapAccess, Visitor};

use super::{DEFAULT_FIELD, SecretPath, SecretStore};

/// A reference to a secret held elsewhere, resolved at run time to a [`Sensitive<String>`].
/// Its `Display` names the reference (`env REGISTRY_PASSWORD`), never a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretRef {
    /// An environment variable's value.
    Env(String),
    /// A file's content, without surrounding whitespace (a trailing newline above all).
    File(PathBuf),
    /// A field of a secret in the configured secret store.
    Store { path: SecretPath, field: String },
}

/// The TOML shape of a reference: exactly one of `env`, `file`, `store` (`field` only with
/// `store`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRef {
    env: Option<String>,
    file: Option<PathBuf>,
    store: Option<String>,
    field: Option<String>,
}

/// What a reference looks like, for errors.
const SHAPE: &str = "a secret reference is exactly one of { env = \"VAR\" }, { file = \"/path\" } or { store = \"path\" } (and never the secret itself)";

/// Reads a table into a reference. Anything else — an inline string above all — is refused
/// without quoting it, so a secret pasted into the file by mistake does not reach a message.
impl<'de> Deserialize<'de> for SecretRef {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct RefVisitor;
        impl<'de> Visitor<'de> for RefVisitor {
            type Value = SecretRef;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(SHAPE)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<SecretRef, A::Error> {
                let raw = RawRef::deserialize(de::value::MapAccessDeserializer::new(map))?;
                SecretRef::try_from(raw).map_err(de::Error::custom)
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<SecretRef, E> {
                Err(E::custom(format!("an inline value is refused: {SHAPE}")))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<SecretRef, E> {
                Err(E::custom(SHAPE))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<SecretRef, E> {
                Err(E::custom(SHAPE))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<SecretRef, E> {
                Err(E::custom(SHAPE))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<SecretRef, E> {
                Err(E::custom(SHAPE))
            }
        }
        d.deserialize_any(RefVisitor)
    }
}

impl TryFrom<RawRef> for SecretRef {
    type Error = String;
    fn try_from(raw: RawRef) -> Result<Self, String> {
        let r = match (raw.env, raw.file, raw.store) {
            (Some(var), None, None) if !var.is_empty() => SecretRef::Env(var),
            (None, Some(path), None) if !path.as_os_str().is_empty() => SecretRef::File(path),
            (None, None, Some(path)) => {
                let path = SecretPath::parse(&path).map_err(|e| e.to_string())?;
                return Ok(SecretRef::Store { path, field: raw.field.unwrap_or_else(|| DEFAULT_FIELD.to_owned()) });
            }
            _ => return Err(SHAPE.into()),
        };
        if raw.field.is_some() {
            return Err("`field` goes only with `store`".into());
        }
        Ok(r)
    }
}

impl fmt::Display for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretRef::Env(var) => write!(f, "env {var}"),
            SecretRef::File(path) => write!(f, "file {}", path.display()),
            SecretRef::Store { path, field } => write!(f, "store {path} field {field}"),
        }
    }
}

/// A reference could not be resolved. Names the setting and the reference, never a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("config: {key}: {reference}: {problem}")]
pub struct SecretRefError {
    /// The setting, e.g. `secrets.auth.token`.
    pub key: String,
    /// The reference, e.g. `env VAULT_TOKEN`.
    pub reference: String,
    /// What is wrong.
    pub problem: String,
}

impl SecretRef {
    /// Resolves an `env` or `file` reference; a `store` reference is refused (for the store's
    /// own credentials, which cannot come from the store). `key` names the setting in errors.
    pub fn resolve_local(&self, key: &str) -> Result<Sensitive<String>, SecretRefError> {
        self.resolve_local_with(key, |var| std::env::var_os(var))
    }

    /// [`SecretRef::resolve_local`] with the environment given, for tests.
    pub fn resolve_local_with(&self, key: &str, env: impl Fn(&str) -> Option<std::ffi::OsString>) -> Result<Sensitive<String>, SecretRefError> {
        let fail = |problem: &str| SecretRefError { key: key.to_owned(), reference: self.to_string(), problem: problem.to_owned() };
        let value = match self {
            SecretRef::Env(var) => env(var).ok_or_else(|| fail("the environment variable is not set"))?.into_string().map_err(|_| fail("the value is not UTF-8"))?,
            SecretRef::File(path) => {
                let bytes = std::fs::read(path).map_err(|e| fail(&format!("cannot read the file: {}", e.kind())))?;
                String::from_utf8(bytes).map_err(|_| fail("the file is not UTF-8 text"))?.trim().to_owned()
            }
            SecretRef::Store { .. } => return Err(fail("this setting cannot come from the secret store; use env or file")),
        };
        if value.is_empty() {
            return Err(fail("the value is empty"));
        }
        Ok(Sensitive::new(value))
    }

    /// Resolves any reference, reading `store` references from `store`.
    pub async fn resolve(&self, key: &str, store: &dyn SecretStore) -> Result<Sensitive<String>, SecretRefError> {
        let SecretRef::Store { path, field } = self else {
            return self.resolve_local(key);
        };
        let fail = |problem: String| SecretRefError { key: key.to_owned(), reference: self.to_string(), problem };
        let secret = store.get(path).await.map_err(|e| fail(e.to_string()))?;
        let value = secret.data.get(field).ok_or_else(|| fail(format!("the secret has no field `{field}`")))?;
        if value.expose().is_empty() {
            return Err(fail("the value is empty".into()));
        }
        Ok(value.clone())
    }

    /// Refuses a `store` reference for a setting that is read where the store is not at hand
    /// (`key` names it), so that configuration loading, not first use, says so.
    pub fn check_local(&self, key: &str) -> Result<(), SecretRefError> {
        match self {
            SecretRef::Store { .. } => Err(SecretRefError { key: key.to_owned(), reference: self.to_string(), problem: "this setting cannot come from the secret store; use env or file".into() }),
            _ => Ok(()),
        }
    }

    /// Whether this is a `store` reference.
    pub fn is_store(&self) -> bool {
        matches!(self, SecretRef::Store { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Holder {
        password: SecretRef,
    }

    /// Parses as `Config::load` does: TOML to a value, then the value to the type (so the
    /// message is serde's, without TOML's source excerpt).
    fn parse(text: &str) -> Result<SecretRef, String> {
        let value = toml::Value::Table(text.parse::<toml::Table>().unwrap());
        Holder::deserialize(value).map(|h| h.password).map_err(|e| e.to_string())
    }

    #[test]
    fn parses_each_form_and_refuses_inline_values() {
        assert_eq!(parse("password = { env = \"X\" }").unwrap(), SecretRef::Env("X".into()));
        assert_eq!(parse("password = { file = \"/run/s\" }").unwrap(), SecretRef::File("/run/s".into()));
        assert_eq!(
            parse("password = { store = \"a/b\", field = \"pw\" }").unwrap(),
            SecretRef::Store { path: SecretPath::parse("a/b").unwrap(), field: "pw".into() }
        );
        assert_eq!(parse("password = { store = \"a/b\" }").unwrap().to_string(), "store a/b field value");
        for bad in ["password = \"hunter2\"", "password = 1234", "password = { env = \"X\", file = \"y\" }", "password = { env = \"X\", field = \"y\" }", "password = {}", "password = { store = \"../x\" }", "password = { value = \"hunter2\" }"] {
            let e = parse(bad).unwrap_err();
            assert!(!e.contains("hunter2") && !e.contains("1234"), "{bad}: {e}");
        }
        assert!(parse("password = \"hunter2\"").unwrap_err().contains("inline value is refused"));
    }

    #[test]
    fn resolves_env_and_file_and_names_the_key_on_error() {
        let env = |v: &str| (v == "SET").then(|| std::ffi::OsString::from("hunter2"));
        assert_eq!(SecretRef::Env("SET".into()).resolve_local_with("a.b", env).unwrap().expose(), "hunter2");
        let e = SecretRef::Env("UNSET".into()).resolve_local_with("a.b", env).unwrap_err().to_string();
        assert_eq!(e, "config: a.b: env UNSET: the environment variable is not set");
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("s");
        std::fs::write(&f, "hunter2\r\n").unwrap();
        assert_eq!(SecretRef::File(f.clone()).resolve_local("k").unwrap().expose(), "hunter2");
        std::fs::write(&f, "\n").unwrap();
        assert!(SecretRef::File(f).resolve_local("k").unwrap_err().to_string().ends_with("the value is empty"));
        let e = SecretRef::File(dir.path().join("none")).resolve_local("k").unwrap_err().to_string();
        assert!(e.contains("cannot read the file: entity not found") || e.contains("cannot read the file: "), "{e}");
        let store = SecretRef::Store { path: SecretPath::parse("a").unwrap(), field: "value".into() };
        assert!(store.resolve_local("k").is_err());
    }
}
