//! No input makes a check panic: arbitrary text, and valid manifests damaged at random.

use nova_policy::policy::{Input, Policy, check_documents};
use proptest::prelude::*;

const MANIFEST: &str = "apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop, labels: &l {app.kubernetes.io/name: web}}
spec:
  template:
    metadata: {labels: *l}
    spec:
      initContainers: [{name: init, image: 'busybox:1', restartPolicy: Always}]
      containers:
        - name: web
          image: host:5000/web@sha256:abc
          livenessProbe: {httpGet: {path: /, port: 80}}
          readinessProbe: {exec: {command: [true]}}
          resources: {requests: {cpu: 1m, memory: 1Mi}, limits: {memory: 1Mi}}
---
apiVersion: v1
kind: List
items: [{apiVersion: batch/v1, kind: CronJob, spec: {jobTemplate: {spec: {template: {spec: {containers: [{}]}}}}}}]
";

fn check(text: &str) {
    let report = check_documents(&Policy::default(), &[Input::text("x.yaml", text)]);
    let s = report.summary;
    assert!(
        report.entries.len() >= s.fail + s.warn + s.error,
        "every failure, warning and error has an entry"
    );
}

proptest! {
    #[test]
    fn arbitrary_text(text in "[ -~\\n\\t\\u{80}-\\u{2000}]{0,400}") {
        check(&text);
    }

    #[test]
    fn damaged_manifests(cut in 0..MANIFEST.len(), len in 0usize..12, insert in "[-:{}\\[\\]&*!|>'\"# \\n]{0,3}") {
        let start = MANIFEST.floor_char_boundary(cut);
        let end = MANIFEST.floor_char_boundary((start + len).min(MANIFEST.len()));
        check(&format!("{}{insert}{}", &MANIFEST[..start], &MANIFEST[end..]));
    }
}
