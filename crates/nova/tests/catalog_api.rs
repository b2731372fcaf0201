//! The catalog through its HTTP API, on SQLite and PostgreSQL: Backstage-compatible queries,
//! write-through registration, orphan removal, bad input, errors and ownership claims.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::*;

fn names(v: &Value) -> Vec<String> {
    v["items"].as_array().unwrap().iter().map(|e| e["metadata"]["name"].as_str().unwrap().to_string()).collect()
}

on_both_backends! {
    async fn by_name_returns_entity_with_relations(backend: Backend) {
        let app = spawn_app(backend).await;
        let e = app.get_json("/api/catalog/entities/by-name/Component/DEFAULT/Payment-Service", 200).await;
        assert_eq!(e["metadata"]["name"], "payment-service");
        assert_eq!(e["metadata"]["namespace"], "default");
        assert!(e["metadata"]["uid"].as_str().unwrap().len() == 36);
        assert!(e["metadata"]["annotations"]["backstage.io/managed-by-location"].as_str().unwrap().ends_with("components/payments.yaml"));
        let rels: Vec<(String, String)> = e["relations"].as_array().unwrap().iter()
            .map(|r| (r["type"].as_str().unwrap().into(), r["targetRef"].as_str().unwrap().into())).collect();
        for expected in [("ownedBy", "group:default/payments-core"), ("partOf", "system:default/payments-platform"),
                         ("providesApi", "api:default/payments-api"), ("dependsOn", "resource:default/payments-db")] {
            assert!(rels.contains(&(expected.0.to_string(), expected.1.to_string())), "missing {expected:?} in {rels:?}");
        }
        // The reverse relation lands on the target.
        let g = app.get_json("/api/catalog/entities/by-name/group/default/payments-core", 200).await;
        assert!(g["relations"].as_array().unwrap().iter().any(|r| r["type"] == "ownerOf" && r["targetRef"] == "component:default/payment-service"));
        // By uid.
        let uid = e["metadata"]["uid"].as_str().unwrap();
        let by_uid = app.get_json(&format!("/api/catalog/entities/by-uid/{uid}"), 200).await;
        assert_eq!(by_uid["metadata"]["name"], "payment-service");
        // Not found uses Backstage's error body.
        let nf = app.get_json("/api/catalog/entities/by-name/component/default/nope", 404).await;
        assert_eq!(nf["error"]["name"], "NotFoundError");
        assert_eq!(nf["response"]["statusCode"], 404);
    }

    async fn by_query_filters_pages_and_counts(backend: Backend) {
        let app = spawn_app(backend).await;
        // AND inside a filter, OR across filters.
        let v = app.get_json("/api/catalog/entities/by-query?filter=kind=component,spec.lifecycle=experimental&filter=kind=api,spec.type=grpc", 200).await;
        assert_eq!(names(&v), vec!["fraud-api", "chargeback-worker", "search-service"]);
        assert_eq!(v["totalItems"], 3);
        // Repeating a key inside one filter is "any of".
        let v = app.get_json("/api/catalog/entities/by-query?filter=kind=domain,kind=system", 200).await;
        assert_eq!(v["totalItems"], 6);
        // Relations filter (the by-owner query of the benchmark).
        let v = app.get_json("/api/catalog/entities/by-query?filter=kind=component,relations.ownedBy=group:default/payments-core", 200).await;
        assert_eq!(names(&v), vec!["payment-gateway", "payment-service", "refund-service"]);
        // Existence filter and array-item keys.
        let v = app.get_json("/api/catalog/entities/by-query?filter=kind=component,metadata.annotations.nova.dev/image-tag-prefix", 200).await;
        assert_eq!(v["totalItems"], 2);
        let v = app.get_json("/api/catalog/entities/by-query?filter=metadata.tags.pci", 200).await;
        assert_eq!(names(&v), vec!["payment-gateway", "payment-service"]);
        // Paging with cursors: totals carried, pages disjoint, all items seen once.
        let mut seen = Vec::new();
        let mut url = "/api/catalog/entities/by-query?filter=kind=component&limit=4&orderField=metadata.name,desc&fields=metadata.name".to_string();
        let mut pages = 0;
        loop {
            let v = app.get_json(&url, 200).await;
            assert_eq!(v["totalItems"], 19);
            seen.extend(names(&v));
            pages += 1;
            if pages == 2 {
                let prev = v["pageInfo"]["prevCursor"].as_str().expect("second page has a prev cursor");
                let back = app.get_json(&format!("/api/catalog/entities/by-query?cursor={prev}"), 200).await;
                assert_eq!(names(&back), seen[0..4].to_vec());
            }
            match v["pageInfo"]["nextCursor"].as_str() {
                Some(c) => url = format!("/api/catalog/entities/by-query?cursor={c}&fields=metadata.name"),
                None => break,
            }
        }
        assert_eq!(pages, 5);
        let mut sorted = seen.clone();
        sorted.sort();
        sorted.reverse();
        assert_eq!(seen, sorted, "descending by name across pages");
        sorted.dedup();
        assert_eq!(sorted.len(), 19);
        // Field projection.
        let v = app.get_json("/api/catalog/entities/by-query?filter=kind=group&fields=metadata.name,spec.parent&limit=1", 200).await;
        assert_eq!(v["items"][0], json!({"metadata": {"name": "data-platform"}, "spec": {"parent": "engineering"}}));
        // Full-text search in the named fields, case-insensitive.
        let v = app.get_json("/api/catalog/entities/by-query?fullTextFilterTerm=REFUND&fullTextFilterFields=metadata.name", 200).await;
        assert_eq!(names(&v), vec!["refund-service"]);
        let v = app.get_json("/api/catalog/entities/by-query?filter=kind=component&fullTextFilterTerm=acquiring", 200).await;
        assert_eq!(names(&v), vec!["payment-gateway"], "default text fields include the description");
    }

    async fn by_query_rejects_bad_parameters(backend: Backend) {
        let app = spawn_app(backend).await;
        for (q, field) in [("filter==x", "filter"), ("limit=-1", "limit"), ("cursor=zzz", "cursor"), ("orderField=metadata.name,sideways", "orderField"), ("limit=100000", "limit")] {
            let r = app.get(&format!("/api/catalog/entities/by-query?{q}")).await;
            assert_eq!(r.status(), 400, "{q}");
            let v: Value = r.json().await.unwrap();
            assert_eq!(v["error"]["name"], "InputError");
            assert!(v["error"]["message"].as_str().unwrap().starts_with(field), "{q}: {v}");
        }
    }

    async fn by_refs_and_facets(backend: Backend) {
        let app = spawn_app(backend).await;
        let r = app.post_json("/api/catalog/entities/by-refs", &json!({"entityRefs": ["component:default/basket-service", "component:default/missing", "user:alex.kim"], "fields": ["metadata.name"]})).await;
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["items"], json!([{"metadata": {"name": "basket-service"}}, null, {"metadata": {"name": "alex.kim"}}]));
        let v = app.get_json("/api/catalog/entity-facets?facet=spec.lifecycle&filter=kind=component", 200).await;
        assert_eq!(v["facets"]["spec.lifecycle"], json!([{"value": "production", "count": 16}, {"value": "experimental", "count": 2}, {"value": "deprecated", "count": 1}]));
        assert_eq!(app.get("/api/catalog/entity-facets").await.status(), 400);
    }

    async fn registration_is_write_through_and_persists(backend: Backend) {
        let app = spawn_app(backend).await;
        app.write("extra/a.yaml", &component_yaml("late-arrival", "group:payments"));
        let target = app.dir.path().join("extra").display().to_string();
        // Dry run stores nothing.
        let r = app.post_json("/api/catalog/locations?dryRun=true", &json!({"type": "file", "target": target})).await;
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["entities"][0]["metadata"]["name"], "late-arrival");
        assert_eq!(v["exists"], false);
        assert_eq!(app.get("/api/catalog/entities/by-name/component/default/late-arrival").await.status(), 404);
        // Registration: queryable when the response arrives.
        let r = app.post_json("/api/catalog/locations", &json!({"type": "file", "target": target})).await;
        assert_eq!(r.status(), 201);
        let v: Value = r.json().await.unwrap();
        let id = v["location"]["id"].as_str().unwrap().to_string();
        assert_eq!(v["location"]["type"], "directory");
        app.get_json("/api/catalog/entities/by-name/component/default/late-arrival", 200).await;
        // A second registration of the same target conflicts.
        assert_eq!(app.post_json("/api/catalog/locations", &json!({"type": "file", "target": target})).await.status(), 409);
        let locs = app.get_json("/api/catalog/locations", 200).await;
        assert!(locs.as_array().unwrap().iter().any(|l| l["data"]["id"] == id.as_str()));
        // Restart on the same database: the registered location and its entities are back.
        let url = app.database_url();
        let dir = app.stop().await;
        let locations = vec![example_catalog().display().to_string()];
        let app = spawn_app_with(backend, Options { locations, database_url: Some(url), dir: Some(dir), ..Default::default() }).await;
        app.get_json("/api/catalog/entities/by-name/component/default/late-arrival", 200).await;
        app.get_json(&format!("/api/catalog/locations/{id}"), 200).await;
        // Delete: entities leave at once.
        assert_eq!(app.delete(&format!("/api/catalog/locations/{id}")).await.status(), 204);
        assert_eq!(app.get("/api/catalog/entities/by-name/component/default/late-arrival").await.status(), 404);
        assert_eq!(app.delete(&format!("/api/catalog/locations/{id}")).await.status(), 404);
    }

    async fn registration_refuses_bad_locations(backend: Backend) {
        let app = spawn_app(backend).await;
        for (body, expect) in [
            (json!({"type": "ftp", "target": "x"}), "unknown location type"),
            (json!({"type": "file", "target": ""}), "must not be empty"),
            (json!({"type": "file", "target": "/etc/passwd"}), "registration_roots"),
            (json!({"target": "x"}), "type"),
        ] {
            let r = app.post_json("/api/catalog/locations", &body).await;
            assert_eq!(r.status(), 400, "{body}");
            let v: Value = r.json().await.unwrap();
            assert!(v["error"]["message"].as_str().unwrap().contains(expect), "{body}: {v}");
        }
        // Configured locations cannot be deleted through the API.
        let locs = app.get_json("/api/catalog/locations", 200).await;
        let id = locs[0]["data"]["id"].as_str().unwrap();
        assert_eq!(app.delete(&format!("/api/catalog/locations/{id}")).await.status(), 409);
    }

    async fn refresh_drops_orphans_and_keeps_entities_of_failed_reads(backend: Backend) {
        let dir = tempfile::tempdir().unwrap();
        write_file(dir.path(), "cat/one.yaml", &format!("{}---\n{}", component_yaml("keep-me", "group:a"), component_yaml("drop-me", "group:a")));
        let app = spawn_app_with(backend, Options { locations: vec!["cat".into()], dir: Some(dir), ..Default::default() }).await;
        let loc = app.get_json("/api/v1/catalog/locations", 200).await[0]["id"].as_str().unwrap().to_string();
        app.get_json("/api/catalog/entities/by-name/component/default/drop-me", 200).await;
        // The entity is removed from the file: it disappears on refresh.
        app.write("cat/one.yaml", &component_yaml("keep-me", "group:a"));
        assert_eq!(app.post_json(&format!("/api/v1/catalog/locations/{loc}/refresh"), &json!({})).await.status(), 204);
        assert_eq!(app.get("/api/catalog/entities/by-name/component/default/drop-me").await.status(), 404);
        // The file becomes invalid YAML: its entities stay, the error is listed.
        app.write("cat/one.yaml", "kind: [unterminated");
        app.post_json(&format!("/api/v1/catalog/locations/{loc}/refresh"), &json!({})).await;
        app.get_json("/api/catalog/entities/by-name/component/default/keep-me", 200).await;
        let errors = app.get_json("/api/v1/catalog/errors", 200).await;
        assert_eq!(errors["errors"][0]["kind"], "yaml", "{errors}");
        // The whole directory disappears: entities still kept, location error reported.
        std::fs::remove_dir_all(app.dir.path().join("cat")).unwrap();
        app.post_json(&format!("/api/v1/catalog/locations/{loc}/refresh"), &json!({})).await;
        app.get_json("/api/catalog/entities/by-name/component/default/keep-me", 200).await;
        let errors = app.get_json("/api/v1/catalog/errors", 200).await;
        assert!(errors["errors"].as_array().unwrap().iter().any(|e| e["kind"] == "location" && e["rule"] == "exists"), "{errors}");
        let status = &app.get_json("/api/v1/catalog/locations", 200).await[0];
        assert!(status["lastError"].as_str().unwrap().contains("does not exist"));
        assert!(status["lastSuccessAt"].as_i64().unwrap() < status["refreshedAt"].as_i64().unwrap() + 1);
    }

    async fn bad_files_are_reported_per_entity_and_the_rest_loads(backend: Backend) {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        write_file(d, "cat/good.yaml", &component_yaml("good", "group:a"));
        write_file(d, "cat/dup.yaml", &component_yaml("good", "group:b"));
        write_file(d, "cat/mixed.yaml", &format!("{}---\napiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: -bad-\nspec: {{type: 1}}\n---\nkind: Widget\napiVersion: backstage.io/v1alpha1\nmetadata: {{name: w}}\n", component_yaml("also-good", "group:a")));
        let mut bomb = String::from("a: &a [x,x,x,x,x,x,x,x,x,x]\n");
        for i in 1..14u8 {
            let (p, c) = ((b'a' + i - 1) as char, (b'a' + i) as char);
            bomb.push_str(&format!("{c}: &{c} [*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p}]\n"));
        }
        write_file(d, "cat/bomb.yaml", &bomb);
        write_file(d, "cat/big.yaml", &format!("# {}\n", "x".repeat(11 * 1024 * 1024)));
        write_file(d, "cat/loop.yaml", "apiVersion: backstage.io/v1alpha1\nkind: Location\nmetadata: {name: loop}\nspec: {target: ./loop.yaml}\n");
        let app = spawn_app_with(backend, Options { locations: vec!["cat".into()], dir: Some(dir), ..Default::default() }).await;
        app.get_json("/api/catalog/entities/by-name/component/default/good", 200).await;
        app.get_json("/api/catalog/entities/by-name/component/default/also-good", 200).await;
        let e = app.get_json("/api/catalog/entities/by-name/component/default/good", 200).await;
        assert!(e["metadata"]["annotations"]["backstage.io/managed-by-location"].as_str().unwrap().ends_with("dup.yaml"), "first location in reading order wins");
        let errors = app.get_json("/api/v1/catalog/errors", 200).await["errors"].as_array().unwrap().clone();
        let has = |kind: &str, file: &str| errors.iter().any(|e| e["kind"] == kind && e["location"].as_str().unwrap().ends_with(file));
        assert!(has("conflict", "good.yaml"), "{errors:?}");
        assert!(has("validation", "mixed.yaml"));
        assert!(has("yaml", "bomb.yaml"));
        assert!(has("too-large", "big.yaml"));
        assert!(has("cycle", "loop.yaml"));
        let bad = errors.iter().find(|e| e["field"] == "metadata.name" && e["kind"] == "validation").unwrap();
        assert_eq!(bad["document"], 2);
        assert_eq!(bad["entityRef"], "component:default/-bad-");
        assert!(errors.iter().any(|e| e["field"] == "kind" && e["message"].as_str().unwrap().contains("unknown kind \"Widget\"")));
    }

    async fn ownership_claims_follow_the_group_tree(backend: Backend) {
        let app = spawn_app(backend).await;
        let v = app.get_json("/api/v1/users/user:default%2Falex.kim/claims", 200).await;
        assert_eq!(v["claims"], json!(["user:default/alex.kim", "group:default/engineering", "group:default/payments", "group:default/payments-core"]));
        let v = app.get_json("/api/v1/users/stranger/claims", 200).await;
        assert_eq!(v["known"], false);
        assert_eq!(v["claims"], json!(["user:default/stranger"]));
        let app = spawn_app_with(backend, Options {
            locations: vec![example_catalog().display().to_string()],
            configure: Some(Box::new(|c| c.catalog.ownership = nova::config::OwnershipMode::Direct)),
            ..Default::default()
        }).await;
        let v = app.get_json("/api/v1/users/alex.kim/claims", 200).await;
        assert_eq!(v["claims"], json!(["user:default/alex.kim", "group:default/payments-core"]));
        let r = app.get("/api/v1/users/group:payments/claims").await;
        assert_eq!(r.status(), 400);
        assert_eq!(r.headers()["content-type"], "application/problem+json");
    }

    async fn operations_endpoints(backend: Backend) {
        let app = spawn_app(backend).await;
        app.get_json("/health", 200).await;
        let ready = app.get_json("/ready", 200).await;
        assert_eq!(ready["checks"]["catalog"]["entities"], 48);
        let r = app.client.get(app.url("/nope")).header("x-request-id", "trace-me-123").send().await.unwrap();
        assert_eq!(r.status(), 404);
        assert_eq!(r.headers()["x-request-id"], "trace-me-123");
        assert_eq!(r.headers()["content-type"], "application/problem+json");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["requestId"], "trace-me-123");
        app.get("/api/catalog/entities/by-name/component/default/payment-service").await;
        let metrics = app.get("/metrics").await.text().await.unwrap();
        // The recorder is process-wide and the other tests of this binary rebuild their own
        // catalogs concurrently, so the gauge's value is whichever app wrote last: only its
        // presence can be asserted here.
        assert!(metrics.contains("nova_catalog_entities{kind=\"Component\"} "), "{metrics}");
        assert!(metrics.contains("route=\"/api/catalog/entities/by-name/{kind}/{namespace}/{name}\""));
        assert!(metrics.contains("nova_jobs{kind=\"catalog.refresh\",state=\"queued\"}"));
        let doc = app.get_json("/api/v1/openapi.json", 200).await;
        assert!(doc["paths"]["/api/v1/catalog/errors"]["get"].is_object());
        let console = app.get("/?q=payment").await.text().await.unwrap();
        assert!(console.contains("Payment Service"));
    }

    async fn periodic_refresh_runs_as_a_job(backend: Backend) {
        let dir = tempfile::tempdir().unwrap();
        write_file(dir.path(), "c.yaml", &component_yaml("first", "group:a"));
        let app = spawn_app_with(backend, Options {
            locations: vec!["c.yaml".into()],
            dir: Some(dir),
            configure: Some(Box::new(|c| c.catalog.refresh_interval = Duration::from_secs(1))),
            ..Default::default()
        }).await;
        app.write("c.yaml", &component_yaml("second", "group:a"));
        for _ in 0..100 {
            if app.get("/api/catalog/entities/by-name/component/default/second").await.status() == 200 {
                assert_eq!(app.get("/api/catalog/entities/by-name/component/default/first").await.status(), 404);
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the refresh job did not pick up the change");
    }
}
