//! The audit log: every mutating action and every denial — who, which teams, what, on which
//! target, outcome, request id and details — appended to a hash chain so that editing or
//! deleting a stored event is detectable (`nova audit verify`).
//!
//! Each event's hash covers the previous event's hash and every stored field, each written with
//! its length, so no two events hash alike. Appends lock the single `audit_head` row, which
//! serializes them across processes on both engines. Retention deletes old events and records a
//! checkpoint (the last deleted event's hash) from which verification continues.
//!
//! Details are a JSON object built by the caller; a secret cannot be put in one by accident,
//! because `nova_domain::Sensitive` does not implement `Serialize`.

use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use sqlx::Row;

use crate::jobs::{Job, JobOutcome};
use crate::storage::{Db, StorageError, now_ms};

/// The hourly job that applies `audit.retention`.
#[derive(Debug, Serialize, serde::Deserialize)]
pub struct ApplyRetention {
    /// Keep events younger than this many milliseconds.
    pub keep_ms: i64,
}

impl Job for ApplyRetention {
    const KIND: &'static str = "audit.retention";
}

/// How often retention runs.
pub const RETENTION_EVERY_MS: i64 = 3_600_000;

/// The hash that precedes the first event.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// How an audited action ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Success,
    /// Refused by the authorization policy.
    Denied,
    /// Attempted and failed.
    Failure,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Denied => "denied",
            Outcome::Failure => "failure",
        }
    }
}

/// An event to record.
#[derive(Debug, Clone)]
pub struct AuditEvent {
    /// `user:default/jdoe`, `anonymous`, `system`, or `cli:<os user>`.
    pub actor: String,
    /// The actor's teams (ownership claims) at the time.
    pub teams: Vec<String>,
    /// Dotted action name, e.g. `catalog.location.register`.
    pub action: String,
    /// What was acted on: an entity reference, a location id, a flag key.
    pub target: String,
    pub outcome: Outcome,
    pub request_id: String,
    /// A JSON object with the parameters; never a secret.
    pub details: Value,
}

impl AuditEvent {
    /// A successful action taken outside any request (the CLI, the demo's set-up), so with no
    /// request id and no teams.
    pub fn outside_request(actor: String, action: &str, target: String, details: Value) -> Self {
        Self { actor, teams: Vec::new(), action: action.into(), target, outcome: Outcome::Success, request_id: "-".into(), details }
    }
}

/// A stored event.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct StoredEvent {
    pub seq: i64,
    /// Unix milliseconds.
    pub at: i64,
    pub actor: String,
    pub teams: Vec<String>,
    pub action: String,
    pub target: String,
    pub outcome: String,
    #[serde(rename = "requestId")]
    pub request_id: String,
    #[schema(value_type = Object)]
    pub details: Value,
}

/// Filters for [`AuditLog::query`]; results are newest first.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub actor: Option<String>,
    /// Matches the action exactly, or every action under it when it ends with `.`.
    pub action: Option<String>,
    pub target: Option<String>,
    /// Only events whose target is one of these (for callers who may see only what they own).
    pub targets_in: Option<Vec<String>>,
    pub since: Option<i64>,
    pub until: Option<i64>,
    /// Events with a sequence number below this (the cursor of the previous page).
    pub before_seq: Option<i64>,
    pub limit: usize,
}

/// The result of [`AuditLog::verify`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verification {
    /// Events checked.
    pub checked: u64,
    /// The first broken link, if any.
    pub broken: Option<BrokenLink>,
}

/// Where the chain breaks and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BrokenLink {
    pub seq: i64,
    pub reason: String,
}

/// The audit log.
#[derive(Clone)]
pub struct AuditLog {
    db: Db,
    forward_to_log: bool,
}

fn field(h: &mut Sha256, s: &str) {
    h.update((s.len() as u64).to_be_bytes());
    h.update(s.as_bytes());
}

/// The hash of an event from its stored fields.
#[allow(clippy::too_many_arguments)]
fn event_hash(prev: &str, seq: i64, at: i64, actor: &str, teams: &str, action: &str, target: &str, outcome: &str, request_id: &str, details: &str) -> String {
    let mut h = Sha256::new();
    for f in [prev, &seq.to_string(), &at.to_string(), actor, teams, action, target, outcome, request_id, details] {
        field(&mut h, f);
    }
    hex::encode(h.finalize())
}

impl AuditLog {
    /// The log over `db`; with `forward_to_log`, every event is also written to the JSON log.
    pub fn new(db: Db, forward_to_log: bool) -> Self {
        Self { db, forward_to_log }
    }

    /// Appends an event and returns its sequence number.
    pub async fn record(&self, e: AuditEvent) -> Result<i64, StorageError> {
        let mut tx = self.db.begin().await?;
        let seq = self.record_in(&mut tx, e).await?;
        tx.commit().await?;
        Ok(seq)
    }

    /// Appends `e` inside `tx`, the transaction that also makes the change it records: both
    /// are kept or neither is, so a process killed between the two cannot leave a change
    /// without its event. The caller commits.
    pub async fn record_in(&self, tx: &mut sqlx::Transaction<'static, sqlx::Any>, e: AuditEvent) -> Result<i64, StorageError> {
        let teams = serde_json::to_string(&e.teams).expect("strings serialize");
        let details = if e.details.is_null() { "{}".to_string() } else { e.details.to_string() };
        let at = now_ms();
        // Taking the head row first locks it: appends are serialized on both engines.
        let head = sqlx::query(self.db.sql("UPDATE audit_head SET seq = seq + 1 WHERE id = 1 RETURNING seq, hash"))
            .fetch_one(&mut **tx)
            .await?;
        let seq: i64 = head.get(0);
        let prev: String = head.get(1);
        let outcome = e.outcome.as_str();
        let hash = event_hash(&prev, seq, at, &e.actor, &teams, &e.action, &e.target, outcome, &e.request_id, &details);
        sqlx::query(self.db.sql(
            "INSERT INTO audit_events (seq, at, actor, actor_teams, action, target, outcome, request_id, details, prev_hash, hash)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        ))
        .bind(seq)
        .bind(at)
        .bind(&e.actor)
        .bind(&teams)
        .bind(&e.action)
        .bind(&e.target)
        .bind(outcome)
        .bind(&e.request_id)
        .bind(&details)
        .bind(&prev)
        .bind(&hash)
        .execute(&mut **tx)
        .await?;
        sqlx::query(self.db.sql("UPDATE audit_head SET hash = $1 WHERE id = 1")).bind(&hash).execute(&mut **tx).await?;
        metrics::counter!("nova_audit_events_total", "outcome" => outcome).increment(1);
        if self.forward_to_log {
            tracing::info!(target: "audit", seq, actor = %e.actor, action = %e.action, target_ref = %e.target, outcome, request_id = %e.request_id, details = %details, "audit event");
        }
        Ok(seq)
    }

    /// Events matching `q`, newest first, and the cursor of the next page.
    pub async fn query(&self, q: &AuditQuery) -> Result<(Vec<StoredEvent>, Option<i64>), StorageError> {
        // Optional filters are written so that a NULL parameter disables them; one statement
        // serves every combination and stays parameterized.
        let targets = q.targets_in.as_ref().map(|t| serde_json::to_string(t).expect("strings serialize"));
        let action_prefix = q.action.as_deref().filter(|a| a.ends_with('.')).map(|a| format!("{a}%"));
        let action_exact = q.action.as_deref().filter(|a| !a.ends_with('.'));
        let targets_clause = match self.db.backend() {
            crate::storage::Backend::Sqlite => "($7 IS NULL OR target IN (SELECT value FROM json_each($7)))",
            crate::storage::Backend::Postgres => "($7::text IS NULL OR target IN (SELECT json_array_elements_text($7::json)))",
        };
        let sql = format!(
            "SELECT seq, at, actor, actor_teams, action, target, outcome, request_id, details FROM audit_events
             WHERE ($1::text IS NULL OR actor = $1) AND ($2::text IS NULL OR action = $2) AND ($3::text IS NULL OR action LIKE $3)
               AND ($4::text IS NULL OR target = $4) AND ($5::bigint IS NULL OR at >= $5) AND ($6::bigint IS NULL OR at < $6)
               AND {targets_clause} AND ($8::bigint IS NULL OR seq < $8)
             ORDER BY seq DESC LIMIT $9"
        );
        let sql = match self.db.backend() {
            crate::storage::Backend::Sqlite => sql.replace("::text", "").replace("::bigint", "").replace("::json", "").replace('$', "?"),
            crate::storage::Backend::Postgres => sql,
        };
        let limit = q.limit.clamp(1, 1000) as i64;
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(q.actor.as_deref())
            .bind(action_exact)
            .bind(action_prefix.as_deref())
            .bind(q.target.as_deref())
            .bind(q.since)
            .bind(q.until)
            .bind(targets.as_deref())
            .bind(q.before_seq)
            .bind(limit + 1)
            .fetch_all(self.db.pool())
            .await?;
        let mut events: Vec<StoredEvent> = rows.iter().map(row_to_event).collect::<Result<_, _>>()?;
        let next = if events.len() as i64 > limit {
            events.truncate(limit as usize);
            events.last().map(|e| e.seq)
        } else {
            None
        };
        Ok((events, next))
    }

    /// Walks the chain from the last checkpoint and reports the first broken link: an edited
    /// field, a deleted event, or a head that does not match the last event.
    pub async fn verify(&self) -> Result<Verification, StorageError> {
        let checkpoint = sqlx::query("SELECT through_seq, hash FROM audit_checkpoints ORDER BY through_seq DESC LIMIT 1")
            .fetch_optional(self.db.pool())
            .await?;
        let (mut expected_seq, mut expected_prev) = match checkpoint {
            Some(r) => (r.get::<i64, _>(0) + 1, r.get::<String, _>(1)),
            None => (1, GENESIS.to_string()),
        };
        let mut checked = 0;
        let mut after = expected_seq - 1;
        loop {
            let rows = sqlx::query(self.db.sql(
                "SELECT seq, at, actor, actor_teams, action, target, outcome, request_id, details, prev_hash, hash
                 FROM audit_events WHERE seq > $1 ORDER BY seq LIMIT 5000",
            ))
            .bind(after)
            .fetch_all(self.db.pool())
            .await?;
            if rows.is_empty() {
                break;
            }
            for r in &rows {
                let seq: i64 = r.get(0);
                let broken = |reason: String| Ok(Verification { checked, broken: Some(BrokenLink { seq, reason }) });
                if seq != expected_seq {
                    return broken(format!("event {expected_seq} is missing (deleted?); the chain continues at {seq}"));
                }
                let prev: String = r.get(9);
                if prev != expected_prev {
                    return broken(format!("event {seq} does not point at the hash of the event before it"));
                }
                let stored: String = r.get(10);
                let computed = event_hash(&prev, seq, r.get(1), &r.get::<String, _>(2), &r.get::<String, _>(3), &r.get::<String, _>(4), &r.get::<String, _>(5), &r.get::<String, _>(6), &r.get::<String, _>(7), &r.get::<String, _>(8));
                if computed != stored {
                    return broken(format!("event {seq} was changed after it was written (its hash does not match its fields)"));
                }
                expected_prev = stored;
                expected_seq += 1;
                checked += 1;
                after = seq;
            }
        }
        let head = sqlx::query("SELECT seq, hash FROM audit_head WHERE id = 1").fetch_one(self.db.pool()).await?;
        let (head_seq, head_hash): (i64, String) = (head.get(0), head.get(1));
        if head_seq != expected_seq - 1 || (head_seq > 0 && head_hash != expected_prev) {
            return Ok(Verification {
                checked,
                broken: Some(BrokenLink { seq: head_seq, reason: format!("the chain ends at event {} but the head records event {head_seq}; the newest events were removed or changed", expected_seq - 1) }),
            });
        }
        Ok(Verification { checked, broken: None })
    }

    /// The job handler for [`ApplyRetention`].
    pub async fn run_retention_job(&self, job: ApplyRetention) -> Result<JobOutcome, String> {
        let deleted = self.apply_retention(now_ms() - job.keep_ms).await.map_err(|e| e.to_string())?;
        if deleted > 0 {
            tracing::info!(deleted, "audit retention removed old events");
        }
        Ok(JobOutcome::RunAgainAt(now_ms() + RETENTION_EVERY_MS))
    }

    /// Deletes events older than `cutoff` (Unix ms), recording a checkpoint so that the rest of
    /// the chain still verifies. Returns how many were deleted.
    pub async fn apply_retention(&self, cutoff: i64) -> Result<u64, StorageError> {
        let mut tx = self.db.begin().await?;
        // Lock the head so no append races the cut.
        sqlx::query(self.db.sql("UPDATE audit_head SET seq = seq WHERE id = 1")).execute(&mut *tx).await?;
        let last = sqlx::query(self.db.sql("SELECT seq, hash FROM audit_events WHERE at < $1 ORDER BY seq DESC LIMIT 1"))
            .bind(cutoff)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(last) = last else { return Ok(0) };
        let (through, hash): (i64, String) = (last.get(0), last.get(1));
        let deleted = sqlx::query(self.db.sql("DELETE FROM audit_events WHERE seq <= $1")).bind(through).execute(&mut *tx).await?.rows_affected();
        sqlx::query(self.db.sql("INSERT INTO audit_checkpoints (through_seq, hash, at, deleted) VALUES ($1, $2, $3, $4)"))
            .bind(through)
            .bind(&hash)
            .bind(now_ms())
            .bind(deleted as i64)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(deleted)
    }
}

fn row_to_event(r: &sqlx::any::AnyRow) -> Result<StoredEvent, StorageError> {
    let teams: String = r.get(3);
    let details: String = r.get(8);
    Ok(StoredEvent {
        seq: r.get(0),
        at: r.get(1),
        actor: r.get(2),
        teams: serde_json::from_str(&teams).map_err(|e| StorageError::Corrupt(format!("audit teams: {e}")))?,
        action: r.get(4),
        target: r.get(5),
        outcome: r.get(6),
        request_id: r.get(7),
        details: serde_json::from_str(&details).map_err(|e| StorageError::Corrupt(format!("audit details: {e}")))?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_lengths_keep_hashes_apart() {
        let a = event_hash(GENESIS, 1, 0, "ab", "c", "x", "t", "success", "r", "{}");
        let b = event_hash(GENESIS, 1, 0, "a", "bc", "x", "t", "success", "r", "{}");
        assert_ne!(a, b);
    }
}
