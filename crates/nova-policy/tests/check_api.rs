//! The library API as promotion uses it: in-memory manifests with display names, the gate
//! decision, and the machine-readable reports.

use std::num::NonZeroUsize;

use nova_policy::policy::output::{OutputFormat, render};
use nova_policy::policy::{
    CheckOptions, Input, Policy, RuleId, Status, check_documents, check_documents_with,
};

const COMPLIANT: &str = "apiVersion: v1
kind: Pod
metadata:
  name: web
  labels: {app.kubernetes.io/name: web, app.kubernetes.io/component: c, app.kubernetes.io/part-of: p, app.kubernetes.io/version: v}
spec:
  containers:
    - name: web
      image: ghcr.io/acme/web:1.0.0
      livenessProbe: {httpGet: {path: /, port: 80}}
      readinessProbe: {httpGet: {path: /, port: 80}}
      resources: {requests: {cpu: 1m, memory: 1Mi}, limits: {memory: 1Mi}}
";

fn latest() -> String {
    COMPLIANT.replace("web:1.0.0", "web:latest")
}

#[test]
fn the_gate_passes_compliant_manifests_and_stops_enforced_failures() {
    let policy = Policy::default();
    let report = check_documents(&policy, &[Input::text("rendered/web.yaml", COMPLIANT)]);
    assert!(!report.enforce_failed() && !report.has_errors());
    assert_eq!(report.summary.pass, 4);

    let latest = latest();
    let report = check_documents(&policy, &[Input::text("rendered/web.yaml", &latest)]);
    assert!(report.enforce_failed());
    let entry = &report.entries[0];
    assert_eq!(
        (entry.status, entry.rule, entry.document, entry.line),
        (
            Status::Fail,
            Some(RuleId::DisallowLatestTag),
            Some(1),
            Some(1)
        )
    );
    assert_eq!(
        entry
            .resource
            .as_ref()
            .map(|r| (r.kind.as_str(), r.name.as_str(), r.namespace.as_str())),
        Some(("Pod", "web", "default"))
    );
}

#[test]
fn unreadable_binary_and_oversized_inputs_are_errors_in_their_place() {
    let options = CheckOptions {
        budget: serde_saphyr::budget! { max_reader_input_bytes: Some(2_000) }.unwrap(),
        ..CheckOptions::default()
    };
    let big = COMPLIANT.repeat(5);
    let inputs = [
        Input::text("a.yaml", COMPLIANT),
        Input::unreadable("b.yaml", "permission denied"),
        Input::text("c.yaml", "apiVersion: v1\0"),
        Input::text("d.yaml", &big),
        Input::text("e.yaml", COMPLIANT),
    ];
    let report = check_documents_with(&Policy::default(), &inputs, &options);
    let errors: Vec<(&str, &str)> = report
        .entries
        .iter()
        .map(|e| (e.file.as_str(), e.message.as_str()))
        .collect();
    assert_eq!(
        errors,
        [
            ("b.yaml", "permission denied"),
            ("c.yaml", "binary content (NUL byte); not YAML or JSON"),
            ("d.yaml", "larger than the limit of 2000 bytes"),
        ]
    );
    assert_eq!((report.summary.pass, report.summary.error), (8, 3));
    assert!(report.has_errors() && !report.enforce_failed());
}

#[test]
fn the_budget_limits_each_document() {
    let options = CheckOptions {
        budget: serde_saphyr::budget! { max_nodes: 20 }.unwrap(),
        ..CheckOptions::default()
    };
    let report = check_documents_with(
        &Policy::default(),
        &[Input::text("x.yaml", COMPLIANT)],
        &options,
    );
    assert_eq!(report.summary.error, 1);
    assert!(
        report.entries[0].message.contains("more than 20 nodes"),
        "{:?}",
        report.entries[0]
    );
}

#[test]
fn threads_do_not_change_the_report() {
    let mut stream = String::new();
    for n in 0..700 {
        let doc = if n % 7 == 0 {
            latest()
        } else {
            COMPLIANT.to_owned()
        };
        stream.push_str(&format!(
            "---\n{}",
            doc.replace("name: web", &format!("name: web-{n}"))
        ));
        if n % 50 == 0 {
            stream.push_str("---\nkey: [broken\n");
        }
    }
    let inputs = [
        Input::text("big.yaml", &stream),
        Input::text("small.yaml", COMPLIANT),
    ];
    let run = |threads| {
        let options = CheckOptions {
            threads: NonZeroUsize::new(threads).unwrap(),
            ..CheckOptions::default()
        };
        check_documents_with(&Policy::default(), &inputs, &options)
    };
    let one = run(1);
    assert_eq!(one, run(2));
    assert_eq!(one, run(5));
    assert_eq!(
        (one.summary.fail, one.summary.error, one.summary.pass),
        (100, 14, 2704)
    );
    assert_eq!(one.entries.last().unwrap().document, Some(708));
}

#[test]
fn json_junit_and_sarif_reports_carry_the_findings() {
    let latest = latest();
    let inputs = [
        Input::text("web.yaml", &latest),
        Input::text("bad.yaml", "a: ["),
    ];
    let report = check_documents(&Policy::default(), &inputs);
    let rendered = |format| {
        let mut out = Vec::new();
        render(&report, format, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    };

    let json: serde_json::Value = serde_json::from_str(&rendered(OutputFormat::Json)).unwrap();
    assert_eq!(
        json["summary"],
        serde_json::json!({"pass": 3, "fail": 1, "warn": 0, "error": 1, "skip": 0})
    );
    assert_eq!(json["entries"][0]["rule"], "disallow-latest-tag");
    assert_eq!(json["entries"][0]["status"], "fail");

    let sarif: serde_json::Value = serde_json::from_str(&rendered(OutputFormat::Sarif)).unwrap();
    assert_eq!(sarif["version"], "2.1.0");
    let results = &sarif["runs"][0]["results"];
    assert_eq!(results[0]["ruleId"], "disallow-latest-tag");
    assert_eq!(results[0]["level"], "error");
    assert_eq!(
        results[0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"],
        "web.yaml"
    );
    assert_eq!(
        results[1]["locations"][0]["physicalLocation"]["region"]["startLine"],
        1
    );
    assert_eq!(
        sarif["runs"][0]["tool"]["driver"]["rules"]
            .as_array()
            .unwrap()
            .len(),
        RuleId::ALL.len()
    );

    let junit = rendered(OutputFormat::Junit);
    assert!(
        junit.contains(
            r#"<testsuite name="nova policy check" tests="5" failures="1" errors="1" skipped="0">"#
        ),
        "{junit}"
    );
    assert!(junit.contains(r#"<testcase classname="web.yaml:1 Pod/web" name="disallow-latest-tag"><failure message="container &quot;web&quot;: image &quot;ghcr.io/acme/web:latest&quot; uses the latest tag; pin a version or a digest" type="enforce"/></testcase>"#), "{junit}");
    assert!(junit.contains(r#"<testcase classname="bad.yaml:1" name="parse"><error message="line 1: YAML syntax error"#), "{junit}");
}
