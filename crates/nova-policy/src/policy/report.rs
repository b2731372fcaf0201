//! What a check found: one entry per line of the text report, and the counts.

use std::ops::AddAssign;

use serde::Serialize;

use super::rules::RuleId;

/// How an entry counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// An Enforce rule is violated.
    Fail,
    /// An Audit rule is violated.
    Warn,
    /// Advice only (recommended labels); never a warning or failure.
    Info,
    /// An input or document that could not be checked.
    Error,
}

/// The resource an entry is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Resource {
    /// `Deployment`, `CronJob`, ...
    pub kind: String,
    /// `metadata.name` (or `generateName` followed by `*`).
    pub name: String,
    /// The namespace; `default` when the manifest names none.
    pub namespace: String,
}

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    /// How the entry counts.
    pub status: Status,
    /// The input's display name (`-` for standard input).
    pub file: String,
    /// 1-based document index in the input; `None` when the whole input is concerned.
    pub document: Option<usize>,
    /// 1-based line of the input: where the document starts, or where a parse error is.
    pub line: Option<usize>,
    /// The resource, when the document was read far enough to know it.
    pub resource: Option<Resource>,
    /// The rule, for failures, warnings and infos.
    pub rule: Option<RuleId>,
    /// What is wrong; never the value of anything but the manifest itself.
    pub message: String,
}

/// The counts of a check.
///
/// - `pass`, `fail`, `warn`: one per rule and workload checked (a `List`'s items count one
///   by one); a rule with several violations in one workload counts once.
/// - `skip`: one per rule and workload the rule's exclusions leave out, and one per document
///   or list item that is not a Kubernetes workload (a Service, a ConfigMap, or not a
///   Kubernetes object at all). Empty documents are not counted.
/// - `error`: one per input that could not be read and per document that could not be
///   parsed or whose containers are not where Kubernetes puts them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Rule and workload pairs that comply.
    pub pass: usize,
    /// Rule and workload pairs that violate an Enforce rule.
    pub fail: usize,
    /// Rule and workload pairs that violate an Audit rule.
    pub warn: usize,
    /// Inputs, documents and workloads that could not be checked.
    pub error: usize,
    /// Excluded rule and workload pairs, and documents that are not workloads.
    pub skip: usize,
}

impl AddAssign for Summary {
    fn add_assign(&mut self, other: Summary) {
        self.pass += other.pass;
        self.fail += other.fail;
        self.warn += other.warn;
        self.error += other.error;
        self.skip += other.skip;
    }
}

/// The result of checking a set of inputs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    /// The counts.
    pub summary: Summary,
    /// Failures, warnings, infos and errors, in input and document order.
    pub entries: Vec<Entry>,
}

impl Report {
    /// Whether an Enforce rule failed: the check fails and promotion must stop.
    pub fn enforce_failed(&self) -> bool {
        self.summary.fail > 0
    }

    /// Whether something could not be checked. A gate should refuse then as well: an
    /// unreadable manifest has not been shown to comply.
    pub fn has_errors(&self) -> bool {
        self.summary.error > 0
    }

    /// Adds the entries and counts of `other` after this report's own.
    pub(crate) fn append(&mut self, other: Report) {
        self.summary += other.summary;
        self.entries.extend(other.entries);
    }
}
