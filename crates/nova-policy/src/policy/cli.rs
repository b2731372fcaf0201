//! `nova policy check`: read the manifests, check them, print the report.

use std::fs;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use super::check::too_large;
use super::output::{OutputFormat, render};
use super::{CheckOptions, Input, Policy, check_documents_with};

/// Exit code when no Enforce rule failed and everything could be checked.
const EXIT_OK: u8 = 0;
/// Exit code when an Enforce rule failed.
const EXIT_FAILED: u8 = 1;
/// Exit code when something could not be checked, or the policy file is unusable.
const EXIT_ERROR: u8 = 2;

/// Arguments of `nova policy check`.
#[derive(Debug, Clone, clap::Args)]
pub struct PolicyCheckArgs {
    /// Policy file (YAML); without one the built-in defaults apply.
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// Report format.
    #[arg(long, value_enum, default_value_t)]
    pub output: OutputFormat,
    /// Manifests: files, directories (searched recursively for *.yaml, *.yml and *.json),
    /// or `-` for standard input.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
}

/// Runs `nova policy check`: exit code 0 when every Enforce rule passed, 1 when one failed,
/// 2 when something could not be checked (and nothing failed) or the policy is unusable.
pub fn run_policy_check(args: PolicyCheckArgs) -> ExitCode {
    let mut stdout = BufWriter::new(io::stdout().lock());
    let code = policy_check(
        &args,
        &mut io::stdin().lock(),
        &mut stdout,
        &mut io::stderr().lock(),
    );
    ExitCode::from(code)
}

fn policy_check(
    args: &PolicyCheckArgs,
    stdin: &mut dyn Read,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
) -> u8 {
    let policy = match &args.policy {
        Some(path) => match Policy::load(path) {
            Ok(policy) => policy,
            Err(error) => {
                let _ = writeln!(stderr, "nova policy check: {error}");
                return EXIT_ERROR;
            }
        },
        None => Policy::default(),
    };
    let options = CheckOptions::default();
    let contents = read_manifests(&args.paths, Some(stdin), &options);
    let report = check_contents(&policy, &contents, &options);
    if let Err(error) = render(&report, args.output, stdout).and_then(|()| stdout.flush()) {
        let _ = writeln!(
            stderr,
            "nova policy check: cannot write the report: {error}"
        );
        return EXIT_ERROR;
    }
    if report.enforce_failed() {
        EXIT_FAILED
    } else if report.has_errors() {
        EXIT_ERROR
    } else {
        EXIT_OK
    }
}

/// The text of every manifest `paths` name (files, directories searched as `nova policy
/// check` does, `-` for `stdin` when given), each with its display name, or why it could not
/// be read; each input is read up to the budget's `max_reader_input_bytes`.
pub fn read_manifests(
    paths: &[PathBuf],
    mut stdin: Option<&mut dyn Read>,
    options: &CheckOptions,
) -> Vec<(String, Result<String, String>)> {
    let limit = options.budget.max_reader_input_bytes.unwrap_or(usize::MAX);
    let mut sources = Vec::new();
    for path in paths {
        find_sources(path, &mut sources);
    }
    sources
        .into_iter()
        .map(|source| match source {
            Source::Stdin => match stdin.as_mut() {
                Some(reader) => ("-".to_owned(), read_limited(&mut **reader, limit)),
                None => ("-".to_owned(), Err("standard input is not read here".to_owned())),
            },
            Source::File(path) => {
                let text = fs::File::open(&path)
                    .map_err(|e| e.to_string())
                    .and_then(|mut f| read_limited(&mut f, limit));
                (path.display().to_string(), text)
            }
            Source::Broken(path, problem) => (path.display().to_string(), Err(problem)),
        })
        .collect()
}

/// Checks what [`read_manifests`] read.
pub fn check_contents(
    policy: &Policy,
    contents: &[(String, Result<String, String>)],
    options: &CheckOptions,
) -> super::Report {
    let inputs: Vec<Input<'_>> = contents
        .iter()
        .map(|(name, text)| match text {
            Ok(text) => Input::text(name, text),
            Err(problem) => Input::unreadable(name, problem),
        })
        .collect();
    check_documents_with(policy, &inputs, options)
}

/// Where manifests come from.
enum Source {
    Stdin,
    File(PathBuf),
    /// A path that cannot be read, with why.
    Broken(PathBuf, String),
}

/// Adds the sources `path` names: itself, or for a directory every manifest below it
/// (hidden entries and symbolic links to directories are left out), in name order.
fn find_sources(path: &Path, sources: &mut Vec<Source>) {
    if path.as_os_str() == "-" {
        sources.push(Source::Stdin);
        return;
    }
    match fs::metadata(path) {
        Err(error) => sources.push(Source::Broken(path.to_owned(), error.to_string())),
        Ok(meta) if !meta.is_dir() => sources.push(Source::File(path.to_owned())),
        Ok(_) => {
            match fs::read_dir(path).and_then(|entries| entries.collect::<io::Result<Vec<_>>>()) {
                Err(error) => sources.push(Source::Broken(path.to_owned(), error.to_string())),
                Ok(mut entries) => {
                    entries.sort_by_key(|entry| entry.file_name());
                    for entry in entries {
                        let path = entry.path();
                        let hidden = entry.file_name().to_string_lossy().starts_with('.');
                        let linked_dir =
                            entry.file_type().is_ok_and(|t| t.is_symlink()) && path.is_dir();
                        if hidden || linked_dir {
                            continue;
                        }
                        if path.is_dir() || is_manifest(&path) {
                            find_sources(&path, sources);
                        }
                    }
                }
            }
        }
    }
}

fn is_manifest(path: &Path) -> bool {
    path.extension()
        .is_some_and(|ext| ext == "yaml" || ext == "yml" || ext == "json")
}

/// Reads at most `limit` bytes of UTF-8 text.
fn read_limited(reader: &mut dyn Read, limit: usize) -> Result<String, String> {
    let mut bytes = Vec::new();
    reader
        .take(limit as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    if bytes.len() > limit {
        return Err(too_large(limit));
    }
    String::from_utf8(bytes).map_err(|e| {
        format!(
            "not UTF-8 text (a binary file?): invalid byte at offset {}",
            e.utf8_error().valid_up_to()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: PolicyCheckArgs,
    }

    /// Runs the command with `argv` and `stdin`; returns the exit code, stdout and stderr.
    fn run(argv: &[&str], stdin: &str) -> (u8, String, String) {
        let cli =
            Cli::try_parse_from(std::iter::once("check").chain(argv.iter().copied())).unwrap();
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = policy_check(&cli.args, &mut stdin.as_bytes(), &mut out, &mut err);
        (
            code,
            String::from_utf8(out).unwrap(),
            String::from_utf8(err).unwrap(),
        )
    }

    const GOOD: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\n  labels: {app.kubernetes.io/name: web, app.kubernetes.io/component: api, app.kubernetes.io/part-of: shop, app.kubernetes.io/version: '1'}\nspec:\n  containers:\n    - name: web\n      image: nginx:1.27\n      livenessProbe: {httpGet: {path: /, port: 80}}\n      readinessProbe: {httpGet: {path: /, port: 80}}\n      resources: {requests: {cpu: 100m, memory: 64Mi}, limits: {memory: 64Mi}}\n";

    #[test]
    fn a_compliant_manifest_on_stdin_exits_zero() {
        let (code, out, err) = run(&["-"], GOOD);
        assert_eq!(
            (code, out.as_str(), err.as_str()),
            (0, "pass: 4, fail: 0, warn: 0, error: 0, skip: 0\n", "")
        );
    }

    #[test]
    fn an_enforced_failure_exits_one_and_names_file_document_resource_and_rule() {
        let (code, out, _) = run(
            &["-"],
            &format!(
                "kind: ConfigMap\napiVersion: v1\n---\n{}",
                GOOD.replace("nginx:1.27", "nginx")
            ),
        );
        assert_eq!(code, 1);
        assert_eq!(
            out,
            "-:2 Pod/web disallow-latest-tag: container \"web\": image \"nginx\" has no tag; pin a version or a digest\npass: 3, fail: 1, warn: 0, error: 0, skip: 1\n"
        );
    }

    #[test]
    fn directories_are_searched_and_unreadable_paths_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("sub")).unwrap();
        fs::write(dir.path().join("sub/a.yaml"), GOOD).unwrap();
        fs::write(
            dir.path().join("b.json"),
            "{\"apiVersion\": \"v1\", \"kind\": \"Service\"}",
        )
        .unwrap();
        fs::write(dir.path().join("notes.txt"), "not a manifest").unwrap();
        fs::write(dir.path().join(".hidden.yaml"), "kind: [").unwrap();
        fs::write(dir.path().join("binary.yaml"), b"\xff\xfe\x00").unwrap();
        let missing = dir.path().join("missing.yaml");
        let (code, out, _) = run(
            &[dir.path().to_str().unwrap(), missing.to_str().unwrap()],
            "",
        );
        assert_eq!(code, 2);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 3, "{out}");
        assert!(
            lines[0].ends_with(
                "binary.yaml error: not UTF-8 text (a binary file?): invalid byte at offset 0"
            ),
            "{out}"
        );
        assert!(lines[1].contains("missing.yaml error: "), "{out}");
        assert_eq!(lines[2], "pass: 4, fail: 0, warn: 0, error: 2, skip: 1");
    }

    #[test]
    fn an_unusable_policy_file_exits_two_before_checking() {
        let dir = tempfile::tempdir().unwrap();
        let policy = dir.path().join("policy.yaml");
        fs::write(&policy, "rules:\n  require-lables: {}\n").unwrap();
        let (code, out, err) = run(&["--policy", policy.to_str().unwrap(), "-"], GOOD);
        assert_eq!((code, out.as_str()), (2, ""));
        assert!(err.contains("unknown rule ids: require-lables"), "{err}");
    }

    #[test]
    fn audit_violations_warn_and_exit_zero() {
        let dir = tempfile::tempdir().unwrap();
        let policy = dir.path().join("policy.yaml");
        fs::write(&policy, "rules:\n  disallow-latest-tag: {mode: Audit}\n").unwrap();
        let (code, out, _) = run(
            &["--policy", policy.to_str().unwrap(), "-"],
            &GOOD.replace("1.27", "latest"),
        );
        assert_eq!(code, 0);
        assert!(out.starts_with("-:1 Pod/web disallow-latest-tag: container \"web\": image \"nginx:latest\" uses the latest tag; pin a version or a digest (audit)\n"), "{out}");
        assert!(
            out.ends_with("pass: 3, fail: 0, warn: 1, error: 0, skip: 0\n"),
            "{out}"
        );
    }
}
