//! The image copy benchmark (bench/release/run.sh runs it; ignored in normal test runs): an
//! image of four layers copied by digest with [`nova::registry::oci::copy::copy_image`] between
//! real CNCF distribution registries: across registries (every blob streamed), within one
//! registry (every blob mounted), and a second copy of the same (everything present, only
//! `HEAD`s). Prints Markdown for docs/BENCHMARKS.md.

mod support;

use std::time::{Duration, Instant};

use nova::registry::oci::client::Client;
use nova::registry::oci::copy::{Endpoint, copy_image};
use nova::registry::oci::push::UPLOAD_CHUNK;
use nova_domain::Digest;
use support::registry::{Auth, ImageSpec, TestRegistry};

fn client(reg: &TestRegistry) -> Client {
    let nova::registry::RegistryDef::Oci(c) = reg.config(None) else { unreachable!("an OCI registry") };
    Client::new(&c, Duration::from_secs(60), 4 * 1024 * 1024, nova::outbound::Outbound::default()).expect("client")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: bench/release/run.sh"]
async fn image_copy_benchmark() {
    let mib: usize = std::env::var("BENCH_LAYER_MIB").ok().and_then(|v| v.parse().ok()).unwrap_or(16);
    let Some(a) = TestRegistry::start(Auth::Anonymous).await else { return };
    let Some(b) = TestRegistry::start(Auth::Anonymous).await else { return };
    let mut spec = ImageSpec::new("2026-05-01T00:00:00Z", "bench");
    spec.oci = true;
    spec.layer_sizes = vec![mib * 1024 * 1024; 4];
    let image = a.push_image("bench/app", &["v1"], &spec).await;
    let digest = Digest::parse(&image.digest).unwrap();
    let (ca, cb) = (client(&a), client(&b));
    let total = (4 * mib) as f64;
    println!("| copy ({} × {mib} MiB layers, {total} MiB) | time | throughput | blobs streamed / mounted / present |", 4);
    println!("|---|---|---|---|");
    let runs: [(&str, &Client, &str, bool); 3] = [("across registries (streamed)", &cb, "bench/app", false), ("within one registry (mounted)", &ca, "bench/app-prod", true), ("again across registries (all present)", &cb, "bench/app", false)];
    for (label, to_client, to_repo, mount) in runs {
        let from = Endpoint { client: &ca, repository: "bench/app" };
        let to = Endpoint { client: to_client, repository: to_repo };
        let start = Instant::now();
        let r = copy_image(&from, &to, mount, &digest, &["v1".to_string()], UPLOAD_CHUNK).await.expect("copy");
        let secs = start.elapsed().as_secs_f64();
        let rate = if r.blobs_streamed > 0 { format!("{:.0} MiB/s", r.bytes_streamed as f64 / 1048576.0 / secs) } else { "—".to_string() };
        println!("| {label} | {:.0} ms | {rate} | {} / {} / {} |", secs * 1000.0, r.blobs_streamed, r.blobs_mounted, r.blobs_present);
    }
    let (status, _, bytes) = b.get_manifest("bench/app", &image.digest).await;
    assert_eq!((status, bytes), (200, image.body), "the copy keeps the digest");
}
