//! The canary kit (tests/support/canary.rs) on SQLite and PostgreSQL: first that it finds a
//! canary planted in each place it searches — so a clean result means something — then that a
//! running Nova storing a canary in its secret store leaks it nowhere.

mod support;

use nova::secrets::{Precondition, SecretData, SecretPath};
use support::canary::{self, Canary};
use support::*;

on_both_backends! {
    async fn finds_a_planted_canary_everywhere_it_looks(backend: Backend) {
        let logs = canary::capture_logs();
        let argv = nova::process::record_argv();
        let app = spawn_app_with(backend, Options::default()).await;
        let canary = Canary::new();

        // Nothing planted yet: clean.
        let mut check = canary.check();
        check.logs(&logs).argv(&argv).metrics(&app).await;
        check.database(&app.state.db).await.sqlite_files(&app.database_url());
        check.assert_clean();

        tracing::info!(token = canary.value(), "a careless log line");
        nova::process::command("true").arg(format!("--password={}", canary.value())).status().await.unwrap();
        metrics::counter!("nova_canary_test_total", "label" => canary.value().to_owned()).increment(1);
        let db = &app.state.db;
        sqlx::query(db.sql("CREATE TABLE canary_plant (id BIGINT, note TEXT)")).execute(db.pool()).await.unwrap();
        sqlx::query(db.sql("INSERT INTO canary_plant (id, note) VALUES ($1, $2)")).bind(1_i64).bind(format!("note {}", canary.value())).execute(db.pool()).await.unwrap();
        let encoded = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, format!("user:{}", canary.value()));

        let mut check = canary.check();
        check.logs(&logs).argv(&argv).metrics(&app).await;
        check.bodies(&[format!("{{\"auth\": \"Basic {encoded}\"}}")]);
        check.database(&app.state.db).await.sqlite_files(&app.database_url());
        let found = check.findings().join("\n");
        for place in ["the log", "the argv of `true`", "/metrics", "HTTP response body #0 (as encoded)", "database table"] {
            assert!(found.contains(place), "not found in {place}: {found}");
        }
        if backend == Backend::Sqlite {
            assert!(found.contains("the SQLite file"), "{found}");
        }
    }

    async fn a_running_nova_leaks_a_stored_secret_nowhere(backend: Backend) {
        let logs = canary::capture_logs();
        let argv = nova::process::record_argv();
        let app = spawn_app(backend).await;
        let canary = Canary::new();
        let store = app.state.secrets.clone();
        let path = SecretPath::team("payments-core", "git/main").unwrap();
        let v1 = store.put(&path, &SecretData::single(canary.sensitive()), Precondition::Absent).await.unwrap();
        let mut rotated = SecretData::new();
        rotated.insert("token", canary.sensitive());
        store.put(&path, &rotated, Precondition::Current(v1)).await.unwrap();
        assert_eq!(store.get(&path).await.unwrap().data.get("token").unwrap().expose(), canary.value());
        assert_eq!(store.health_check().await.status, nova::secrets::HealthStatus::Pass);

        let mut bodies = Vec::new();
        for path in ["/health", "/ready", "/api/catalog/entities?limit=5", "/api/v1/users/alex.kim/claims", "/no/such/page"] {
            bodies.push(app.get(path).await.text().await.unwrap());
        }
        let secrets_file = app.dir.path().join("secrets.enc");
        let mut check = canary.check();
        check.logs(&logs).argv(&argv).bodies(&bodies).metrics(&app).await;
        check.database(&app.state.db).await.sqlite_files(&app.database_url()).file(&secrets_file);
        check.assert_clean();
        store.delete(&path).await.unwrap();
    }
}

#[test]
fn the_kit_looks_for_encoded_forms_at_every_alignment() {
    let canary = Canary::new();
    for pad in ["", "a", "ab", "abc"] {
        let text = format!("{pad}{}{pad}", canary.value());
        for encoded in [base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &text), base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, &text), hex::encode(&text)] {
            let mut check = canary.check();
            check.text("x", &encoded);
            assert_eq!(check.findings().len(), 1, "{pad:?} {encoded}");
        }
    }
    let mut check = Canary::new().check();
    check.text("x", canary.value());
    assert!(check.findings().is_empty(), "another canary is not this one");
}
