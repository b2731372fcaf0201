//! The intake webhook's trust: a per-team secret kept in the secret store
//! (`teams/<team>/release/intake`, shown once when made, rotatable), and the signature external
//! CI sends: `X-Nova-Signature-256: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>` with
//! `X-Nova-Timestamp: <Unix seconds>`. A timestamp outside `release.intake_window` is refused,
//! and so is a signature already seen within it (a replay).

use hmac::{Hmac, Mac};
use nova_domain::Sensitive;
use sha2::{Digest as _, Sha256};

use crate::secrets::{Precondition, SecretData, SecretError, SecretPath, SecretStore};
use crate::storage::{Db, StorageError, now_ms};

/// The header carrying the signature.
pub const SIGNATURE_HEADER: &str = "x-nova-signature-256";
/// The header carrying the timestamp the signature covers.
pub const TIMESTAMP_HEADER: &str = "x-nova-timestamp";

/// Where a team's intake secret lives.
pub fn secret_path(team: &str) -> Result<SecretPath, String> {
    SecretPath::team(team, "release/intake").map_err(|e| e.to_string())
}

/// Makes a new intake secret for `team` (replacing any), answering it: the only time it is shown.
pub async fn rotate(store: &dyn SecretStore, team: &str) -> Result<Sensitive<String>, SecretError> {
    let mut raw = [0u8; 32];
    getrandom::fill(&mut raw).map_err(|e| SecretError::Unavailable(format!("no randomness for a secret: {e}")))?;
    let secret = Sensitive::new(format!("nova_intake_{}", hex::encode(raw)));
    let path = secret_path(team).map_err(SecretError::Invalid)?;
    store.put(&path, &SecretData::single(secret.clone()), Precondition::None).await?;
    Ok(secret)
}

/// Checks the timestamp against `now_secs` and `window_secs`, and the signature of `body` with
/// `secret` (in constant time); the error says which check failed (never the secret).
pub fn verify(secret: &Sensitive<String>, timestamp: Option<&str>, signature: Option<&str>, body: &[u8], now_secs: i64, window_secs: i64) -> Result<(), String> {
    let refuse = |m: &str| Err(m.to_string());
    let Some(ts) = timestamp.and_then(|t| t.trim().parse::<i64>().ok()) else { return refuse("X-Nova-Timestamp must be the request's time in Unix seconds") };
    if (now_secs - ts).abs() > window_secs {
        return refuse("X-Nova-Timestamp is outside the accepted window (release.intake_window); sign each request when it is sent");
    }
    let Some(hex_sig) = signature.and_then(|s| s.trim().strip_prefix("sha256=")) else { return refuse("X-Nova-Signature-256 must be sha256=<hex HMAC-SHA256 of \"<timestamp>.<body>\">") };
    let Ok(given) = hex::decode(hex_sig) else { return refuse("X-Nova-Signature-256 is not hex") };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes()).expect("HMAC takes keys of any length");
    mac.update(ts.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.verify_slice(&given).or_else(|_| refuse("the signature does not match the body with the owning team's intake secret"))
}

/// Signs `body` at `timestamp` as CI does (for tests and documentation).
pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(format!("{timestamp}.").as_bytes());
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Remembers a signature for the replay window; `false` when it was already seen.
pub async fn first_use(db: &Db, signature: &str, window_ms: i64) -> Result<bool, StorageError> {
    let now = now_ms();
    sqlx::query(db.sql("DELETE FROM release_intake_seen WHERE seen_at < $1")).bind(now - 2 * window_ms).execute(db.pool()).await?;
    let key = hex::encode(Sha256::digest(signature.trim().as_bytes()));
    let n = sqlx::query(db.sql("INSERT INTO release_intake_seen (signature, seen_at) VALUES ($1, $2) ON CONFLICT (signature) DO NOTHING"))
        .bind(key)
        .bind(now)
        .execute(db.pool())
        .await?
        .rows_affected();
    Ok(n == 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_and_windows() {
        let secret = Sensitive::new("s3cret".to_string());
        let body = br#"{"component":"shop"}"#;
        let sig = sign("s3cret", 1000, body);
        assert_eq!(verify(&secret, Some("1000"), Some(&sig), body, 1010, 300), Ok(()));
        assert!(matches!(verify(&secret, Some("1000"), Some(&sig), b"{}", 1010, 300), Err(m) if m.contains("does not match")));
        assert!(matches!(verify(&secret, Some("1000"), Some(&sig), body, 2000, 300), Err(m) if m.contains("window")));
        assert!(matches!(verify(&secret, Some("1001"), Some(&sig), body, 1010, 300), Err(_)));
        assert!(matches!(verify(&secret, None, Some(&sig), body, 1010, 300), Err(_)));
        assert!(matches!(verify(&secret, Some("1000"), Some("md5=00"), body, 1010, 300), Err(_)));
        let other = Sensitive::new("other".to_string());
        assert!(verify(&other, Some("1000"), Some(&sig), body, 1010, 300).is_err());
    }
}
