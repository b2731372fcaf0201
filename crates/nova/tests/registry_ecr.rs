//! The image view against ECR, with moto's server standing in for AWS (the real AWS SDK
//! talks to it over HTTP): every annotation spelling, images with tags and push times,
//! multi-arch platforms, scan findings (basic and enhanced) with the list's severity counts,
//! repository tags for the drift report and the provisioning origin, `nova registry drift`.
//!
//! What the tests do not lean on, because moto does it differently from ECR: image digests
//! (always passed explicitly to `PutImage`), sizes (moto reports the config's size), the scan
//! summary in `DescribeImages` (moto has none: counts come from the findings drill-down
//! here, from `DescribeImages` on real ECR — unit-tested in `registry::ecr`), pagination
//! (moto answers in one page), and `aws:servicecatalog:*` tags (AWS reserves the `aws:` prefix;
//! moto lets a test set them, which real AWS does only through Service Catalog).
#![cfg(feature = "aws")]

mod support;

use aws_sdk_ecr::types::{ImageIdentifier, Tag};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use support::registry::{component, nova, settled};
use support::*;

const API: &str = "/api/v1/components/component/default";
const ACCOUNT: &str = "123456789012";
const REGION: &str = "eu-west-1";

fn moto() -> Option<String> {
    require("moto (ECR stand-in)", std::env::var("NOVA_TEST_MOTO_URL").ok(), "pip install 'moto[server]'; scripts/test starts it")
}

async fn ecr(url: &str) -> aws_sdk_ecr::Client {
    let creds = aws_credential_types::Credentials::new("testing", "testing", None, None, "tests");
    let conf = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(REGION))
        .endpoint_url(url)
        .credentials_provider(creds)
        .load()
        .await;
    aws_sdk_ecr::Client::new(&conf)
}

fn registry_def(url: &str) -> nova::registry::RegistryDef {
    toml::from_str(&format!("type = \"ecr\"\nregion = \"{REGION}\"\naccount_id = \"{ACCOUNT}\"\nendpoint_url = \"{url}\"\n")).unwrap()
}

/// A unique repository name: moto's state is shared by every test.
fn unique(base: &str) -> String {
    format!("{base}-{}", &uuid::Uuid::new_v4().simple().to_string()[..8])
}

/// Puts an image manifest (passing its real digest, which moto would otherwise invent).
async fn put(client: &aws_sdk_ecr::Client, repo: &str, tag: &str, manifest: &Value, media_type: &str) -> String {
    let body = serde_json::to_string(manifest).unwrap();
    let digest = format!("sha256:{}", hex::encode(Sha256::digest(body.as_bytes())));
    client.put_image().repository_name(repo).image_manifest(&body).image_manifest_media_type(media_type).image_tag(tag).image_digest(&digest).send().await.unwrap();
    digest
}

fn image_manifest(seed: &str) -> Value {
    let d = |s: &str| format!("sha256:{}", hex::encode(Sha256::digest(format!("{seed}{s}").as_bytes())));
    json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
           "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": d("config"), "size": 100},
           "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d("layer"), "size": 1000}]})
}

on_both_backends! {
    async fn ecr_images_findings_tags_and_provisioning(backend: Backend) {
        let Some(url) = moto() else { return };
        let client = ecr(&url).await;
        let repo = unique("payments/service");
        let created = client.create_repository().repository_name(&repo).send().await.unwrap();
        let arn = created.repository().unwrap().repository_arn().unwrap().to_string();
        client
            .tag_resource()
            .resource_arn(&arn)
            .tags(Tag::builder().key("backstage.io/component").value("payment-service").build().unwrap())
            .tags(Tag::builder().key("backstage.io/owner").value("group:default/payments-core").build().unwrap())
            .tags(Tag::builder().key("aws:servicecatalog:provisionedProductArn").value(format!("arn:aws:servicecatalog:{REGION}:{ACCOUNT}:stack/ecr-repo/pp-test123")).build().unwrap())
            .send()
            .await
            .unwrap();
        let v1 = put(&client, &repo, "v1.0.0", &image_manifest("a"), "application/vnd.oci.image.manifest.v1+json").await;
        let v2 = put(&client, &repo, "v2.0.0", &image_manifest("b"), "application/vnd.oci.image.manifest.v1+json").await;
        let index = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": v1, "size": 10, "platform": {"os": "linux", "architecture": "amd64"}},
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": v2, "size": 10, "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}}]});
        let multi = put(&client, &repo, "v3.0.0-multi", &index, "application/vnd.oci.image.index.v1+json").await;

        // Findings for v2: basic and enhanced, injected through moto's API after a scan.
        client.start_image_scan().repository_name(&repo).image_id(ImageIdentifier::builder().image_digest(&v2).build()).send().await.unwrap();
        let result = json!({"results": [{
            "registryId": ACCOUNT, "repositoryName": repo, "imageId": {"imageDigest": v2},
            "imageScanStatus": {"status": "COMPLETE", "description": "done"},
            "imageScanFindings": {
                "imageScanCompletedAt": 1795428000,
                "findingSeverityCounts": {"CRITICAL": 1, "LOW": 1},
                "findings": [{"name": "CVE-2026-0001", "severity": "LOW", "uri": "https://cve.example/CVE-2026-0001", "description": "a low one",
                              "attributes": [{"key": "package_name", "value": "zlib"}, {"key": "package_version", "value": "1.2.11"}]}],
                "enhancedFindings": [{"awsAccountId": ACCOUNT, "description": "a critical one", "severity": "CRITICAL", "title": "CVE-2026-0002 - openssl",
                                      "packageVulnerabilityDetails": {"vulnerabilityId": "CVE-2026-0002", "source": "NVD", "sourceUrl": "https://nvd.example/CVE-2026-0002",
                                                                      "vulnerablePackages": [{"name": "openssl", "version": "3.0.1", "fixedInVersion": "3.0.13"}]}}]
            }}], "region": REGION});
        let r = reqwest::Client::new().post(format!("{url}/moto-api/static/ecr/scan-finding-results")).json(&result).send().await.unwrap();
        assert!(r.status().is_success());

        let catalog = [
            component("by-arn", "payments-core", None, &[("amazon.com/ecr-repository-arn", &arn)]),
            component("by-name", "payments-core", None, &[("amazon.com/ecr-repository-name", &repo)]),
            component("by-plugin", "payments-core", None, &[("aws.amazon.com/amazon-ecr-arn", &arn)]),
        ]
        .concat();
        let app = nova(backend, vec![("aws", registry_def(&url))], &catalog, |c| {
            c.registry.migration_request_url = "https://tickets.example.com/new?repo={repository}".into();
        })
        .await;
        let v = settled(&app, &format!("{API}/by-arn/images")).await;
        let r = &v["repositories"][0];
        assert_eq!(r["status"]["state"], "fresh", "{v:#}");
        assert_eq!(r["registryType"], "ecr");
        assert_eq!(r["arn"], arn);
        assert_eq!(r["consoleUrl"], format!("https://{REGION}.console.aws.amazon.com/ecr/repositories/private/{ACCOUNT}/{repo}?region={REGION}"));
        assert_eq!(r["provisioning"]["origin"], "serviceCatalog");
        assert_eq!(r["provisioning"]["provisionedProductId"], "pp-test123");
        let mut got: Vec<String> = v["images"].as_array().unwrap().iter().map(|i| i["digest"].as_str().unwrap().to_string()).collect();
        got.sort();
        let mut want = vec![v1.clone(), v2.clone(), multi.clone()];
        want.sort();
        assert_eq!(got, want);
        let by = |d: &str| v["images"].as_array().unwrap().iter().find(|i| i["digest"] == d).unwrap().clone();
        assert!(by(&v1)["pushedAt"].as_i64().unwrap() > 1_700_000_000_000, "ECR knows push times");
        assert_eq!(by(&v1)["tags"], json!(["v1.0.0"]));
        assert_eq!(by(&v1)["pullReference"], format!("{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/{repo}@{v1}"));
        assert!(by(&v1)["consoleUrl"].as_str().unwrap().contains(&format!("/_/image/{v1}/details")));
        let platforms: Vec<String> = by(&multi)["platforms"].as_array().unwrap().iter().map(|p| format!("{}/{}", p["os"].as_str().unwrap(), p["architecture"].as_str().unwrap())).collect();
        assert_eq!(platforms, vec!["linux/amd64", "linux/arm64"]);
        assert_eq!(by(&v1)["scan"]["status"], "not-scanned");

        // The drill-down: both kinds of findings, most severe first.
        let f = app.get_json(&format!("{API}/by-arn/images/{v2}/findings"), 200).await;
        assert_eq!((f["state"].as_str(), f["scan"]["status"].as_str()), (Some("fresh"), Some("complete")), "{f:#}");
        assert_eq!(f["scan"]["counts"]["critical"], 1);
        assert_eq!(f["scan"]["counts"]["low"], 1);
        let first = &f["findings"][0];
        assert_eq!((first["id"].as_str(), first["severity"].as_str(), first["package"].as_str()), (Some("CVE-2026-0002"), Some("CRITICAL"), Some("openssl")));
        assert_eq!((first["installedVersion"].as_str(), first["fixedVersion"].as_str()), (Some("3.0.1"), Some("3.0.13")));
        assert_eq!(first["link"], "https://nvd.example/CVE-2026-0002");
        let second = &f["findings"][1];
        assert_eq!((second["id"].as_str(), second["package"].as_str(), second["installedVersion"].as_str()), (Some("CVE-2026-0001"), Some("zlib"), Some("1.2.11")));
        assert_eq!(second["description"], "a low one");
        // ... and the list now carries the counts.
        let v = app.get_json(&format!("{API}/by-arn/images?tag=v2.0.0"), 200).await;
        assert_eq!(v["images"][0]["scan"]["counts"]["critical"], 1, "{v:#}");
        // An image ECR never scanned: "not scanned".
        let f = app.get_json(&format!("{API}/by-arn/images/{v1}/findings"), 200).await;
        assert_eq!(f["scan"]["status"], "not-scanned", "{f:#}");

        // The other spellings reach the same repository.
        for name in ["by-name", "by-plugin"] {
            let v = settled(&app, &format!("{API}/{name}/images")).await;
            assert_eq!(v["repositories"][0]["key"], format!("aws/{repo}"));
            assert_eq!(v["total"], 3);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_report_api_metric_and_cli() {
    let Some(url) = moto() else { return };
    let client = ecr(&url).await;
    let tagged = unique("drift/tagged");
    let orphan = unique("drift/orphan");
    let untagged = unique("drift/untagged");
    for r in [&tagged, &orphan, &untagged] {
        client.create_repository().repository_name(r.as_str()).send().await.unwrap();
    }
    let arn = format!("arn:aws:ecr:{REGION}:{ACCOUNT}:repository/{tagged}");
    client
        .tag_resource()
        .resource_arn(&arn)
        .tags(Tag::builder().key("backstage.io/component").value("other-service").build().unwrap())
        .tags(Tag::builder().key("backstage.io/owner").value("team-b").build().unwrap())
        .tags(Tag::builder().key("backstage.io/system").value("payments").build().unwrap())
        .send()
        .await
        .unwrap();
    let missing = unique("drift/missing");
    let catalog = [
        component("svc", "team-a", Some("payments"), &[("amazon.com/ecr-repository-name", &tagged)]),
        component("lost", "team-a", None, &[("amazon.com/ecr-repository-name", &missing)]),
        component("plain", "team-a", None, &[("amazon.com/ecr-repository-name", &untagged)]),
    ]
    .concat();
    let app = nova(Backend::Sqlite, vec![("aws", registry_def(&url))], &catalog, |_| {}).await;
    for name in ["svc", "lost", "plain"] {
        settled(&app, &format!("{API}/{name}/images")).await;
    }
    // The background report may predate the refreshes above; ask for one computed now.
    let report = app.get_json("/api/v1/registry/drift?fresh=true", 200).await;
    let kinds = |report: &Value, repo: &str| -> Vec<String> {
        report["items"].as_array().unwrap().iter().filter(|i| i["repository"].as_str().is_some_and(|r| r.ends_with(repo))).map(|i| i["kind"].as_str().unwrap().to_string()).collect()
    };
    assert_eq!(report["drift"], true);
    assert_eq!(kinds(&report, &tagged), vec!["owner-mismatch", "component-mismatch"], "{report:#}");
    assert_eq!(kinds(&report, &missing), vec!["missing-repository"]);
    assert_eq!(kinds(&report, &orphan), vec!["unlinked-repository"]);
    assert_eq!(kinds(&report, &untagged), vec!["missing-tags"]);
    let owner = report["items"].as_array().unwrap().iter().find(|i| i["kind"] == "owner-mismatch").unwrap();
    assert_eq!((owner["catalog"].as_str(), owner["registry"].as_str()), (Some("group:default/team-a"), Some("team-b")));
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains("nova_registry_drift{kind=\"owner-mismatch\"}"), "{metrics}");

    // The CLI: the same report, exit 1 on drift.
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_file(dir.path(), "nova.toml", &format!("[registries.aws]\ntype = \"ecr\"\nregion = \"{REGION}\"\naccount_id = \"{ACCOUNT}\"\nendpoint_url = \"{url}\"\n"));
    let cat = write_file(dir.path(), "catalog.yaml", &catalog);
    let drift_cli = |extra: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_nova"))
            .args(["registry", "drift"])
            .args(extra)
            .arg("--config")
            .arg(&cfg)
            .arg("--catalog")
            .arg(&cat)
            .arg("--database-url")
            .arg(format!("sqlite://{}/nova.db", dir.path().display()))
            .output()
            .unwrap()
    };
    let out = drift_cli(&["--output", "json"]);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let cli: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(kinds(&cli, &missing), vec!["missing-repository"]);
    assert_eq!(kinds(&cli, &orphan), vec!["unlinked-repository"]);
    let text = drift_cli(&["--cached"]);
    assert_eq!(text.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&text.stdout).contains(&format!("missing-repository: repository aws/{missing} does not exist")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_ecr_endpoint_is_unavailable_not_an_error() {
    // Needs the fake credentials scripts/test exports with moto.
    let Some(_) = moto() else { return };
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let catalog = component("svc", "team", None, &[("amazon.com/ecr-repository-name", "svc")]);
    let app = nova(Backend::Sqlite, vec![("aws", registry_def(&format!("http://127.0.0.1:{port}")))], &catalog, |_| {}).await;
    let v = settled(&app, &format!("{API}/svc/images")).await;
    let s = &v["repositories"][0]["status"];
    assert_eq!((s["state"].as_str(), s["reason"].as_str()), (Some("unavailable"), Some("unavailable")), "{v:#}");
    let html = app.get("/catalog/default/component/svc/images").await;
    assert_eq!(html.status(), 200);
}

/// The release intake's registry check on ECR: `DescribeImages` by digest says whether the
/// repository holds the image; a missing repository is `NotFound`.
#[tokio::test]
async fn ecr_says_whether_a_repository_holds_a_digest() {
    use nova::registry::{RegistryError, RegistryProvider};
    use nova_domain::{Digest, RepositoryName};
    let Some(url) = moto() else { return };
    let client = ecr(&url).await;
    let repo = unique("payments/intake");
    client.create_repository().repository_name(&repo).send().await.unwrap();
    let pushed = put(&client, &repo, "v1", &image_manifest("intake"), "application/vnd.oci.image.manifest.v1+json").await;
    let nova::registry::RegistryDef::Ecr(config) = registry_def(&url) else { panic!("an ECR registry") };
    let registry = nova::registry::ecr::EcrRegistry::new(&config, &Default::default()).await;
    let name = RepositoryName::parse(&repo).unwrap();
    assert_eq!(registry.has_manifest(&name, &Digest::parse(&pushed).unwrap()).await, Ok(true));
    let other = Digest::parse(&format!("sha256:{}", "0".repeat(64))).unwrap();
    assert_eq!(registry.has_manifest(&name, &other).await, Ok(false));
    let missing = RepositoryName::parse(&unique("payments/none")).unwrap();
    assert!(matches!(registry.has_manifest(&missing, &other).await, Err(RegistryError::NotFound(_))));
    assert_eq!(registry.pull_host(), format!("{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com"));
}
