//! Writing a report for people (text) and for CI systems (JSON, JUnit XML, SARIF).

use std::io::{self, Write};

use serde_json::json;

use super::report::{Entry, Report, Status};
use super::rules::RuleId;

/// A report format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum OutputFormat {
    /// One line per finding, `FILE:DOC KIND/NAME RULE: MESSAGE`, then the counts.
    #[default]
    Text,
    /// The whole report as one JSON object.
    Json,
    /// JUnit XML, one test case per finding.
    Junit,
    /// SARIF 2.1.0, for code-scanning dashboards.
    Sarif,
}

/// Writes `report` in `format`.
pub fn render(report: &Report, format: OutputFormat, out: &mut dyn Write) -> io::Result<()> {
    match format {
        OutputFormat::Text => text(report, out),
        OutputFormat::Json => {
            serde_json::to_writer_pretty(&mut *out, report)?;
            writeln!(out)
        }
        OutputFormat::Junit => junit(report, out),
        OutputFormat::Sarif => {
            serde_json::to_writer_pretty(&mut *out, &sarif(report))?;
            writeln!(out)
        }
    }
}

/// The line for one entry. Failures are exactly `FILE:DOC KIND/NAME RULE: MESSAGE`;
/// warnings end in ` (audit)`, infos in ` (info)`; errors read `FILE:DOC error: MESSAGE`.
pub fn line(entry: &Entry) -> String {
    let place = match entry.document {
        Some(document) => format!("{}:{document}", entry.file),
        None => entry.file.clone(),
    };
    let suffix = match entry.status {
        Status::Fail | Status::Error => "",
        Status::Warn => " (audit)",
        Status::Info => " (info)",
    };
    match (&entry.resource, entry.rule) {
        (Some(resource), Some(rule)) => {
            format!(
                "{place} {}/{} {rule}: {}{suffix}",
                resource.kind, resource.name, entry.message
            )
        }
        (Some(resource), None) => format!(
            "{place} {}/{} error: {}",
            resource.kind, resource.name, entry.message
        ),
        _ => format!("{place} error: {}", error_message(entry)),
    }
}

/// An error's message, with its line when that is not simply where the document starts.
fn error_message(entry: &Entry) -> String {
    match entry.line {
        Some(line) if entry.document.is_some() => format!("line {line}: {}", entry.message),
        _ => entry.message.clone(),
    }
}

fn text(report: &Report, out: &mut dyn Write) -> io::Result<()> {
    for entry in &report.entries {
        writeln!(out, "{}", line(entry))?;
    }
    let s = &report.summary;
    writeln!(
        out,
        "pass: {}, fail: {}, warn: {}, error: {}, skip: {}",
        s.pass, s.fail, s.warn, s.error, s.skip
    )
}

fn junit(report: &Report, out: &mut dyn Write) -> io::Result<()> {
    let s = &report.summary;
    let tests = s.pass + s.fail + s.warn + s.error + s.skip;
    writeln!(out, r#"<?xml version="1.0" encoding="UTF-8"?>"#)?;
    writeln!(
        out,
        r#"<testsuites name="nova policy check" tests="{tests}" failures="{}" errors="{}" skipped="{}">"#,
        s.fail, s.error, s.skip
    )?;
    writeln!(
        out,
        r#"  <testsuite name="nova policy check" tests="{tests}" failures="{}" errors="{}" skipped="{}">"#,
        s.fail, s.error, s.skip
    )?;
    writeln!(
        out,
        r#"    <properties><property name="passed" value="{}"/><property name="warnings" value="{}"/></properties>"#,
        s.pass, s.warn
    )?;
    for entry in &report.entries {
        let class = match (&entry.document, &entry.resource) {
            (Some(doc), Some(r)) => format!("{}:{doc} {}/{}", entry.file, r.kind, r.name),
            (Some(doc), None) => format!("{}:{doc}", entry.file),
            (None, _) => entry.file.clone(),
        };
        let name = entry.rule.map_or("parse", RuleId::as_str);
        let message = xml_escape(&entry.message);
        write!(
            out,
            r#"    <testcase classname="{}" name="{name}">"#,
            xml_escape(&class)
        )?;
        match entry.status {
            Status::Fail => write!(out, r#"<failure message="{message}" type="enforce"/>"#)?,
            Status::Error => write!(
                out,
                r#"<error message="{}"/>"#,
                xml_escape(&error_message(entry))
            )?,
            Status::Warn => write!(out, "<system-out>warning (audit): {message}</system-out>")?,
            Status::Info => write!(out, "<system-out>info: {message}</system-out>")?,
        }
        writeln!(out, "</testcase>")?;
    }
    writeln!(out, "  </testsuite>\n</testsuites>")
}

fn xml_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&apos;"),
            c if c < ' ' && !matches!(c, '\t' | '\n' | '\r') => escaped.push('\u{fffd}'),
            c => escaped.push(c),
        }
    }
    escaped
}

fn sarif(report: &Report) -> serde_json::Value {
    let rules: Vec<_> = RuleId::ALL
        .iter()
        .map(|rule| json!({"id": rule.as_str(), "shortDescription": {"text": rule.description()}}))
        .collect();
    let results: Vec<_> = report
        .entries
        .iter()
        .map(|entry| {
            let level = match entry.status {
                Status::Fail | Status::Error => "error",
                Status::Warn => "warning",
                Status::Info => "note",
            };
            let mut location =
                json!({"physicalLocation": {"artifactLocation": {"uri": entry.file}}});
            if let Some(line) = entry.line {
                location["physicalLocation"]["region"] = json!({"startLine": line});
            }
            let mut result =
                json!({"level": level, "message": {"text": line(entry)}, "locations": [location]});
            if let Some(rule) = entry.rule {
                result["ruleId"] = json!(rule.as_str());
            }
            result
        })
        .collect();
    json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {"name": "nova policy check", "rules": rules}},
            "results": results,
        }],
    })
}
