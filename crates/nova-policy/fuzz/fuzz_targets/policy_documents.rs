//! Any text as manifests: checking and rendering every report format never panic, and every
//! failure, warning and error has its line in the report.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nova_policy::policy::output::{OutputFormat, render};
use nova_policy::policy::{Input, Policy, check_documents};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let report = check_documents(&Policy::default(), &[Input::text("fuzz.yaml", text)]);
    let s = report.summary;
    assert!(report.entries.len() >= s.fail + s.warn + s.error);
    for format in [OutputFormat::Text, OutputFormat::Json, OutputFormat::Junit, OutputFormat::Sarif] {
        render(&report, format, &mut std::io::sink()).unwrap();
    }
});
