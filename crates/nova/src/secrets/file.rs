//! The embedded secret store: every secret in one file, encrypted with XChaCha20-Poly1305
//! under a 256-bit key kept apart from it. For `--demo` and single machines; use Vault/OpenBao
//! or AWS Secrets Manager when several replicas share secrets or the key needs an HSM behind it.
//!
//! On disk the store is a small JSON envelope (format, key id, nonce, ciphertext); the
//! plaintext, paths included, exists only in memory. Every write re-encrypts the whole store
//! with a fresh random nonce into a temporary file, fsyncs it, renames it over the store and
//! fsyncs the directory, so a crash leaves the old store or the new one. An advisory lock on
//! `<store>.lock` serializes writers, across processes too.
//!
//! The key comes from `key_env` (base64) or `key_file` (base64, mode 0600, created with the
//! first secret). A store that holds data refuses to open without its key, or with another key
//! (told apart by the key id, a hash of the key), saying what to do.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use chacha20poly1305::aead::{Aead, Generate, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{FileStoreConfig, HealthReport, Precondition, SecretData, SecretError, SecretPath, SecretStore, Version, Versioned};

/// The envelope's format name; also authenticated with the ciphertext.
const FORMAT: &str = "nova-secrets-v1";
const KIND: &str = "file";

/// The file store.
pub struct FileStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    lock_path: PathBuf,
    key_path: PathBuf,
    /// Where the key comes from, for messages: `key file PATH` or `environment variable VAR`.
    key_origin: String,
    /// Whether the key may be created (a key file, not an environment variable).
    may_create_key: bool,
    key: Mutex<Option<Key>>,
}

/// A 256-bit key. Not `Debug`, not `Clone` outside this module.
#[derive(Clone)]
struct Key([u8; 32]);

impl Key {
    /// A short fingerprint that tells keys apart without revealing them.
    fn id(&self) -> String {
        let mut h = Sha256::new();
        h.update(b"nova-secrets-key-id\0");
        h.update(self.0);
        hex::encode(&h.finalize()[..8])
    }

    fn parse(text: &str) -> Option<Key> {
        let bytes = B64.decode(text.trim()).ok()?;
        Some(Key(bytes.try_into().ok()?))
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new_from_slice(&self.0).expect("32-byte key")
    }
}

/// The file as stored.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope {
    format: String,
    key_id: String,
    nonce: String,
    ciphertext: String,
}

/// The decrypted store.
#[derive(Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Plain {
    secrets: BTreeMap<String, Stored>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Stored {
    current: Entry,
    previous: Option<Entry>,
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    version: u64,
    updated_ms: i64,
    data: serde_json::Map<String, serde_json::Value>,
}

impl Entry {
    fn versioned(&self) -> Result<Versioned, SecretError> {
        Ok(Versioned { data: SecretData::from_json(serde_json::Value::Object(self.data.clone()))?, version: Version::new(self.version.to_string()) })
    }
}

fn io_unavailable(what: &str, path: &Path, e: std::io::Error) -> SecretError {
    SecretError::Unavailable(format!("{what} {}: {e}", path.display()))
}

impl FileStore {
    /// Opens the store: loads the key and, when the store file exists, checks that the key
    /// opens it. Refuses a store with data but no key or the wrong key.
    pub async fn open(config: &FileStoreConfig) -> Result<Self, SecretError> {
        let config = config.clone();
        let inner = tokio::task::spawn_blocking(move || Inner::open(&config)).await.map_err(|_| SecretError::Unavailable("the file store task failed".into()))??;
        Ok(Self { inner: Arc::new(inner) })
    }

    /// The store file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Runs `f` on a blocking thread.
    async fn blocking<T: Send + 'static>(&self, f: impl FnOnce(&Inner) -> Result<T, SecretError> + Send + 'static) -> Result<T, SecretError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || f(&inner)).await.map_err(|_| SecretError::Unavailable("the file store task failed".into()))?
    }
}

impl Inner {
    fn open(config: &FileStoreConfig) -> Result<Self, SecretError> {
        let key_path = config.key_path();
        let (key, key_origin, may_create_key) = match &config.key_env {
            Some(var) => {
                let origin = format!("environment variable {var}");
                let text = std::env::var(var).map_err(|_| SecretError::Invalid(format!("secrets.key_env: {origin} is not set; set it to the store's key (base64 of 32 bytes)")))?;
                let key = Key::parse(&text).ok_or_else(|| SecretError::Invalid(format!("secrets.key_env: {origin} is not a base64-encoded 32-byte key")))?;
                (Some(key), origin, false)
            }
            None => (read_key_file(&key_path)?, format!("key file {}", key_path.display()), true),
        };
        let lock_path = lock_path(&config.path);
        let inner = Inner { path: config.path.clone(), lock_path, key_path, key_origin, may_create_key, key: Mutex::new(key) };
        if inner.path.exists() {
            let _lock = inner.lock(false)?;
            inner.read()?;
        }
        Ok(inner)
    }

    /// Takes the store's advisory lock, shared for reads and exclusive for writes.
    fn lock(&self, exclusive: bool) -> Result<File, SecretError> {
        if let Some(dir) = self.lock_path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| io_unavailable("cannot create directory", dir, e))?;
        }
        let file = OpenOptions::new().create(true).truncate(false).write(true).mode(0o600).open(&self.lock_path).map_err(|e| io_unavailable("cannot open the lock file", &self.lock_path, e))?;
        let locked = if exclusive { file.lock() } else { file.lock_shared() };
        locked.map_err(|e| io_unavailable("cannot lock", &self.lock_path, e))?;
        Ok(file)
    }

    fn current_key(&self) -> Option<Key> {
        self.key.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Reads and decrypts the store; an absent file is an empty store. Call under the lock.
    fn read(&self) -> Result<Plain, SecretError> {
        let bytes = match std::fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Plain::default()),
            Err(e) => return Err(io_unavailable("cannot read the secret store", &self.path, e)),
        };
        let store = self.path.display();
        let envelope: Envelope = serde_json::from_slice(&bytes).map_err(|_| SecretError::Invalid(format!("{store} is not a Nova secret store file (or it is damaged); restore it from backup")))?;
        if envelope.format != FORMAT {
            return Err(SecretError::Invalid(format!("{store} has format `{}`, this Nova reads `{FORMAT}`", envelope.format)));
        }
        let key = match self.current_key() {
            Some(k) => Some(k),
            None => self.reload_key()?,
        };
        let Some(key) = key else {
            return Err(SecretError::Invalid(format!(
                "the secret store {store} holds secrets but its key is missing ({}); restore the key from backup — without it the secrets cannot be read. To start over with an empty store, move {store} away",
                self.key_origin
            )));
        };
        if key.id() != envelope.key_id {
            return Err(SecretError::Invalid(format!(
                "the secret store {store} was written with another key (key id {}, the {} has key id {}); configure the key the store was created with",
                envelope.key_id,
                self.key_origin,
                key.id()
            )));
        }
        let damaged = || SecretError::Invalid(format!("the secret store {store} cannot be decrypted with its key: the file is damaged; restore it from backup"));
        let nonce = B64.decode(&envelope.nonce).ok().and_then(|n| XNonce::try_from(n.as_slice()).ok()).ok_or_else(damaged)?;
        let ciphertext = B64.decode(&envelope.ciphertext).map_err(|_| damaged())?;
        let aad = aad(&envelope.key_id);
        let plain = key.cipher().decrypt(&nonce, Payload { msg: &ciphertext, aad: aad.as_bytes() }).map_err(|_| damaged())?;
        serde_json::from_slice(&plain).map_err(|_| damaged())
    }

    /// Encrypts and replaces the store atomically, creating the key first if needed. Call
    /// under the exclusive lock.
    fn write(&self, plain: &Plain) -> Result<(), SecretError> {
        let key = match self.current_key() {
            Some(k) => k,
            None => self.create_key()?,
        };
        let key_id = key.id();
        let nonce = XNonce::try_generate().map_err(|_| SecretError::Unavailable("the system random number generator failed".into()))?;
        let text = serde_json::to_vec(plain).map_err(|_| SecretError::Invalid("cannot encode the store".into()))?;
        let aad = aad(&key_id);
        let ciphertext = key.cipher().encrypt(&nonce, Payload { msg: &text, aad: aad.as_bytes() }).map_err(|_| SecretError::Invalid("cannot encrypt the store".into()))?;
        let envelope = Envelope { format: FORMAT.into(), key_id, nonce: B64.encode(nonce), ciphertext: B64.encode(ciphertext) };
        let bytes = serde_json::to_vec(&envelope).expect("the envelope serializes");
        write_atomically(&self.path, &bytes, 0o600)
    }

    /// Makes a new key and writes it to the key file (mode 0600), or takes the key another
    /// process wrote meanwhile. Call under the exclusive lock.
    fn create_key(&self) -> Result<Key, SecretError> {
        if !self.may_create_key {
            return Err(SecretError::Invalid(format!("no key in the {}", self.key_origin)));
        }
        let key = match read_key_file(&self.key_path)? {
            Some(k) => k,
            None => {
                let bytes = <[u8; 32]>::try_generate().map_err(|_| SecretError::Unavailable("the system random number generator failed".into()))?;
                let key = Key(bytes);
                write_atomically(&self.key_path, format!("{}\n", B64.encode(key.0)).as_bytes(), 0o600)?;
                tracing::warn!(key_file = %self.key_path.display(), store = %self.path.display(), "created a new key for the file secret store; back it up apart from the store");
                key
            }
        };
        *self.key.lock().unwrap_or_else(|e| e.into_inner()) = Some(key.clone());
        Ok(key)
    }

    /// The key file's key when it has appeared since the store was opened (another process
    /// wrote the first secret); remembered. Call under the lock.
    fn reload_key(&self) -> Result<Option<Key>, SecretError> {
        if !self.may_create_key {
            return Ok(None);
        }
        let key = read_key_file(&self.key_path)?;
        if let Some(k) = &key {
            *self.key.lock().unwrap_or_else(|e| e.into_inner()) = Some(k.clone());
        }
        Ok(key)
    }

    /// Reads, changes and writes the store under the exclusive lock.
    fn modify<T>(&self, f: impl FnOnce(&mut Plain) -> Result<T, SecretError>) -> Result<T, SecretError> {
        let _lock = self.lock(true)?;
        let mut plain = self.read()?;
        let out = f(&mut plain)?;
        self.write(&plain)?;
        Ok(out)
    }

    fn snapshot(&self) -> Result<Plain, SecretError> {
        let _lock = self.lock(false)?;
        self.read()
    }
}

/// The associated data authenticated with the ciphertext.
fn aad(key_id: &str) -> String {
    format!("{FORMAT}:{key_id}")
}

fn lock_path(store: &Path) -> PathBuf {
    let mut name = store.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".lock");
    store.with_file_name(name)
}

/// Reads a key file: `None` when it does not exist; an error when it is readable by others
/// or not a key.
fn read_key_file(path: &Path) -> Result<Option<Key>, SecretError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        // A parent that is not a directory means there is no key file either; writing the
        // store will then fail with the reason.
        Err(e) if matches!(e.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory) => return Ok(None),
        Err(e) => return Err(io_unavailable("cannot read the key file", path, e)),
    };
    let mode = std::fs::metadata(path).map_err(|e| io_unavailable("cannot read the key file", path, e))?.permissions().mode();
    if mode & 0o077 != 0 {
        return Err(SecretError::Invalid(format!("the key file {} is readable by other users (mode {:o}); run `chmod 600 {}`", path.display(), mode & 0o777, path.display())));
    }
    Key::parse(&text).map(Some).ok_or_else(|| SecretError::Invalid(format!("the key file {} does not hold a base64-encoded 32-byte key", path.display())))
}

/// Writes `bytes` to a temporary file beside `path` with `mode`, fsyncs it, renames it over
/// `path` and fsyncs the directory.
fn write_atomically(path: &Path, bytes: &[u8], mode: u32) -> Result<(), SecretError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir).map_err(|e| io_unavailable("cannot create directory", dir, e))?;
    let mut temp = tempfile::Builder::new().prefix(".nova-secrets-").permissions(std::fs::Permissions::from_mode(mode)).tempfile_in(dir).map_err(|e| io_unavailable("cannot create a file in", dir, e))?;
    temp.write_all(bytes).and_then(|_| temp.as_file().sync_all()).map_err(|e| io_unavailable("cannot write", temp.path(), e))?;
    temp.persist(path).map_err(|e| io_unavailable("cannot replace", path, e.error))?;
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| io_unavailable("cannot sync directory", dir, e))
}

fn now_ms() -> i64 {
    crate::storage::now_ms()
}

#[async_trait::async_trait]
impl SecretStore for FileStore {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn describe(&self) -> String {
        format!("{} (key: {})", self.inner.path.display(), self.inner.key_origin)
    }

    async fn read(&self, path: &SecretPath, version: Option<&Version>) -> Result<Versioned, SecretError> {
        let (p, v) = (path.clone(), version.cloned());
        self.blocking(move |s| {
            let plain = s.snapshot()?;
            let stored = plain.secrets.get(p.as_str()).ok_or_else(|| SecretError::NotFound(p.to_string()))?;
            let Some(v) = v else { return stored.current.versioned() };
            let entry = std::iter::once(&stored.current).chain(&stored.previous).find(|e| e.version.to_string() == v.as_str());
            entry.ok_or_else(|| SecretError::NotFound(format!("{p} version {v}")))?.versioned()
        })
        .await
    }

    async fn put(&self, path: &SecretPath, data: &SecretData, precondition: Precondition) -> Result<Version, SecretError> {
        data.validate()?;
        let (p, json) = (path.clone(), data.to_json());
        self.blocking(move |s| {
            s.modify(|plain| {
                let existing = plain.secrets.remove(p.as_str());
                let current = existing.as_ref().map(|e| Version::new(e.current.version.to_string()));
                let ok = match &precondition {
                    Precondition::None => true,
                    Precondition::Absent => current.is_none(),
                    Precondition::Current(v) => current.as_ref() == Some(v),
                };
                if !ok {
                    if let Some(e) = existing {
                        plain.secrets.insert(p.to_string(), e);
                    }
                    return Err(SecretError::Conflict(p.to_string()));
                }
                let previous = existing.map(|e| e.current);
                let version = previous.as_ref().map_or(1, |e| e.version + 1);
                plain.secrets.insert(p.to_string(), Stored { current: Entry { version, updated_ms: now_ms(), data: json }, previous });
                Ok(Version::new(version.to_string()))
            })
        })
        .await
    }

    async fn delete(&self, path: &SecretPath) -> Result<(), SecretError> {
        let p = path.clone();
        self.blocking(move |s| {
            if !s.snapshot()?.secrets.contains_key(p.as_str()) {
                return Ok(()); // nothing to rewrite
            }
            s.modify(|plain| {
                plain.secrets.remove(p.as_str());
                Ok(())
            })
        })
        .await
    }

    async fn list(&self, prefix: Option<&SecretPath>) -> Result<Vec<SecretPath>, SecretError> {
        let prefix = prefix.cloned();
        self.blocking(move |s| {
            let plain = s.snapshot()?;
            let paths = plain.secrets.keys().filter_map(|k| SecretPath::parse(k).ok());
            Ok(paths.filter(|p| prefix.as_ref().is_none_or(|pre| p.starts_with(pre) && p != pre)).collect())
        })
        .await
    }

    async fn health_check(&self) -> HealthReport {
        let target = self.describe();
        match super::probe_round_trip(self).await {
            Ok(()) => HealthReport::pass(KIND, target, "wrote, read back and deleted a probe secret"),
            Err((step, e @ SecretError::Invalid(_))) => HealthReport::fail(KIND, target, format!("probe {step} failed: {e}"), "follow the message: restore the key or the store from backup"),
            Err((step, e)) => HealthReport::fail(
                KIND,
                target,
                format!("probe {step} failed: {e}"),
                format!("make {} and its directory writable by the user Nova runs as, with free disk space", self.inner.path.display()),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dir: &Path) -> FileStoreConfig {
        FileStoreConfig { path: dir.join("secrets.enc"), key_file: None, key_env: None }
    }

    #[tokio::test]
    async fn key_is_created_0600_with_the_first_secret_and_required_after() {
        let dir = tempfile::tempdir().unwrap();
        let c = config(dir.path());
        let store = FileStore::open(&c).await.unwrap();
        assert!(!c.key_path().exists(), "no key before there is data");
        let path = SecretPath::parse("a/b").unwrap();
        store.put(&path, &SecretData::single(nova_domain::Sensitive::new("hunter2".into())), Precondition::Absent).await.unwrap();
        assert_eq!(std::fs::metadata(c.key_path()).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::metadata(&c.path).unwrap().permissions().mode() & 0o777, 0o600);
        let bytes = std::fs::read(&c.path).unwrap();
        assert!(!String::from_utf8_lossy(&bytes).contains("hunter2") && !String::from_utf8_lossy(&bytes).contains("a/b"));

        // Missing key: refused, saying what to do.
        std::fs::rename(c.key_path(), dir.path().join("moved.key")).unwrap();
        let e = FileStore::open(&c).await.err().unwrap().to_string();
        assert!(e.contains("key is missing") && e.contains("restore the key"), "{e}");
        // Another key: refused, naming both key ids.
        std::fs::write(c.key_path(), format!("{}\n", B64.encode([7u8; 32]))).unwrap();
        std::fs::set_permissions(c.key_path(), std::fs::Permissions::from_mode(0o600)).unwrap();
        let e = FileStore::open(&c).await.err().unwrap().to_string();
        assert!(e.contains("another key"), "{e}");
        // A key readable by others: refused.
        std::fs::rename(dir.path().join("moved.key"), c.key_path()).unwrap();
        std::fs::set_permissions(c.key_path(), std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = FileStore::open(&c).await.err().unwrap().to_string();
        assert!(e.contains("chmod 600"), "{e}");
        std::fs::set_permissions(c.key_path(), std::fs::Permissions::from_mode(0o600)).unwrap();
        let store = FileStore::open(&c).await.unwrap();
        assert_eq!(store.get(&path).await.unwrap().data.get("value").unwrap().expose(), "hunter2");
    }

    #[tokio::test]
    async fn a_damaged_store_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let c = config(dir.path());
        let store = FileStore::open(&c).await.unwrap();
        store.put(&SecretPath::parse("x").unwrap(), &SecretData::single(nova_domain::Sensitive::new("v".into())), Precondition::None).await.unwrap();
        let mut env: serde_json::Value = serde_json::from_slice(&std::fs::read(&c.path).unwrap()).unwrap();
        let mut ct = B64.decode(env["ciphertext"].as_str().unwrap()).unwrap();
        ct[0] ^= 1;
        env["ciphertext"] = B64.encode(ct).into();
        std::fs::write(&c.path, serde_json::to_vec(&env).unwrap()).unwrap();
        let e = FileStore::open(&c).await.err().unwrap().to_string();
        assert!(e.contains("damaged"), "{e}");
    }
}
