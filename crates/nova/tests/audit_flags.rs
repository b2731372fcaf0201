//! The audit log's hash chain and the feature flags' storage, on SQLite and PostgreSQL.

mod support;

use std::sync::Arc;

use nova::audit::{AuditEvent, AuditLog, AuditQuery, Outcome};
use nova::flags::{FlagDef, Flags, Rollout, Subject};
use nova::storage::Db;
use nova_domain::EntityRef;
use serde_json::json;
use support::*;

async fn db(backend: Backend) -> (Db, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database(backend, dir.path()).await;
    let db = Db::connect(&url, 8).await.unwrap();
    db.migrate().await.unwrap();
    (db, dir)
}

fn event(i: usize) -> AuditEvent {
    AuditEvent {
        actor: format!("user:default/u{}", i % 3),
        teams: vec!["group:default/payments".into()],
        action: if i % 2 == 0 { "catalog.location.register".into() } else { "flags.set".into() },
        target: format!("component:default/c{i}"),
        outcome: if i % 5 == 0 { Outcome::Denied } else { Outcome::Success },
        request_id: format!("req-{i}"),
        details: json!({"i": i}),
    }
}

async fn exec(db: &Db, sql: &'static str) {
    sqlx::query(sql).execute(db.pool()).await.unwrap();
}

on_both_backends! {
    async fn concurrent_appends_form_one_chain(backend: Backend) {
        let (db, _dir) = db(backend).await;
        let log = Arc::new(AuditLog::new(db.clone(), false));
        let handles: Vec<_> = (0..30).map(|i| { let log = log.clone(); tokio::spawn(async move { log.record(event(i)).await.unwrap() }) }).collect();
        let mut seqs: Vec<i64> = Vec::new();
        for h in handles { seqs.push(h.await.unwrap()); }
        seqs.sort();
        assert_eq!(seqs, (1..=30).collect::<Vec<i64>>());
        let v = log.verify().await.unwrap();
        assert_eq!((v.checked, v.broken), (30, None));
        // Queries filter and page newest first.
        let (page, next) = log.query(&AuditQuery { action: Some("flags.".into()), limit: 10, ..Default::default() }).await.unwrap();
        assert_eq!(page.len(), 10);
        assert!(page.windows(2).all(|w| w[0].seq > w[1].seq));
        assert!(page.iter().all(|e| e.action == "flags.set"));
        let (rest, none) = log.query(&AuditQuery { action: Some("flags.".into()), before_seq: next, limit: 10, ..Default::default() }).await.unwrap();
        assert_eq!((rest.len(), none), (5, None));
        let (mine, _) = log.query(&AuditQuery { targets_in: Some(vec!["component:default/c3".into(), "component:default/c4".into()]), limit: 50, ..Default::default() }).await.unwrap();
        assert_eq!(mine.len(), 2);
        let (denied, _) = log.query(&AuditQuery { actor: Some("user:default/u0".into()), limit: 50, ..Default::default() }).await.unwrap();
        assert_eq!(denied.len(), 10);
        assert!(denied.iter().all(|e| e.details["i"].as_u64().unwrap() % 3 == 0 && e.actor == "user:default/u0"));
    }

    async fn tampering_is_found(backend: Backend) {
        let (db, _dir) = db(backend).await;
        let log = AuditLog::new(db.clone(), false);
        for i in 0..20 { log.record(event(i)).await.unwrap(); }
        exec(&db, "UPDATE audit_events SET details = '{\"i\": 999}' WHERE seq = 7").await;
        let b = log.verify().await.unwrap().broken.expect("an edit is found");
        assert_eq!(b.seq, 7);
        assert!(b.reason.contains("changed"), "{}", b.reason);
        assert_eq!(log.verify().await.unwrap().checked, 6);
        exec(&db, "DELETE FROM audit_events WHERE seq = 7").await;
        let b = log.verify().await.unwrap().broken.expect("a deletion is found");
        assert!(b.reason.contains("missing"), "{}", b.reason);
        let (db2, _dir2) = self::db(backend).await;
        let log2 = AuditLog::new(db2.clone(), false);
        for i in 0..5 { log2.record(event(i)).await.unwrap(); }
        exec(&db2, "DELETE FROM audit_events WHERE seq = 5").await;
        let b = log2.verify().await.unwrap().broken.expect("removing the newest event is found");
        assert!(b.reason.contains("head"), "{}", b.reason);
    }

    async fn retention_keeps_the_chain_verifiable(backend: Backend) {
        let (db, _dir) = db(backend).await;
        let log = AuditLog::new(db.clone(), false);
        for i in 0..10 { log.record(event(i)).await.unwrap(); }
        let deleted = log.apply_retention(nova::storage::now_ms() + 1).await.unwrap();
        assert_eq!(deleted, 10);
        for i in 10..15 { log.record(event(i)).await.unwrap(); }
        let v = log.verify().await.unwrap();
        assert_eq!((v.checked, v.broken), (5, None));
        exec(&db, "DELETE FROM audit_events WHERE seq = 12").await;
        assert!(log.verify().await.unwrap().broken.is_some());
    }

    async fn flag_changes_reach_other_replicas(backend: Backend) {
        const DEF: FlagDef = FlagDef { key: "test.feature", description: "a test flag", default_on: false };
        let (db, _dir) = db(backend).await;
        let a = Flags::open(db.clone(), &[DEF]).await.unwrap();
        let b = Flags::open(db.clone(), &[DEF]).await.unwrap();
        let alice = EntityRef::parse("user:alice").unwrap();
        let platform = EntityRef::parse("group:platform").unwrap();
        let claims = [alice.clone(), platform.clone()];
        let subject = Subject { user: Some(&alice), claims: &claims };
        assert!(!a.is_on("test.feature", &subject));
        let (before, after) = a.set("test.feature", Rollout { enabled: true, groups: vec![platform.clone()], ..Rollout::off() }, "user:default/admin").await.unwrap();
        assert_eq!((before.stage, after.stage), ("off", "targeted"));
        assert!(a.is_on("test.feature", &subject), "effective at once on the replica that changed it");
        assert!(!b.is_on("test.feature", &subject), "the other replica has not synced yet");
        b.sync().await.unwrap();
        assert!(b.is_on("test.feature", &subject));
        assert_eq!(b.get("test.feature").unwrap().updated_by, "user:default/admin");
        // Bad input changes nothing.
        assert!(a.set("test.feature", Rollout { percentage: 150.0, ..Rollout::on() }, "x").await.is_err());
        assert!(a.set("no.such.flag", Rollout::on(), "x").await.is_err());
        assert_eq!(a.get("test.feature").unwrap().stage, "targeted");
        // Built-ins are created once; a flag others create can be read back.
        let c = Flags::open(db.clone(), &[DEF]).await.unwrap();
        assert_eq!(c.get("test.feature").unwrap().stage, "targeted", "reopening does not reset a built-in flag");
        c.create("checkout.new-flow", "for the shop", Rollout::off(), "user:default/admin").await.unwrap();
        assert!(c.create("checkout.new-flow", "again", Rollout::off(), "x").await.is_err());
        assert!(c.create("Bad Key", "", Rollout::off(), "x").await.is_err());
    }
}

#[test]
fn audit_verify_cli_exits_1_on_tampering() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/nova.db", dir.path().display());
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let db = Db::connect(&url, 2).await.unwrap();
        db.migrate().await.unwrap();
        let log = AuditLog::new(db.clone(), false);
        for i in 0..3 { log.record(event(i)).await.unwrap(); }
        db.pool().close().await;
    });
    let nova = env!("CARGO_BIN_EXE_nova");
    let ok = std::process::Command::new(nova).args(["audit", "verify", "--database-url", &url]).output().unwrap();
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stdout));
    assert!(String::from_utf8_lossy(&ok.stdout).contains("3 events verified"));
    let export = std::process::Command::new(nova).args(["audit", "export", "--since", "1h", "--database-url", &url]).output().unwrap();
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&export.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.iter().map(|e| e["seq"].as_i64().unwrap()).collect::<Vec<_>>(), vec![1, 2, 3]);
    rt.block_on(async {
        let db = Db::connect(&url, 2).await.unwrap();
        sqlx::query("UPDATE audit_events SET actor = 'user:default/mallory' WHERE seq = 2").execute(db.pool()).await.unwrap();
        db.pool().close().await;
    });
    let bad = std::process::Command::new(nova).args(["audit", "verify", "--database-url", &url, "--output", "json"]).output().unwrap();
    assert_eq!(bad.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&bad.stdout).unwrap();
    assert_eq!(v["broken"]["seq"], 2);
}
