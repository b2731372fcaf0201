//! Personal API tokens: `nova_` followed by 43 random base62 characters, shown once when made.
//! Only a SHA-256 hash is stored (a token has 256 bits of entropy, so a fast hash is enough);
//! the first characters are kept as a prefix so people can tell their tokens apart.
//!
//! A token is refused when revoked, expired, or when its user was in the catalog when it was
//! made and has since left it (an off-boarded person's tokens die with their User entity).

use nova_domain::{EntityRef, Sensitive};
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::Row;

use crate::storage::{Db, StorageError, now_ms};

/// Every token starts with this.
pub const PREFIX: &str = "nova_";
const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
/// Characters of a token shown in listings.
const SHOWN: usize = 12;
/// `last_used_at` is written at most this often per token.
const LAST_USED_EVERY_MS: i64 = 60_000;

/// A token's metadata (never the token).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TokenInfo {
    pub id: String,
    #[serde(rename = "user")]
    pub user_ref: String,
    pub name: String,
    /// The token's first characters, e.g. `nova_3fK9aQ`.
    pub prefix: String,
    #[serde(rename = "createdAt")]
    pub created_at: i64,
    #[serde(rename = "expiresAt")]
    pub expires_at: Option<i64>,
    #[serde(rename = "lastUsedAt")]
    pub last_used_at: Option<i64>,
    #[serde(rename = "revokedAt")]
    pub revoked_at: Option<i64>,
}

/// Why a presented token was refused. Messages never include the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenRefusal {
    #[error("the API token is not valid (malformed or unknown)")]
    Unknown,
    #[error("the API token was revoked")]
    Revoked,
    #[error("the API token has expired")]
    Expired,
    #[error("the API token's user is no longer in the catalog")]
    UserGone,
}

fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn generate() -> Result<String, StorageError> {
    let mut raw = [0u8; 43];
    getrandom::fill(&mut raw).map_err(|e| StorageError::Corrupt(format!("no randomness for a token: {e}")))?;
    // Bytes of 248 and above (248 is the largest multiple of 62 under 256) are drawn again, so
    // every character is uniformly distributed: 43 characters carry 256 bits.
    let mut out = String::from(PREFIX);
    let mut extra = [0u8; 1];
    for b in raw {
        let mut v = b;
        while v >= 248 {
            getrandom::fill(&mut extra).map_err(|e| StorageError::Corrupt(format!("no randomness for a token: {e}")))?;
            v = extra[0];
        }
        out.push(ALPHABET[(v % 62) as usize] as char);
    }
    Ok(out)
}

/// Whether a string has the shape of a Nova token (cheap check before a database lookup).
pub fn looks_like_token(s: &str) -> bool {
    s.len() == PREFIX.len() + 43 && s.starts_with(PREFIX) && s[PREFIX.len()..].bytes().all(|b| b.is_ascii_alphanumeric())
}

/// The token table.
#[derive(Clone)]
pub struct TokenStore {
    db: Db,
}

impl TokenStore {
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    /// Makes a token for `user`; returns it (to show once) with its metadata.
    pub async fn create(&self, user: &EntityRef, name: &str, expires_at: Option<i64>, user_known: bool) -> Result<(Sensitive<String>, TokenInfo), StorageError> {
        let mut conn = self.db.pool().acquire().await?;
        self.insert(&mut conn, user, name, |_| expires_at, user_known).await
    }

    /// Makes a token for `user` on `conn` (e.g. a transaction that also audits it), expiring
    /// `lifetime_ms` after its creation time, or never.
    pub async fn create_on(&self, conn: &mut sqlx::AnyConnection, user: &EntityRef, name: &str, lifetime_ms: Option<i64>, user_known: bool) -> Result<(Sensitive<String>, TokenInfo), StorageError> {
        self.insert(conn, user, name, |created| lifetime_ms.map(|l| created + l), user_known).await
    }

    /// Stores a new token; `expiry` gives its expiry from its creation time.
    async fn insert(&self, conn: &mut sqlx::AnyConnection, user: &EntityRef, name: &str, expiry: impl FnOnce(i64) -> Option<i64>, user_known: bool) -> Result<(Sensitive<String>, TokenInfo), StorageError> {
        let token = generate()?;
        let id = uuid::Uuid::new_v4().to_string();
        let prefix = token[..SHOWN].to_string();
        let now = now_ms();
        let expires_at = expiry(now);
        sqlx::query(self.db.sql(
            "INSERT INTO api_tokens (id, user_ref, name, token_hash, prefix, user_known, created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        ))
        .bind(&id)
        .bind(user.to_string())
        .bind(name)
        .bind(hash(&token))
        .bind(&prefix)
        .bind(i32::from(user_known))
        .bind(now)
        .bind(expires_at)
        .execute(conn)
        .await?;
        let info = TokenInfo { id, user_ref: user.to_string(), name: name.into(), prefix, created_at: now, expires_at, last_used_at: None, revoked_at: None };
        Ok((Sensitive::new(token), info))
    }

    /// The user a presented token stands for. `user_exists` says whether a reference is in the
    /// catalog now.
    pub async fn authenticate(&self, token: &str, user_exists: impl Fn(&EntityRef) -> bool) -> Result<Result<EntityRef, TokenRefusal>, StorageError> {
        if !looks_like_token(token) {
            return Ok(Err(TokenRefusal::Unknown));
        }
        let row = sqlx::query(self.db.sql(
            "SELECT id, user_ref, user_known, expires_at, last_used_at, revoked_at FROM api_tokens WHERE token_hash = $1",
        ))
        .bind(hash(token))
        .fetch_optional(self.db.pool())
        .await?;
        let Some(r) = row else { return Ok(Err(TokenRefusal::Unknown)) };
        let now = now_ms();
        if r.get::<Option<i64>, _>(5).is_some() {
            return Ok(Err(TokenRefusal::Revoked));
        }
        if r.get::<Option<i64>, _>(3).is_some_and(|e| e <= now) {
            return Ok(Err(TokenRefusal::Expired));
        }
        let user = EntityRef::parse(&r.get::<String, _>(1)).map_err(|e| StorageError::Corrupt(format!("api token user: {e}")))?;
        if r.get::<i32, _>(2) == 1 && !user_exists(&user) {
            return Ok(Err(TokenRefusal::UserGone));
        }
        if r.get::<Option<i64>, _>(4).is_none_or(|t| now - t > LAST_USED_EVERY_MS) {
            sqlx::query(self.db.sql("UPDATE api_tokens SET last_used_at = $1 WHERE id = $2"))
                .bind(now)
                .bind(r.get::<String, _>(0))
                .execute(self.db.pool())
                .await?;
        }
        Ok(Ok(user))
    }

    /// A user's tokens, newest first.
    pub async fn list(&self, user: &EntityRef) -> Result<Vec<TokenInfo>, StorageError> {
        let rows = sqlx::query(self.db.sql(
            "SELECT id, user_ref, name, prefix, created_at, expires_at, last_used_at, revoked_at FROM api_tokens
             WHERE user_ref = $1 ORDER BY created_at DESC",
        ))
        .bind(user.to_string())
        .fetch_all(self.db.pool())
        .await?;
        Ok(rows
            .iter()
            .map(|r| TokenInfo {
                id: r.get(0),
                user_ref: r.get(1),
                name: r.get(2),
                prefix: r.get(3),
                created_at: r.get(4),
                expires_at: r.get(5),
                last_used_at: r.get(6),
                revoked_at: r.get(7),
            })
            .collect())
    }

    /// Revokes one of `user`'s tokens; false when they have no such token.
    pub async fn revoke(&self, user: &EntityRef, id: &str) -> Result<bool, StorageError> {
        let n = sqlx::query(self.db.sql("UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND user_ref = $3 AND revoked_at IS NULL"))
            .bind(now_ms())
            .bind(id)
            .bind(user.to_string())
            .execute(self.db.pool())
            .await?
            .rows_affected();
        Ok(n == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_have_the_documented_shape() {
        let a = generate().unwrap();
        let b = generate().unwrap();
        assert!(looks_like_token(&a), "{a}");
        assert_ne!(a, b);
        assert!(!looks_like_token("nova_short"));
        assert!(!looks_like_token(&a.replace("nova_", "novx_")));
    }
}
