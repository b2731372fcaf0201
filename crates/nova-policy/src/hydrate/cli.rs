//! `nova hydrate`: render a template from the environment and env files, all or nothing.

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Seek, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use super::grammar::is_name;
use super::render::{HydrateError, Hydrator, Origin, Plan};
use super::sources::{EnvFile, Environment, ValueSource};

/// Exit code when the template rendered.
const EXIT_OK: u8 = 0;
/// Exit code when the template has problems (unset variables, malformed references).
const EXIT_TEMPLATE: u8 = 1;
/// Exit code when arguments, files or the output are unusable.
const EXIT_ERROR: u8 = 2;

/// Arguments of `nova hydrate`.
#[derive(Debug, Clone, clap::Args)]
pub struct HydrateArgs {
    /// The template, or `-` for standard input.
    #[arg(value_name = "TEMPLATE")]
    pub template: PathBuf,
    /// Where to write the result; it is replaced only when the whole template rendered.
    /// Standard output when omitted.
    #[arg(short = 'o', long = "output", value_name = "OUT")]
    pub output: Option<PathBuf>,
    /// An env file of NAME=value lines; may be repeated. Later files win over earlier ones,
    /// and the environment wins over all files.
    #[arg(long = "env-file", value_name = "FILE")]
    pub env_files: Vec<PathBuf>,
    /// Substitute only these variables; references to any other are left as written.
    #[arg(long, value_name = "VAR,...", value_delimiter = ',')]
    pub allow: Option<Vec<String>>,
    /// List each variable and where its value would come from, without writing anything or
    /// showing any value.
    #[arg(long)]
    pub dry_run: bool,
}

/// Runs `nova hydrate`: exit code 0 when the template rendered, 1 when it has problems
/// (all listed on standard error), 2 when arguments, files or the output are unusable.
pub fn run_hydrate(args: HydrateArgs) -> ExitCode {
    run_hydrate_with(args, Vec::new())
}

/// Runs `nova hydrate` with more sources of values: they are asked after the environment and
/// before the env files, in the order given. A program embedding the command (the `nova`
/// binary, with its secret store) adds its own sources this way.
pub fn run_hydrate_with(args: HydrateArgs, extra: Vec<Box<dyn ValueSource>>) -> ExitCode {
    let code = hydrate(
        &args,
        Environment,
        extra,
        &mut io::stdin().lock(),
        &mut io::stdout().lock(),
        &mut io::stderr().lock(),
    );
    ExitCode::from(code)
}

/// Says what went wrong on standard error, each line prefixed with the command.
fn complain(stderr: &mut dyn Write, message: &dyn std::fmt::Display) {
    for line in message.to_string().lines() {
        let _ = writeln!(stderr, "nova hydrate: {line}");
    }
}

fn hydrate(
    args: &HydrateArgs,
    environment: impl ValueSource + 'static,
    extra: Vec<Box<dyn ValueSource>>,
    stdin: &mut dyn BufRead,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
) -> u8 {
    if let Some(bad) = args.allow.iter().flatten().find(|name| !is_name(name)) {
        complain(stderr, &format!("--allow: invalid variable name `{bad}`"));
        return EXIT_ERROR;
    }
    let mut sources: Vec<Box<dyn ValueSource>> = vec![Box::new(environment)];
    sources.extend(extra);
    for path in args.env_files.iter().rev() {
        match EnvFile::load(path) {
            Ok(file) => sources.push(Box::new(file)),
            Err(error) => {
                complain(stderr, &error);
                return EXIT_ERROR;
            }
        }
    }
    let mut hydrator = Hydrator::new(sources);
    if let Some(allow) = &args.allow {
        hydrator = hydrator.allow_only(allow.iter().cloned());
    }
    let name = args.template.display().to_string();
    let mut file_input;
    let input: &mut dyn BufRead = if args.template.as_os_str() == "-" {
        stdin
    } else {
        match File::open(&args.template) {
            Ok(file) => {
                file_input = BufReader::new(file);
                &mut file_input
            }
            Err(error) => {
                complain(stderr, &format!("{name}: {error}"));
                return EXIT_ERROR;
            }
        }
    };
    let result = if args.dry_run {
        hydrator
            .plan(&name, input)
            .map(|plan| print_plan(&plan, stdout, stderr))
    } else {
        match args.output.as_deref().filter(|out| out.as_os_str() != "-") {
            Some(out) => render_to_file(&hydrator, &name, input, out),
            None => render_to_stdout(&hydrator, &name, input, stdout),
        }
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            complain(stderr, &error);
            let nothing = match args.output.as_deref() {
                Some(out) if !args.dry_run => {
                    format!("nothing was written; {} is unchanged", out.display())
                }
                _ => "nothing was written".to_owned(),
            };
            complain(stderr, &nothing);
            match error {
                HydrateError::Template { .. } | HydrateError::Binary { .. } => EXIT_TEMPLATE,
                HydrateError::Io { .. } => EXIT_ERROR,
            }
        }
    }
}

fn print_plan(plan: &Plan, stdout: &mut dyn Write, stderr: &mut dyn Write) -> u8 {
    for usage in &plan.usages {
        let origin = match &usage.origin {
            Origin::Source(origin) => format!("from {origin}"),
            Origin::Default => "the template's default".to_owned(),
            Origin::NotAllowed => "not in --allow; left as written".to_owned(),
            Origin::Missing => "MISSING".to_owned(),
        };
        let _ = writeln!(
            stdout,
            "{} ({}:{}): {origin}",
            usage.name, usage.position.line, usage.position.column
        );
    }
    if plan.problems.is_empty() {
        return EXIT_OK;
    }
    for problem in &plan.problems {
        complain(
            stderr,
            &format!(
                "{}:{}: {}",
                problem.position.line, problem.position.column, problem.kind
            ),
        );
    }
    EXIT_TEMPLATE
}

fn io_error(what: String) -> impl FnOnce(io::Error) -> HydrateError {
    move |source| HydrateError::Io { what, source }
}

/// Renders into a temporary file next to `out` and renames it over `out` only on success,
/// so `out` is never left truncated or half written. The file is created with mode 0600.
fn render_to_file(
    hydrator: &Hydrator<'_>,
    name: &str,
    input: &mut dyn BufRead,
    out: &Path,
) -> Result<u8, HydrateError> {
    let dir = match out.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let temp = tempfile::NamedTempFile::new_in(dir)
        .map_err(io_error(format!("creating a file in {}", dir.display())))?;
    let mut writer = BufWriter::new(temp);
    hydrator.render(name, input, &mut writer)?;
    let temp = writer
        .into_inner()
        .map_err(|e| io_error("writing the output".to_owned())(e.into_error()))?;
    temp.persist(out)
        .map_err(|e| io_error(format!("replacing {}", out.display()))(e.error))?;
    Ok(EXIT_OK)
}

/// Renders into an anonymous temporary file and copies it out only on success, so a failed
/// template prints nothing.
fn render_to_stdout(
    hydrator: &Hydrator<'_>,
    name: &str,
    input: &mut dyn BufRead,
    stdout: &mut dyn Write,
) -> Result<u8, HydrateError> {
    let mut spool = BufWriter::new(
        tempfile::tempfile().map_err(io_error("creating a temporary file".to_owned()))?,
    );
    hydrator.render(name, input, &mut spool)?;
    let mut spool = spool
        .into_inner()
        .map_err(|e| io_error("writing the output".to_owned())(e.into_error()))?;
    spool
        .rewind()
        .map_err(io_error("reading the output back".to_owned()))?;
    io::copy(&mut spool, stdout)
        .and_then(|_| stdout.flush())
        .map_err(io_error("writing to standard output".to_owned()))?;
    Ok(EXIT_OK)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hydrate::StaticValues;
    use clap::Parser;
    use std::fs;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: HydrateArgs,
    }

    const SECRET: &str = "s3cr3t-value";

    /// Runs the command with `argv`, an environment holding `DB_PASS`, and `stdin`.
    fn run(argv: &[&str], stdin: &str) -> (u8, String, String) {
        run_with(argv, stdin, Vec::new())
    }

    /// [`run`] with extra sources.
    fn run_with(
        argv: &[&str],
        stdin: &str,
        extra: Vec<Box<dyn ValueSource>>,
    ) -> (u8, String, String) {
        let cli =
            Cli::try_parse_from(std::iter::once("hydrate").chain(argv.iter().copied())).unwrap();
        let env = StaticValues::new("environment", [("DB_PASS".to_owned(), SECRET.to_owned())]);
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = hydrate(
            &cli.args,
            env,
            extra,
            &mut stdin.as_bytes(),
            &mut out,
            &mut err,
        );
        let (out, err) = (
            String::from_utf8(out).unwrap(),
            String::from_utf8(err).unwrap(),
        );
        assert!(!err.contains(SECRET), "a value leaked: {err}");
        (code, out, err)
    }

    #[test]
    fn renders_stdin_to_stdout() {
        assert_eq!(
            run(&["-"], "pass=$DB_PASS cost=$$5\n"),
            (0, format!("pass={SECRET} cost=$5\n"), String::new())
        );
    }

    #[test]
    fn every_unset_variable_is_listed_and_nothing_is_printed() {
        let (code, out, err) = run(
            &["-"],
            "a: $NOPE_A\nb: ${DB_PASS} ${NOPE_B:?ask ops} ${NOPE_A}\n",
        );
        assert_eq!((code, out.as_str()), (1, ""));
        assert_eq!(
            err,
            "nova hydrate: -:1:4: NOPE_A is not set\nnova hydrate: -:2:15: NOPE_B is not set or empty: ask ops\nnova hydrate: -:2:34: NOPE_A is not set\nnova hydrate: nothing was written\n"
        );
    }

    #[test]
    fn a_failed_render_leaves_an_existing_output_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("app.yaml");
        fs::write(&out, "old contents\n").unwrap();
        let (code, _, err) = run(&["-", "-o", out.to_str().unwrap()], "x: $MISSING\n");
        assert_eq!(code, 1);
        assert!(
            err.ends_with(&format!(
                "nothing was written; {} is unchanged\n",
                out.display()
            )),
            "{err}"
        );
        assert_eq!(fs::read_to_string(&out).unwrap(), "old contents\n");
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temporary file is left behind"
        );
    }

    #[test]
    fn a_failed_render_creates_no_output() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("app.yaml");
        assert_eq!(run(&["-", "-o", out.to_str().unwrap()], "${").0, 1);
        assert!(!out.exists());
    }

    #[test]
    fn a_successful_render_replaces_the_output() {
        let dir = tempfile::tempdir().unwrap();
        let (template, out) = (dir.path().join("app.tmpl"), dir.path().join("app.yaml"));
        fs::write(&template, "pass: ${DB_PASS}\n").unwrap();
        fs::write(&out, "old\n").unwrap();
        assert_eq!(
            run(
                &[template.to_str().unwrap(), "-o", out.to_str().unwrap()],
                ""
            ),
            (0, String::new(), String::new())
        );
        assert_eq!(
            fs::read_to_string(&out).unwrap(),
            format!("pass: {SECRET}\n")
        );
    }

    #[test]
    fn env_files_are_sources_and_the_environment_wins() {
        let dir = tempfile::tempdir().unwrap();
        let (first, second) = (dir.path().join("a.env"), dir.path().join("b.env"));
        fs::write(&first, "HOST=first\nPORT=1\nDB_PASS=from-file\n").unwrap();
        fs::write(&second, "HOST=second\n").unwrap();
        let files = [
            "--env-file",
            first.to_str().unwrap(),
            "--env-file",
            second.to_str().unwrap(),
        ];
        let (code, out, _) = run(&[&files[..], &["-"]].concat(), "$HOST:$PORT:$DB_PASS\n");
        assert_eq!((code, out), (0, format!("second:1:{SECRET}\n")));
    }

    #[test]
    fn extra_sources_come_after_the_environment_and_before_env_files() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.env");
        fs::write(&file, "HOST=from-file\nPORT=1\n").unwrap();
        let store = StaticValues::new(
            "secret store app",
            [
                ("HOST".to_owned(), "from-store".to_owned()),
                ("DB_PASS".to_owned(), "store-pass".to_owned()),
            ],
        );
        let argv = ["--env-file", file.to_str().unwrap(), "-"];
        let (code, out, _) = run_with(&argv, "$HOST:$PORT:$DB_PASS\n", vec![Box::new(store.clone())]);
        assert_eq!((code, out), (0, format!("from-store:1:{SECRET}\n")));
        let (_, out, _) = run_with(&["--dry-run", "-"], "$HOST\n", vec![Box::new(store)]);
        assert_eq!(out, "HOST (1:1): from secret store app\n");
    }

    #[test]
    fn allow_leaves_other_references_as_written() {
        let (code, out, _) = run(
            &["--allow", "DB_PASS", "-"],
            "$DB_PASS ${HOME:-x} $$ $OTHER\n",
        );
        assert_eq!(
            (code, out),
            (0, format!("{SECRET} ${{HOME:-x}} $ $OTHER\n"))
        );
    }

    #[test]
    fn dry_run_lists_origins_without_values() {
        let (code, out, err) = run(
            &["--dry-run", "--allow", "DB_PASS,PORT,GONE", "-"],
            "$DB_PASS ${PORT:-80} $HOME $GONE\n",
        );
        assert_eq!(code, 1);
        assert_eq!(
            out,
            "DB_PASS (1:1): from environment\nPORT (1:10): the template's default\nHOME (1:22): not in --allow; left as written\nGONE (1:28): MISSING\n"
        );
        assert_eq!(err, "nova hydrate: 1:28: GONE is not set\n");
    }

    #[test]
    fn bad_arguments_and_files_exit_two() {
        assert_eq!(run(&["--allow", "NOT-A-NAME", "-"], "").0, 2);
        assert_eq!(run(&["/no/such/template"], "").0, 2);
        let (code, _, err) = run(&["--env-file", "/no/such.env", "-"], "");
        assert_eq!(code, 2);
        assert!(
            err.starts_with("nova hydrate: env file /no/such.env: "),
            "{err}"
        );
    }

    #[test]
    fn a_binary_template_is_refused() {
        let (code, out, err) = run(&["-"], "ok\nbin\0ary\n");
        assert_eq!((code, out.as_str()), (1, ""));
        assert!(
            err.starts_with("nova hydrate: -:2: binary content"),
            "{err}"
        );
    }
}
