//! Every manifest under `tests/corpus/` is checked and its text report compared with the
//! `.expected` file beside it. `<case>.policy.yaml` beside a case is its policy; without one
//! the default policy applies. Cases under `valid/` must have no failure, warning or error;
//! cases under `invalid/` must have at least one.
//!
//! After a deliberate change of behaviour, `NOVA_BLESS=1 cargo test -p nova-policy --test
//! corpus` rewrites the expected files; review their diff before committing it.

use std::fs;
use std::path::Path;

use nova_policy::policy::output::{OutputFormat, render};
use nova_policy::policy::{Input, Policy, check_documents};

#[test]
fn corpus_reports_match_their_expected_files() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let bless = std::env::var_os("NOVA_BLESS").is_some();
    let mut mismatches = Vec::new();
    let mut cases = 0;
    for dir in ["valid", "invalid"] {
        let mut paths: Vec<_> = fs::read_dir(root.join(dir))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        paths.sort();
        for path in paths {
            let name = path.file_name().unwrap().to_str().unwrap().to_owned();
            if name.ends_with(".expected") || name.ends_with(".policy.yaml") {
                continue;
            }
            cases += 1;
            let stem = name.rsplit_once('.').unwrap().0;
            let policy_path = path.with_file_name(format!("{stem}.policy.yaml"));
            let policy = if policy_path.exists() {
                Policy::load(&policy_path).unwrap()
            } else {
                Policy::default()
            };
            let display = format!("{dir}/{name}");
            let report = check_documents(
                &policy,
                &[Input::text(&display, &fs::read_to_string(&path).unwrap())],
            );
            let s = report.summary;
            let problems = s.fail + s.warn + s.error;
            assert!((dir == "valid") == (problems == 0), "{display}: {s:?}");
            let mut text = Vec::new();
            render(&report, OutputFormat::Text, &mut text).unwrap();
            let text = String::from_utf8(text).unwrap();
            let expected_path = path.with_file_name(format!("{name}.expected"));
            if bless {
                fs::write(&expected_path, &text).unwrap();
            } else if fs::read_to_string(&expected_path).ok().as_deref() != Some(text.as_str()) {
                mismatches.push(format!(
                    "== {display}: expected {}, got:\n{text}",
                    expected_path.display()
                ));
            }
        }
    }
    assert!(cases >= 10, "the corpus went missing");
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}
