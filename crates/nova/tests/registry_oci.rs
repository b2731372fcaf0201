//! The image view against real CNCF distribution registries (anonymous, htpasswd basic auth,
//! bearer tokens from an RS256 issuer), through Nova's HTTP API and page: single- and
//! multi-arch images in Docker v2 and OCI formats, labels, sizes, consolidated repositories,
//! paging over thousands of tags, blob redirects, degradation when the registry fails, and bad
//! input that must stay confined to one component.
//!
//! The stale banner is checked here in the page's HTML; a browser test of it follows once the
//! console's browser harness (Chromium + playwright-core) lands.

mod support;

use std::time::Duration;

use nova::flags::{REGISTRY_IMAGE_VIEW, Rollout};
use serde_json::{Value, json};
use support::registry::{Auth, ImageSpec, Redirect, TestRegistry, component, nova, settled};
use support::*;

const API: &str = "/api/v1/components/component/default";

fn digests(v: &Value) -> Vec<String> {
    v["images"].as_array().unwrap().iter().map(|i| i["digest"].as_str().unwrap().to_string()).collect()
}

fn tags(v: &Value) -> Vec<Vec<String>> {
    v["images"].as_array().unwrap().iter().map(|i| i["tags"].as_array().unwrap().iter().map(|t| t.as_str().unwrap().to_string()).collect()).collect()
}

on_both_backends! {
    async fn images_of_every_format_with_labels_sizes_and_platforms(backend: Backend) {
        let Some(reg) = TestRegistry::start(Auth::Anonymous).await else { return };
        let repo = "payments/api";
        let old = reg.push_image(repo, &["v1.0.0"], &ImageSpec::new("2026-01-01T00:00:00Z", "1111111aaaaaaa")).await;
        let mut oci = ImageSpec::new("2026-03-01T00:00:00Z", "2222222bbbbbbb");
        oci.oci = true;
        oci.layer_sizes = vec![5000, 10, 20];
        let new = reg.push_image(repo, &["v1.1.0", "latest"], &oci).await;
        let mut amd = ImageSpec::new("2026-05-01T00:00:00Z", "3333333ccccccc");
        amd.oci = true;
        let mut arm = amd.clone();
        arm.architecture = "arm64".into();
        arm.variant = Some("v8".into());
        arm.layer_sizes = vec![999];
        arm.salt = 99;
        let amd = reg.push_image(repo, &[], &amd).await;
        let arm = reg.push_image(repo, &[], &arm).await;
        let index = reg.push_index(repo, &["v2.0.0"], &[(&amd, "amd64", None), (&arm, "arm64", Some("v8"))], true).await;
        let mut d1 = ImageSpec::new("2026-04-01T00:00:00Z", "4444444ddddddd");
        d1.salt = 7;
        let d1 = reg.push_image(repo, &[], &d1).await;
        let list = reg.push_index(repo, &["v1.5.0-docker"], &[(&d1, "amd64", None)], false).await;

        let catalog = component("payments-api", "payments-core", None, &[("nova.dev/image-repository", "local/payments/api")]);
        let app = nova(backend, vec![("local", reg.config(None))], &catalog, |_| {}).await;
        let path = format!("{API}/payments-api/images");
        let v = settled(&app, &path).await;
        let r = &v["repositories"][0];
        assert_eq!(r["status"]["state"], "fresh", "{v:#}");
        assert_eq!((r["registry"].as_str(), r["registryType"].as_str(), r["repository"].as_str()), (Some("local"), Some("oci"), Some(repo)));
        assert_eq!(r["provisioning"]["origin"], "external");
        // Newest first by creation time (the Distribution API has no push time); digests are
        // the ones pushed, so no registry down-converted a manifest to schema 1.
        assert_eq!(v["total"], 4);
        assert_eq!(digests(&v), vec![index.digest.clone(), list.digest.clone(), new.digest.clone(), old.digest.clone()]);
        assert_eq!(tags(&v), vec![vec!["v2.0.0"], vec!["v1.5.0-docker"], vec!["latest", "v1.1.0"], vec!["v1.0.0"]]);
        let img = |i: usize| &v["images"][i];
        // Sizes: the sum of layer sizes (over every platform of an index).
        assert_eq!(img(3)["sizeBytes"], 1234);
        assert_eq!(img(2)["sizeBytes"], 5030);
        assert_eq!(img(0)["sizeBytes"], amd.size + arm.size);
        // Platforms: the attestation entry of the OCI index is not one.
        let platforms: Vec<(String, String, Value)> = img(0)["platforms"].as_array().unwrap().iter()
            .map(|p| (p["os"].as_str().unwrap().into(), p["architecture"].as_str().unwrap().into(), p["variant"].clone())).collect();
        assert_eq!(platforms, vec![("linux".into(), "amd64".into(), Value::Null), ("linux".into(), "arm64".into(), Value::from("v8"))]);
        assert_eq!(img(3)["platforms"][0]["architecture"], "amd64");
        assert_eq!(img(0)["mediaType"], "application/vnd.oci.image.index.v1+json");
        assert_eq!(img(1)["mediaType"], "application/vnd.docker.distribution.manifest.list.v2+json");
        assert_eq!(img(2)["mediaType"], "application/vnd.oci.image.manifest.v1+json");
        assert_eq!(img(3)["mediaType"], "application/vnd.docker.distribution.manifest.v2+json");
        // Labels and creation time from the config blob (an index: its amd64 image's).
        assert_eq!(img(3)["labels"]["revision"], "1111111aaaaaaa");
        assert_eq!(img(3)["labels"]["source"], "https://git.example.com/payments/api");
        assert_eq!(img(3)["labels"]["version"], "1.2.3");
        assert_eq!(img(0)["labels"]["revision"], "3333333ccccccc");
        assert_eq!(img(3)["createdAt"], 1_767_225_600_000i64);
        assert!(img(3)["pushedAt"].is_null());
        // No scan data: "not scanned", never an empty success.
        assert_eq!(img(3)["scan"]["status"], "not-scanned");
        assert!(img(3)["scan"]["counts"].is_null());
        assert_eq!(img(3)["pullReference"], format!("127.0.0.1:{}/{repo}@{}", reg.port, old.digest));

        // Filter by tag text, order, paging.
        let f = app.get_json(&format!("{path}?tag=LATE"), 200).await;
        assert_eq!(digests(&f), vec![new.digest.clone()]);
        let o = app.get_json(&format!("{path}?order=oldest&limit=1&offset=1"), 200).await;
        assert_eq!((o["total"].as_u64(), digests(&o)), (Some(4), vec![new.digest.clone()]));
        let e = app.get_json(&format!("{path}?limit=0"), 400).await;
        assert_eq!(e["field"], "limit");

        // The findings drill-down of a registry without scans.
        let fnd = app.get_json(&format!("{path}/{}/findings", old.digest), 200).await;
        assert_eq!((fnd["state"].as_str(), fnd["scan"]["status"].as_str()), (Some("fresh"), Some("not-scanned")));
        assert_eq!(fnd["findings"].as_array().unwrap().len(), 0);
        let missing = format!("sha256:{}", "0".repeat(64));
        app.get_json(&format!("{path}/{missing}/findings"), 404).await;
        app.get_json(&format!("{path}/sha256:nothex/findings"), 400).await;

        // The page works without JavaScript: a filter form, pull references, "not scanned".
        let html = app.get(&"/catalog/default/component/payments-api/images?tag=v1".to_string()).await;
        assert_eq!(html.status(), 200);
        let html = html.text().await.unwrap();
        assert!(html.contains("<form method=\"get\""), "{html}");
        assert!(html.contains("not scanned"));
        assert!(html.contains(&format!("127.0.0.1:{}/{repo}@{}", reg.port, old.digest)));
        assert!(!html.contains("Stale"));
        assert!(!html.contains("v2.0.0"), "the filter applies to the page");

        // The API is in the OpenAPI document.
        let doc = app.get_json("/api/v1/openapi.json", 200).await;
        assert!(doc["paths"]["/api/v1/components/{kind}/{namespace}/{name}/images"].is_object());
        assert!(doc["paths"]["/api/v1/registry/drift"].is_object());
    }

    async fn consolidated_repositories_show_each_component_its_prefix_per_environment(backend: Backend) {
        let Some(reg) = TestRegistry::start(Auth::Anonymous).await else { return };
        let mut spec = ImageSpec::new("2026-02-01T00:00:00Z", "abc");
        let b1 = reg.push_image("data-platform-dev", &["backend-v1.0.0"], &spec).await;
        spec.salt = 1;
        spec.created = "2026-02-02T00:00:00Z".into();
        let b2 = reg.push_image("data-platform-dev", &["backend-v1.1.0", "frontend-v9"], &spec).await;
        spec.salt = 2;
        let f1 = reg.push_image("data-platform-dev", &["frontend-v1.0.0"], &spec).await;
        spec.salt = 3;
        let p1 = reg.push_image("data-platform-prod", &["backend-v1.0.0"], &spec).await;
        let catalog = [
            component("backend", "data-team", None, &[("nova.dev/image-repository", "dev=local/data-platform-dev, prod=local/data-platform-prod"), ("nova.dev/image-tag-prefix", "backend-")]),
            component("frontend", "data-team", None, &[("nova.dev/image-repository", "dev=local/data-platform-dev"), ("nova.dev/image-tag-prefix", "frontend-")]),
        ]
        .concat();
        let app = nova(backend, vec![("local", reg.config(None))], &catalog, |_| {}).await;
        let v = settled(&app, &format!("{API}/backend/images")).await;
        assert_eq!(v["tagPrefix"], "backend-");
        assert_eq!(v["total"], 3);
        let mut seen: Vec<(String, String, Vec<String>)> = v["images"].as_array().unwrap().iter()
            .map(|i| (i["environment"].as_str().unwrap().into(), i["digest"].as_str().unwrap().into(), i["tags"].as_array().unwrap().iter().map(|t| t.as_str().unwrap().to_string()).collect()))
            .collect();
        seen.sort();
        assert_eq!(seen, vec![
            ("dev".into(), b1.digest.clone(), vec!["v1.0.0".into()]),
            ("dev".into(), b2.digest.clone(), vec!["v1.1.0".into()]),
            ("prod".into(), p1.digest.clone(), vec!["v1.0.0".into()]),
        ]);
        let prod = app.get_json(&format!("{API}/backend/images?environment=prod"), 200).await;
        assert_eq!(digests(&prod), vec![p1.digest.clone()]);
        let front = settled(&app, &format!("{API}/frontend/images")).await;
        let mut fd = digests(&front);
        fd.sort();
        let mut expected = vec![b2.digest.clone(), f1.digest.clone()];
        expected.sort();
        assert_eq!(fd, expected);
        // Another component's image is not this one's to drill into.
        app.get_json(&format!("{API}/frontend/images/{}/findings", b1.digest), 404).await;
    }

    async fn a_failing_registry_leaves_stale_data_and_a_missing_repository_says_so(backend: Backend) {
        let Some(mut reg) = TestRegistry::start(Auth::Anonymous).await else { return };
        let img = reg.push_image("team/svc", &["v1"], &ImageSpec::new("2026-02-01T00:00:00Z", "abc")).await;
        let catalog = [
            component("svc", "team", None, &[("nova.dev/image-repository", "local/team/svc")]),
            component("ghost", "team", None, &[("nova.dev/image-repository", "local/team/does-not-exist")]),
        ]
        .concat();
        let app = nova(backend, vec![("local", reg.config(None))], &catalog, |_| {}).await;
        let path = format!("{API}/svc/images");
        let v = settled(&app, &path).await;
        assert_eq!(v["repositories"][0]["status"]["state"], "fresh");
        let ghost = settled(&app, &format!("{API}/ghost/images")).await;
        assert_eq!(ghost["repositories"][0]["status"]["state"], "not-found", "{ghost:#}");
        assert!(ghost["repositories"][0]["status"]["message"].as_str().unwrap().contains("does not exist"));
        assert_eq!(ghost["total"], 0);

        reg.stop();
        let r = app.post_json(&format!("{path}/refresh"), &json!({})).await;
        assert_eq!(r.status(), 202);
        // Rate-limited: a second request at once is refused with Retry-After.
        let r = app.post_json(&format!("{path}/refresh"), &json!({})).await;
        assert_eq!(r.status(), 429);
        assert!(r.headers().contains_key("retry-after"));
        let fetched = v["repositories"][0]["status"]["fetchedAt"].clone();
        let mut stale = Value::Null;
        for _ in 0..200 {
            stale = app.get_json(&path, 200).await;
            if stale["repositories"][0]["status"]["state"] == "stale" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let s = &stale["repositories"][0]["status"];
        assert_eq!(s["state"], "stale", "{stale:#}");
        assert_eq!(s["reason"], "unavailable");
        assert_eq!(s["fetchedAt"], fetched);
        assert_eq!(digests(&stale), vec![img.digest.clone()], "the last known images stay");
        let html = app.get("/catalog/default/component/svc/images").await.text().await.unwrap();
        assert!(html.contains("Stale:") && html.contains("unavailable"), "{html}");
        // The drill-down also degrades instead of failing.
        let f = app.get_json(&format!("{path}/{}/findings", img.digest), 200).await;
        assert_eq!(f["state"], "unavailable", "the registry is down: said so, not an error page: {f:#}");
        // The HTML refresh form redirects back, saying it was too soon.
        let token = app.token_for(ADMIN_USER).await;
        let r = app.client.post(app.url("/catalog/default/component/svc/images/refresh")).header("origin", &app.base).bearer_auth(token).send().await.unwrap();
        assert_eq!(r.status(), 303);
        assert!(r.headers()["location"].to_str().unwrap().ends_with("?refresh=too-soon"));
    }
}

/// A Trivy-style SARIF report with one critical and one medium finding (sample data).
const REPORT: &str = r#"{"version":"2.1.0","runs":[{"tool":{"driver":{"name":"Trivy","rules":[
  {"id":"CVE-2026-1000","shortDescription":{"text":"libexample: heap overflow"},"helpUri":"https://avd.aquasec.com/nvd/cve-2026-1000","properties":{"security-severity":"9.8","tags":["vulnerability","CRITICAL"]}},
  {"id":"CVE-2026-2000","shortDescription":{"text":"zlib: slow inflate"},"properties":{"security-severity":"5.5"}}]}},
  "results":[
  {"ruleId":"CVE-2026-1000","level":"error","message":{"text":"Package: libexample\nInstalled Version: 1.0\nFixed Version: 1.1"}},
  {"ruleId":"CVE-2026-2000","level":"warning","message":{"text":"Package: zlib\nInstalled Version: 1.2.13"}}]}]}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sarif_reports_attached_as_referrers_are_the_scan() {
    let Some(reg) = TestRegistry::start(Auth::Basic).await else { return };
    let repo = "shop/web";
    let scanned = reg.push_image(repo, &["v1.0.0"], &ImageSpec::new("2026-01-01T00:00:00Z", "aaa")).await;
    let mut later = ImageSpec::new("2026-02-01T00:00:00Z", "bbb");
    later.salt = 3;
    let unscanned = reg.push_image(repo, &["v1.1.0"], &later).await;
    let report = reg.attach_sarif(repo, &scanned, REPORT.as_bytes(), "2026-01-02T00:00:00Z").await;

    let catalog = component("web", "shop", None, &[("nova.dev/image-repository", "local/shop/web")]);
    let app = nova(Backend::Sqlite, vec![("local", reg.config(None))], &catalog, |_| {}).await;
    let path = format!("{API}/web/images");
    let v = settled(&app, &path).await;
    assert_eq!(v["repositories"][0]["status"]["state"], "fresh", "{v:#}");
    // The fallback tag is not an image.
    assert_eq!(digests(&v), vec![unscanned.digest.clone(), scanned.digest.clone()], "{v:#}");
    assert_eq!(v["total"], 2);
    let scan = &v["images"][1]["scan"];
    assert_eq!(scan["status"], "complete", "{scan}");
    assert_eq!((scan["counts"]["critical"].as_u64(), scan["counts"]["medium"].as_u64(), scan["counts"]["high"].as_u64()), (Some(1), Some(1), Some(0)));
    assert_eq!(scan["completedAt"], 1_767_312_000_000i64);
    assert!(scan["description"].as_str().unwrap().contains("Trivy"), "{scan}");
    assert_eq!(scan["report"], report.as_str());
    assert_eq!(v["images"][0]["scan"]["status"], "not-scanned");

    let f = app.get_json(&format!("{path}/{}/findings", scanned.digest), 200).await;
    let ids: Vec<&str> = f["findings"].as_array().unwrap().iter().map(|x| x["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["CVE-2026-1000", "CVE-2026-2000"], "{f:#}");
    assert_eq!((f["findings"][0]["severity"].as_str(), f["findings"][0]["package"].as_str(), f["findings"][0]["fixedVersion"].as_str()), (Some("CRITICAL"), Some("libexample"), Some("1.1")));
    let html = app.get("/catalog/default/component/web/images").await.text().await.unwrap();
    let link = format!("/catalog/default/component/web/images?findings={}#findings", scanned.digest);
    assert!(html.contains(&link), "the page links the findings: {html}");
    let html = app.get(&format!("/catalog/default/component/web/images?findings={}", scanned.digest)).await.text().await.unwrap();
    let table = &html[html.find("id=\"findings\"").expect("a findings section")..];
    let (critical, medium) = (table.find("CVE-2026-1000").unwrap(), table.find("CVE-2026-2000").unwrap());
    assert!(critical < medium, "most severe first");
    assert!(table.contains("libexample") && table.contains("severity-critical") && table.contains("1.1"), "{table}");
    let bad = app.get("/catalog/default/component/web/images?findings=sha256:nothex").await;
    assert_eq!(bad.status(), 400, "a bad digest names the field");
    assert!(bad.text().await.unwrap().contains("findings"));

    // A newer report replaces the scan at the next refresh.
    let clean = r#"{"version":"2.1.0","runs":[{"tool":{"driver":{"name":"Trivy","rules":[]}},"results":[]}]}"#;
    let newer = reg.attach_sarif(repo, &scanned, clean.as_bytes(), "2026-03-01T00:00:00Z").await;
    assert_eq!(app.post_json(&format!("{path}/refresh"), &json!({})).await.status(), 202);
    let mut now = Value::Null;
    for _ in 0..200 {
        now = app.get_json(&path, 200).await;
        if now["images"][1]["scan"]["report"] == newer.as_str() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(now["images"][1]["scan"]["report"], newer.as_str(), "{now:#}");
    assert_eq!(now["images"][1]["scan"]["counts"]["critical"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_tokens_from_the_challenge_with_scopes() {
    let Some(reg) = TestRegistry::start(Auth::Token).await else { return };
    let img = reg.push_image("payments/api", &["v1"], &ImageSpec::new("2026-02-01T00:00:00Z", "abc")).await;
    let catalog = component("api", "payments", None, &[("nova.dev/image-repository", "secure/payments/api")]);
    let app = nova(Backend::Sqlite, vec![("secure", reg.config(None))], &catalog, |_| {}).await;
    let v = settled(&app, &format!("{API}/api/images")).await;
    assert_eq!(v["repositories"][0]["status"]["state"], "fresh", "{v:#}");
    assert_eq!(digests(&v), vec![img.digest.clone()]);
    assert_eq!(v["images"][0]["labels"]["revision"], "abc", "config blob read with the token");
    let log = reg.issuer_log.lock().unwrap().clone();
    assert!(log.iter().any(|(user, scopes)| user == "nova-reader" && scopes == &["repository:payments/api:pull".to_string()]), "{log:?}");
    assert!(log.iter().all(|(_, scopes)| scopes.iter().all(|s| !s.contains("push"))), "Nova only ever asks to pull: {log:?}");

    // Wrong credentials: a clear, categorized reason; never a server error.
    let bad = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(bad.path(), "wrong").unwrap();
    let app = nova(Backend::Sqlite, vec![("secure", reg.config(Some(bad.path())))], &catalog, |_| {}).await;
    let v = settled(&app, &format!("{API}/api/images")).await;
    let s = &v["repositories"][0]["status"];
    assert_eq!((s["state"].as_str(), s["reason"].as_str()), (Some("unavailable"), Some("denied")), "{v:#}");
    assert!(!s["message"].as_str().unwrap().contains("wrong"), "no secret in messages");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth_and_blob_redirects_without_credentials() {
    let Some(reg) = TestRegistry::start_with(Auth::Basic, Redirect::LocalCdn).await else { return };
    let img = reg.push_image("team/app", &["v1"], &ImageSpec::new("2026-02-01T00:00:00Z", "feedbeef")).await;
    let catalog = component("app", "team", None, &[("nova.dev/image-repository", "basic/team/app")]);
    let app = nova(Backend::Sqlite, vec![("basic", reg.config(None))], &catalog, |_| {}).await;
    let v = settled(&app, &format!("{API}/app/images")).await;
    assert_eq!(v["repositories"][0]["status"]["state"], "fresh", "{v:#}");
    assert_eq!(digests(&v), vec![img.digest.clone()]);
    assert_eq!(v["images"][0]["labels"]["revision"], "feedbeef", "the config blob came through the redirect");
    let cdn = reg.cdn_log.lock().unwrap().clone();
    assert!(!cdn.is_empty(), "blobs were redirected");
    assert!(cdn.iter().all(|(_, had_auth)| !had_auth), "credentials went to the CDN: {cdn:?}");

    let bad = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(bad.path(), "wrong").unwrap();
    let app = nova(Backend::Sqlite, vec![("basic", reg.config(Some(bad.path())))], &catalog, |_| {}).await;
    let v = settled(&app, &format!("{API}/app/images")).await;
    assert_eq!(v["repositories"][0]["status"]["reason"], "denied", "{v:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_to_metadata_addresses_are_refused() {
    let Some(reg) = TestRegistry::start_with(Auth::Anonymous, Redirect::To("http://169.254.169.254/".into())).await else { return };
    let img = reg.push_image("team/app", &["v1"], &ImageSpec::new("2026-02-01T00:00:00Z", "abc")).await;
    let catalog = component("app", "team", None, &[("nova.dev/image-repository", "local/team/app")]);
    let app = nova(Backend::Sqlite, vec![("local", reg.config(None))], &catalog, |_| {}).await;
    let v = settled(&app, &format!("{API}/app/images")).await;
    // The repository is read; the image whose config blob points at the metadata service says
    // why its details are missing.
    assert_eq!(v["repositories"][0]["status"]["state"], "fresh", "{v:#}");
    assert_eq!(digests(&v), vec![img.digest.clone()]);
    let error = v["images"][0]["error"].as_str().unwrap();
    assert!(error.contains("refused") && error.contains("metadata"), "{error}");
    assert!(v["images"][0]["labels"]["revision"].is_null());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_tags_page_without_a_cap() {
    let Some(reg) = TestRegistry::start(Auth::Anonymous).await else { return };
    let img = reg.push_image("big/repo", &["seed"], &ImageSpec::new("2026-02-01T00:00:00Z", "abc")).await;
    const N: usize = 5_000;
    let (body, media_type) = (&img.body, &img.media_type);
    let reg_ref = &reg;
    futures_util::stream::iter(0..N)
        .map(|i| async move { reg_ref.put_manifest("big/repo", &format!("build-{i:05}"), media_type, body).await })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
    // A second image so that the tags spread over more than one row.
    let other = reg.push_image("big/repo", &["other"], &ImageSpec::new("2026-03-01T00:00:00Z", "def")).await;
    let catalog = component("big", "team", None, &[("nova.dev/image-repository", "local/big/repo")]);
    let app = nova(Backend::Sqlite, vec![("local", reg.config(None))], &catalog, |_| {}).await;
    let v = settled(&app, &format!("{API}/big/images?limit=1")).await;
    assert_eq!(v["repositories"][0]["status"]["state"], "fresh", "{v:#}");
    assert_eq!(v["total"], 2);
    assert_eq!(digests(&v), vec![other.digest.clone()]);
    let page = app.get_json(&format!("{API}/big/images?offset=1&limit=1"), 200).await;
    assert_eq!(page["images"][0]["tags"].as_array().unwrap().len(), N + 1, "every tag of the image is listed");
    let f = app.get_json(&format!("{API}/big/images?tag=build-04999"), 200).await;
    assert_eq!(digests(&f), vec![img.digest.clone()]);
}

use futures_util::StreamExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_annotations_stay_on_their_component() {
    let Some(reg) = TestRegistry::start(Auth::Anonymous).await else { return };
    reg.push_image("good/repo", &["v1"], &ImageSpec::new("2026-02-01T00:00:00Z", "abc")).await;
    let long_ok = format!("v{}", "1".repeat(127));
    let catalog = [
        component("good", "team", None, &[("nova.dev/image-repository", "local/good/repo"), ("nova.dev/image-tag-prefix", &long_ok[..127])]),
        component("unknown-registry", "team", None, &[("nova.dev/image-repository", "nowhere/good/repo")]),
        component("bad-arn", "team", None, &[("amazon.com/ecr-repository-arn", "arn:aws:ecr:eu-west-1:12:repository/x")]),
        component("upper", "team", None, &[("nova.dev/image-repository", "local/Good/Repo")]),
        component("dotdot", "team", None, &[("nova.dev/image-repository", "local/good/../etc")]),
        component("long-prefix", "team", None, &[("nova.dev/image-repository", "local/good/repo"), ("nova.dev/image-tag-prefix", &format!("{long_ok}x"))]),
        component("no-ecr", "team", None, &[("amazon.com/ecr-repository-name", "payments")]),
        component("plain", "team", None, &[]),
    ]
    .concat();
    let app = nova(Backend::Sqlite, vec![("local", reg.config(None))], &catalog, |_| {}).await;
    for (name, rule) in [
        ("unknown-registry", "\"nowhere\" is not in the configuration"),
        ("bad-arn", "12 digits"),
        ("upper", "lowercase"),
        ("dotdot", "'..'"),
        ("long-prefix", "1 to 127"),
        ("no-ecr", "no ECR registry is configured"),
    ] {
        let e = app.get_json(&format!("{API}/{name}/images"), 400).await;
        assert_eq!(e["field"], "metadata.annotations", "{name}");
        assert!(e["detail"].as_str().unwrap().contains(rule), "{name}: {e:#}");
        let page = app.get(&format!("/catalog/default/component/{name}/images")).await;
        assert_eq!(page.status(), 200, "the component page still renders");
        let page = page.text().await.unwrap();
        assert!(page.contains("annotations") && page.contains("banner error"), "{page}");
    }
    let plain = app.get_json(&format!("{API}/plain/images"), 404).await;
    assert!(plain["detail"].as_str().unwrap().contains("links no image repository"));
    app.get_json(&format!("{API}/nobody/images"), 404).await;
    app.get_json("/api/v1/components/api/default/good/images", 400).await;
    // The rest of the catalog is unaffected.
    let v = settled(&app, &format!("{API}/good/images")).await;
    assert_eq!(v["repositories"][0]["status"]["state"], "fresh");
    let drift = app.get_json("/api/v1/registry/drift", 200).await;
    let invalid: Vec<&str> = drift["items"].as_array().unwrap().iter().filter(|i| i["kind"] == "invalid-link").map(|i| i["components"][0].as_str().unwrap()).collect();
    assert_eq!(invalid.len(), 6, "{drift:#}");
}

/// A registry double for answers a real registry does not give (HTML instead of JSON, a
/// manifest larger than the cap): it follows the Distribution API's paths and nothing else.
async fn misbehaving_registry() -> String {
    use axum::http::{StatusCode, header};
    use axum::response::IntoResponse;
    use axum::routing::get;
    use std::sync::atomic::{AtomicUsize, Ordering};
    static FLAKY: AtomicUsize = AtomicUsize::new(0);
    let app = axum::Router::new()
        // Two 503s, then an answer: retried with backoff, so the refresh succeeds.
        .route(
            "/v2/flaky/tags/list",
            get(|| async {
                if FLAKY.fetch_add(1, Ordering::SeqCst) < 2 {
                    return StatusCode::SERVICE_UNAVAILABLE.into_response();
                }
                axum::Json(serde_json::json!({"name": "flaky", "tags": []})).into_response()
            }),
        )
        // Always 429: reported as rate-limited after the configured attempts.
        .route("/v2/busy/tags/list", get(|| async { (StatusCode::TOO_MANY_REQUESTS, [(header::RETRY_AFTER, "0")]).into_response() }))
        .route("/v2/", get(|| async { "{}" }))
        .route("/v2/html/tags/list", get(|| async { ([(header::CONTENT_TYPE, "text/html")], "<html>maintenance</html>").into_response() }))
        .route("/v2/huge/tags/list", get(|| async { axum::Json(serde_json::json!({"name": "huge", "tags": ["v1"]})).into_response() }))
        .route(
            "/v2/huge/manifests/v1",
            get(|| async { ([(header::CONTENT_TYPE, "application/vnd.oci.image.manifest.v1+json")], vec![b' '; 6 * 1024 * 1024]).into_response() }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_that_are_not_json_or_too_large_are_contained() {
    let url = misbehaving_registry().await;
    let def: nova::registry::RegistryDef = toml::from_str(&format!("type = \"oci\"\nurl = \"{url}\"\n")).unwrap();
    let catalog = [
        component("html", "team", None, &[("nova.dev/image-repository", "odd/html")]),
        component("huge", "team", None, &[("nova.dev/image-repository", "odd/huge")]),
        component("flaky", "team", None, &[("nova.dev/image-repository", "odd/flaky")]),
        component("busy", "team", None, &[("nova.dev/image-repository", "odd/busy")]),
    ]
    .concat();
    let app = nova(Backend::Sqlite, vec![("odd", def)], &catalog, |_| {}).await;
    let v = settled(&app, &format!("{API}/html/images")).await;
    assert_eq!((v["repositories"][0]["status"]["state"].as_str(), v["repositories"][0]["status"]["reason"].as_str()), (Some("unavailable"), Some("bad-response")), "{v:#}");
    let v = settled(&app, &format!("{API}/huge/images")).await;
    let s = &v["repositories"][0]["status"];
    assert_eq!((s["state"].as_str(), s["reason"].as_str()), (Some("unavailable"), Some("bad-response")), "{v:#}");
    assert!(s["message"].as_str().unwrap().contains("max_manifest_bytes"), "{v:#}");
    let v = settled(&app, &format!("{API}/flaky/images")).await;
    assert_eq!(v["repositories"][0]["status"]["state"], "fresh", "503s are retried: {v:#}");
    let v = settled(&app, &format!("{API}/busy/images")).await;
    assert_eq!(v["repositories"][0]["status"]["reason"], "rate-limited", "{v:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flag_and_registry_check_commands() {
    let Some(reg) = TestRegistry::start(Auth::Basic).await else { return };
    let dir = tempfile::tempdir().unwrap();
    let password = write_file(dir.path(), "password", support::registry::READER.1);
    let db = format!("sqlite://{}/nova.db", dir.path().display());
    let nova_cmd = || std::process::Command::new(env!("CARGO_BIN_EXE_nova"));
    // The view's kill switch is the feature flag registry.image-view.
    let out = nova_cmd().args(["flags", "set", "registry.image-view", "--off", "--database-url", &db]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = nova_cmd().args(["flags", "list", "--database-url", &db]).output().unwrap();
    let listed = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(listed.lines().any(|l| l.contains("registry.image-view") && l.contains("off")), "{listed}");

    let config = |pw: &std::path::Path| {
        write_file(
            dir.path(),
            "nova.toml",
            &format!("[registries.basic]\ntype = \"oci\"\nurl = \"{}\"\nusername = \"{}\"\npassword = {{ file = \"{}\" }}\n", reg.url, support::registry::READER.0, pw.display()),
        )
    };
    let out = nova_cmd().args(["registry", "check", "--config"]).arg(config(&password)).output().unwrap();
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("pass  oci  basic\n"), "{}", String::from_utf8_lossy(&out.stdout));
    let wrong = write_file(dir.path(), "wrong", "nope");
    let out = nova_cmd().args(["registry", "check", "--config"]).arg(config(&wrong)).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.starts_with("FAIL  oci  basic\n      denied: ") && table.contains("      fix: check registries.basic.username"), "{table}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_feature_flag_turns_the_view_off_and_on() {
    let Some(reg) = TestRegistry::start(Auth::Anonymous).await else { return };
    reg.push_image("team/app", &["v1"], &ImageSpec::new("2026-02-01T00:00:00Z", "abc")).await;
    let catalog = component("app", "team", None, &[("nova.dev/image-repository", "local/team/app")]);
    let app = nova(Backend::Sqlite, vec![("local", reg.config(None))], &catalog, |_| {}).await;
    settled(&app, &format!("{API}/app/images")).await;
    app.state.flags.set(REGISTRY_IMAGE_VIEW, Rollout::off(), "test").await.unwrap();
    let e = app.get_json(&format!("{API}/app/images"), 404).await;
    assert!(e["detail"].as_str().unwrap().contains("switched off"));
    let tab = app.get("/catalog/default/component/app/images").await.text().await.unwrap();
    assert!(tab.contains("switched off"), "the tab says why: {tab}");
    app.state.flags.set(REGISTRY_IMAGE_VIEW, Rollout::on(), "test").await.unwrap();
    app.get_json(&format!("{API}/app/images"), 200).await;
}
