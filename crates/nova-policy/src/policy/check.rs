//! Checking inputs: cut them into documents, check the documents on several threads, and
//! put the results back in input order.

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_saphyr::Budget;

use super::Policy;
use super::config::Mode;
use super::documents::{self, RawDocument};
use super::report::{Entry, Report, Resource, Status};
use super::rules::{self, RuleId};
use super::tree::{self, NodeId, Tree};
use super::workload::{self, Object, Workload};

/// One input to check: a file's text, or the reason it could not be read.
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    name: &'a str,
    body: Result<&'a str, &'a str>,
}

impl<'a> Input<'a> {
    /// YAML or JSON text; `name` is how the report refers to it (`-` for standard input).
    pub fn text(name: &'a str, text: &'a str) -> Input<'a> {
        Input {
            name,
            body: Ok(text),
        }
    }

    /// An input that could not be read, so that the report counts it as an error in its
    /// place.
    pub fn unreadable(name: &'a str, reason: &'a str) -> Input<'a> {
        Input {
            name,
            body: Err(reason),
        }
    }
}

/// Limits and parallelism of a check.
#[derive(Debug, Clone)]
pub struct CheckOptions {
    /// Limits for each document (nodes, depth, aliases, ...); `max_reader_input_bytes` limits
    /// each input's size. `max_documents` is not used: inputs are cut into documents before
    /// parsing, so each document has the whole budget.
    pub budget: Budget,
    /// How many threads check documents.
    pub threads: NonZeroUsize,
}

impl Default for CheckOptions {
    fn default() -> Self {
        CheckOptions {
            budget: Budget::default(),
            threads: std::thread::available_parallelism().unwrap_or(NonZeroUsize::MIN),
        }
    }
}

/// Checks `inputs` against `policy` with the default [`CheckOptions`].
///
/// ```
/// use nova_policy::policy::{Input, Policy, check_documents};
///
/// let manifest = "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec:\n  containers: [{name: web, image: nginx:latest}]\n";
/// let report = check_documents(&Policy::default(), &[Input::text("pod.yaml", manifest)]);
/// assert!(report.enforce_failed());
/// ```
pub fn check_documents(policy: &Policy, inputs: &[Input<'_>]) -> Report {
    check_documents_with(policy, inputs, &CheckOptions::default())
}

/// Checks `inputs` against `policy`.
pub fn check_documents_with(
    policy: &Policy,
    inputs: &[Input<'_>],
    options: &CheckOptions,
) -> Report {
    let jobs = jobs(inputs, &options.budget);
    let checker = Checker {
        policy,
        budget: &options.budget,
    };
    let mut report = Report::default();
    for part in in_parallel(&jobs, options.threads, |job| checker.run(job)) {
        report.append(part);
    }
    report
}

/// A unit of work: one document, or one input that cannot be cut into documents.
enum Job<'a> {
    Document {
        file: &'a str,
        document: RawDocument<'a>,
    },
    Unusable {
        file: &'a str,
        reason: String,
    },
}

fn jobs<'a>(inputs: &[Input<'a>], budget: &Budget) -> Vec<Job<'a>> {
    let mut jobs = Vec::new();
    for input in inputs {
        let file = input.name;
        match input
            .body
            .map_err(str::to_owned)
            .and_then(|text| usable(text, budget))
        {
            Ok(text) => jobs.extend(
                documents::split(text)
                    .into_iter()
                    .map(|document| Job::Document { file, document }),
            ),
            Err(reason) => jobs.push(Job::Unusable { file, reason }),
        }
    }
    jobs
}

/// Why an input over the size limit is not checked.
pub(crate) fn too_large(limit: usize) -> String {
    format!("larger than the limit of {limit} bytes")
}

/// `text`, unless it is too large or binary.
fn usable<'a>(text: &'a str, budget: &Budget) -> Result<&'a str, String> {
    if let Some(limit) = budget.max_reader_input_bytes
        && text.len() > limit
    {
        return Err(too_large(limit));
    }
    if text.contains('\0') {
        return Err("binary content (NUL byte); not YAML or JSON".to_owned());
    }
    Ok(text)
}

/// Runs `work` on every job on up to `threads` threads; the results come back in job order.
fn in_parallel<'a, T: Send>(
    jobs: &'a [Job<'a>],
    threads: NonZeroUsize,
    work: impl Fn(&Job<'a>) -> T + Sync,
) -> Vec<T> {
    const BATCH: usize = 64;
    let batches = jobs.len().div_ceil(BATCH);
    let threads = threads.get().min(batches);
    if threads <= 1 {
        return jobs.iter().map(&work).collect();
    }
    let next = AtomicUsize::new(0);
    let mut done: Vec<(usize, Vec<T>)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        let batch = next.fetch_add(1, Ordering::Relaxed);
                        if batch >= batches {
                            return mine;
                        }
                        let end = jobs.len().min((batch + 1) * BATCH);
                        mine.push((batch, jobs[batch * BATCH..end].iter().map(&work).collect()));
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|worker| worker.join().expect("a policy check thread panicked"))
            .collect()
    });
    done.sort_unstable_by_key(|(batch, _)| *batch);
    done.into_iter().flat_map(|(_, results)| results).collect()
}

struct Checker<'p> {
    policy: &'p Policy,
    budget: &'p Budget,
}

/// Where in the inputs the current document is, for the entries about it.
struct Place<'a> {
    file: &'a str,
    document: usize,
    line: usize,
}

impl Checker<'_> {
    fn run(&self, job: &Job<'_>) -> Report {
        let mut report = Report::default();
        match job {
            Job::Unusable { file, reason } => {
                report.summary.error += 1;
                report.entries.push(Entry {
                    status: Status::Error,
                    file: (*file).to_owned(),
                    document: None,
                    line: None,
                    resource: None,
                    rule: None,
                    message: reason.clone(),
                });
            }
            Job::Document { file, document } => {
                let place = Place {
                    file,
                    document: document.index,
                    line: document.line,
                };
                match tree::load(document.text, document.line, self.budget) {
                    Err(error) => place.error(&mut report, error.line, None, error.message),
                    Ok(tree) => {
                        if let Some(root) = tree.root() {
                            self.object(&tree, root, true, &place, &mut report);
                        }
                    }
                }
            }
        }
        report
    }

    fn object(
        &self,
        tree: &Tree<'_>,
        node: NodeId,
        top: bool,
        place: &Place<'_>,
        report: &mut Report,
    ) {
        match workload::classify(tree, node) {
            Object::Workload(workload) => self.workload(tree, &workload, place, report),
            Object::List(items) if top => {
                for &item in items {
                    self.object(tree, item, false, place, report);
                }
            }
            Object::List(_) | Object::Other => report.summary.skip += 1,
            Object::Malformed(identity, problem) => {
                place.error(report, place.line, Some(identity.to_resource()), problem);
            }
        }
    }

    fn workload(
        &self,
        tree: &Tree<'_>,
        workload: &Workload<'_>,
        place: &Place<'_>,
        report: &mut Report,
    ) {
        let identity = &workload.identity;
        for rule in RuleId::ALL {
            let settings = self.policy.rule(rule);
            let status = match settings.mode {
                Mode::Off => continue,
                Mode::Enforce => Status::Fail,
                Mode::Audit => Status::Warn,
            };
            if settings
                .exclude
                .matches(identity.namespace, |key| workload.label(tree, key))
            {
                report.summary.skip += 1;
                continue;
            }
            let findings = rules::check(rule, self.policy, workload, tree);
            match (findings.violations.is_empty(), status) {
                (true, _) => report.summary.pass += 1,
                (false, Status::Fail) => report.summary.fail += 1,
                (false, _) => report.summary.warn += 1,
            }
            let notes = findings.violations.into_iter().map(|m| (status, m));
            for (status, message) in
                notes.chain(findings.infos.into_iter().map(|m| (Status::Info, m)))
            {
                report.entries.push(place.entry(
                    status,
                    Some(identity.to_resource()),
                    Some(rule),
                    message,
                ));
            }
        }
    }
}

impl Place<'_> {
    fn entry(
        &self,
        status: Status,
        resource: Option<Resource>,
        rule: Option<RuleId>,
        message: String,
    ) -> Entry {
        Entry {
            status,
            file: self.file.to_owned(),
            document: Some(self.document),
            line: Some(self.line),
            resource,
            rule,
            message,
        }
    }

    fn error(&self, report: &mut Report, line: usize, resource: Option<Resource>, message: String) {
        report.summary.error += 1;
        report.entries.push(Entry {
            line: Some(line),
            ..self.entry(Status::Error, resource, None, message)
        });
    }
}
