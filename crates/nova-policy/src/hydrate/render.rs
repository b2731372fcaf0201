//! Rendering a template: read it in chunks, resolve each reference once, write the result,
//! and collect every problem rather than stopping at the first.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt;
use std::io::{self, BufRead, Read, Write};

use super::grammar::{self, Op, Piece, Var};
use super::sources::{Found, ValueSource};

/// A template is read at most this much at a time, so a large one is never held whole.
const CHUNK: usize = 64 * 1024;

/// A reference still open after this many bytes (and the chunk that crosses the limit) is
/// reported as unterminated, so that a `${` without its `}` cannot make a long line be held
/// whole.
const MAX_REFERENCE: usize = 64 * 1024;

/// Renders templates from a list of value sources; the first source that has a variable
/// gives its value.
pub struct Hydrator<'s> {
    sources: Vec<Box<dyn ValueSource + 's>>,
    allow: Option<BTreeSet<String>>,
    /// How much of the template is read at a time: [`CHUNK`], smaller in tests.
    chunk: usize,
}

/// Where a problem is in the template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
}

/// Something in the template that stops it from rendering.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Where the reference (its `$`) is.
    pub position: Position,
    /// What is wrong.
    pub kind: ProblemKind,
}

/// What the problem is. None of them holds a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProblemKind {
    /// A malformed reference.
    Syntax(&'static str),
    /// `$NAME` or `${NAME}` with `NAME` in no source.
    Unset(String),
    /// `${NAME:?message}` with `NAME` unset or empty; the message as written.
    Required(String, String),
    /// A source failed to look `NAME` up.
    Source(String, String),
}

impl fmt::Display for ProblemKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProblemKind::Syntax(message) => f.write_str(message),
            ProblemKind::Unset(name) => write!(f, "{name} is not set"),
            ProblemKind::Required(name, message) if message.is_empty() => {
                write!(f, "{name} is not set or empty")
            }
            ProblemKind::Required(name, message) => {
                write!(f, "{name} is not set or empty: {message}")
            }
            ProblemKind::Source(name, error) => write!(f, "{name}: {error}"),
        }
    }
}

/// Why a template did not render. Nothing that was written may be used.
#[derive(Debug, thiserror::Error)]
pub enum HydrateError {
    /// The template has problems, all listed.
    #[error("{}", list(template, problems))]
    Template {
        /// The template's display name.
        template: String,
        /// Every problem, in template order.
        problems: Vec<Problem>,
    },
    /// The template is not text.
    #[error("{template}:{line}: binary content (NUL byte); not a text template")]
    Binary {
        /// The template's display name.
        template: String,
        /// The line with the first NUL byte.
        line: usize,
    },
    /// Reading the template or writing the result failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done (`reading app.tmpl`, `replacing app.yaml`).
        what: String,
        /// The error.
        source: io::Error,
    },
}

fn list(template: &str, problems: &[Problem]) -> String {
    let lines: Vec<String> = problems
        .iter()
        .map(|p| {
            format!(
                "{template}:{}:{}: {}",
                p.position.line, p.position.column, p.kind
            )
        })
        .collect();
    lines.join("\n")
}

/// Where a variable's value comes from, as `--dry-run` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A source has it; where (`environment`, `env file app.env:3`).
    Source(String),
    /// Unset (or empty with `:-`): the reference's default is used.
    Default,
    /// Not in `--allow`: left as written.
    NotAllowed,
    /// Nowhere: the template does not render.
    Missing,
}

/// A variable the template uses: where first, and where its value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Usage {
    /// The variable.
    pub name: String,
    /// Its first reference.
    pub position: Position,
    /// Where its value comes from at that reference.
    pub origin: Origin,
}

/// What a dry run finds: the variables in order of first use, and the problems.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    /// Each variable once, in order of first use.
    pub usages: Vec<Usage>,
    /// What would stop the template from rendering.
    pub problems: Vec<Problem>,
}

impl<'s> Hydrator<'s> {
    /// A hydrator over `sources`, asked in order.
    pub fn new(sources: Vec<Box<dyn ValueSource + 's>>) -> Self {
        Hydrator {
            sources,
            allow: None,
            chunk: CHUNK,
        }
    }

    /// Substitutes only the variables named; references to others are left as written.
    pub fn allow_only(mut self, names: impl IntoIterator<Item = String>) -> Self {
        self.allow = Some(names.into_iter().collect());
        self
    }

    /// Renders `template` into `out`. On error, what was written to `out` is incomplete and
    /// must be thrown away; `template` names the template in messages.
    pub fn render(
        &self,
        template: &str,
        input: &mut dyn BufRead,
        out: &mut dyn Write,
    ) -> Result<(), HydrateError> {
        let plan = self.walk(template, input, Some(out))?;
        if plan.problems.is_empty() {
            Ok(())
        } else {
            Err(HydrateError::Template {
                template: template.to_owned(),
                problems: plan.problems,
            })
        }
    }

    /// Lists the variables `template` uses and where each value would come from, without
    /// writing anything.
    pub fn plan(&self, template: &str, input: &mut dyn BufRead) -> Result<Plan, HydrateError> {
        self.walk(template, input, None)
    }

    fn walk(
        &self,
        template: &str,
        input: &mut dyn BufRead,
        out: Option<&mut dyn Write>,
    ) -> Result<Plan, HydrateError> {
        let mut walk = Walk {
            hydrator: self,
            cache: HashMap::new(),
            plan: Plan::default(),
            seen: HashSet::new(),
            out: Vec::new(),
            line: 1,
            column: 0,
        };
        let mut out = out;
        let mut buf = Vec::new();
        let read_error = |source| HydrateError::Io {
            what: format!("reading {template}"),
            source,
        };
        loop {
            let carried = buf.len();
            let read = Read::take(&mut *input, self.chunk as u64)
                .read_until(b'\n', &mut buf)
                .map_err(read_error)?;
            if buf[carried..].contains(&0) {
                return Err(HydrateError::Binary {
                    template: template.to_owned(),
                    line: walk.line,
                });
            }
            if buf.is_empty() {
                break;
            }
            let line_ends = buf.ends_with(b"\n");
            let more = read > 0 && !line_ends && carried < MAX_REFERENCE;
            let parsed = grammar::parse(&buf, more);
            for error in &parsed.errors {
                let position = walk.position(&buf, error.offset);
                walk.plan.problems.push(Problem {
                    position,
                    kind: ProblemKind::Syntax(error.message),
                });
            }
            for piece in &parsed.pieces {
                walk.piece(piece, &buf);
            }
            if let Some(out) = out.as_deref_mut() {
                out.write_all(&walk.out)
                    .map_err(|source| HydrateError::Io {
                        what: "writing the output".to_owned(),
                        source,
                    })?;
            }
            walk.out.clear();
            if line_ends {
                (walk.line, walk.column) = (walk.line + 1, 0);
            } else {
                walk.column += chars(&buf[..parsed.consumed]);
            }
            buf.drain(..parsed.consumed);
        }
        if let Some(out) = out {
            out.flush().map_err(|source| HydrateError::Io {
                what: "writing the output".to_owned(),
                source,
            })?;
        }
        // Syntax errors of a chunk are found before its references are resolved.
        walk.plan
            .problems
            .sort_by_key(|p| (p.position.line, p.position.column));
        Ok(walk.plan)
    }
}

/// The number of characters in UTF-8 `bytes` (bytes that do not continue a character).
fn chars(bytes: &[u8]) -> usize {
    bytes.iter().filter(|&&b| b & 0xC0 != 0x80).count()
}

/// State of one rendering.
struct Walk<'h, 's> {
    hydrator: &'h Hydrator<'s>,
    cache: HashMap<String, Result<Option<Found>, String>>,
    plan: Plan,
    /// Names already in `plan.usages`.
    seen: HashSet<String>,
    /// The rendered text of the current chunk.
    out: Vec<u8>,
    line: usize,
    /// Characters of the current line in chunks already done.
    column: usize,
}

impl Walk<'_, '_> {
    fn position(&self, buf: &[u8], offset: usize) -> Position {
        Position {
            line: self.line,
            column: self.column + chars(&buf[..offset]) + 1,
        }
    }

    fn piece(&mut self, piece: &Piece<'_>, buf: &[u8]) {
        match piece {
            Piece::Text(text) => self.out.extend_from_slice(text),
            Piece::Dollar => self.out.push(b'$'),
            Piece::Var(var) => self.var(var, buf),
        }
    }

    fn var(&mut self, var: &Var<'_>, buf: &[u8]) {
        let position = self.position(buf, var.offset);
        if self
            .hydrator
            .allow
            .as_ref()
            .is_some_and(|allow| !allow.contains(var.name))
        {
            self.out.extend_from_slice(var.source);
            self.used(var.name, position, Origin::NotAllowed);
            return;
        }
        let found = match self.lookup(var.name) {
            Ok(found) => found,
            Err(error) => {
                self.plan.problems.push(Problem {
                    position,
                    kind: ProblemKind::Source(var.name.to_owned(), error),
                });
                return;
            }
        };
        let usable = |if_empty: bool| {
            found
                .as_ref()
                .filter(|f| !(if_empty && f.value.expose().is_empty()))
        };
        let (value, problem) = match &var.op {
            Op::Plain => (found.as_ref(), ProblemKind::Unset(var.name.to_owned())),
            Op::Required { message } => {
                let message = String::from_utf8_lossy(message).into_owned();
                (
                    usable(true),
                    ProblemKind::Required(var.name.to_owned(), message),
                )
            }
            Op::Default { if_empty, word } => {
                if let Some(found) = usable(*if_empty) {
                    self.out.extend_from_slice(found.value.expose().as_bytes());
                    self.used(var.name, position, Origin::Source(found.origin.clone()));
                } else {
                    self.used(var.name, position, Origin::Default);
                    for piece in word {
                        self.piece(piece, buf);
                    }
                }
                return;
            }
        };
        match value {
            Some(found) => {
                self.out.extend_from_slice(found.value.expose().as_bytes());
                self.used(var.name, position, Origin::Source(found.origin.clone()));
            }
            None => {
                self.plan.problems.push(Problem {
                    position,
                    kind: problem,
                });
                self.used(var.name, position, Origin::Missing);
            }
        }
    }

    /// The first source's value of `name`; each name is looked up once.
    fn lookup(&mut self, name: &str) -> Result<Option<Found>, String> {
        if let Some(cached) = self.cache.get(name) {
            return cached.clone();
        }
        let mut result = Ok(None);
        for source in &self.hydrator.sources {
            match source.lookup(name) {
                Ok(None) => continue,
                Ok(found) => result = Ok(found),
                Err(error) => result = Err(error.0),
            }
            break;
        }
        self.cache.insert(name.to_owned(), result.clone());
        result
    }

    /// Records the first use of each variable.
    fn used(&mut self, name: &str, position: Position, origin: Origin) {
        if !self.seen.contains(name) {
            self.seen.insert(name.to_owned());
            self.plan.usages.push(Usage {
                name: name.to_owned(),
                position,
                origin,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hydrate::StaticValues;
    use proptest::prelude::*;

    fn hydrator(chunk: usize) -> Hydrator<'static> {
        let values = [("A", "alpha"), ("EMPTY", ""), ("U", "ünï")];
        let values = values.map(|(k, v)| (k.to_owned(), v.to_owned()));
        let mut hydrator = Hydrator::new(vec![Box::new(StaticValues::new("test", values))]);
        hydrator.chunk = chunk;
        hydrator
    }

    /// The output, or the problems listed as `line:column: problem`.
    fn render(hydrator: &Hydrator<'_>, template: &[u8]) -> Result<Vec<u8>, String> {
        let mut out = Vec::new();
        match hydrator.render("t", &mut &template[..], &mut out) {
            Ok(()) => Ok(out),
            Err(error) => Err(error.to_string()),
        }
    }

    #[test]
    fn renders_values_defaults_and_escapes() {
        let template =
            b"$A ${A}-${EMPTY:-d1}-${EMPTY-d2}-${NOPE-d3}-${NOPE:-${U}}-$$A-${NOPE:-{}}\n";
        assert_eq!(
            render(&hydrator(CHUNK), template).unwrap(),
            "alpha alpha-d1--d3-\u{fc}n\u{ef}-$A-{}\n".as_bytes()
        );
    }

    #[test]
    fn problems_have_lines_and_character_columns() {
        let template = "ok $A\nünï $NOPE ${EMPTY:?say why} ${A:-${ALSO_NOPE}}\n${\n";
        assert_eq!(
            render(&hydrator(CHUNK), template.as_bytes()).unwrap_err(),
            "t:2:5: NOPE is not set\nt:2:11: EMPTY is not set or empty: say why\nt:3:1: unterminated `${`: no `}` on the same line"
        );
    }

    #[test]
    fn a_reference_longer_than_the_limit_is_unterminated() {
        let mut template = b"x ${A:-".to_vec();
        template.extend(std::iter::repeat_n(b'y', MAX_REFERENCE + 2048));
        template.extend_from_slice(b"}\n");
        let error = render(&hydrator(1024), &template).unwrap_err();
        assert_eq!(error, "t:1:3: unterminated `${`: no `}` on the same line");
    }

    fn template() -> impl Strategy<Value = Vec<u8>> {
        let token = prop::sample::select(vec![
            "$A",
            "${A}",
            "${EMPTY:-x}",
            "${NOPE-y}",
            "${U:?m}",
            "${NOPE:?gone}",
            "${A:-${NOPE}}",
            "$$",
            "$",
            "${",
            "}",
            "{",
            "${1}",
            "${A:+x}",
            "text ",
            "é",
            "\n",
            "\t",
            "$NOPE",
        ]);
        prop::collection::vec(token, 0..40).prop_map(|tokens| tokens.concat().into_bytes())
    }

    proptest! {
        #[test]
        fn reading_in_small_chunks_changes_nothing(template in template(), chunk in 1usize..9) {
            prop_assert_eq!(render(&hydrator(chunk), &template), render(&hydrator(CHUNK), &template));
        }

        #[test]
        fn no_input_panics(bytes in prop::collection::vec(any::<u8>(), 0..300), chunk in 1usize..5) {
            let _ = render(&hydrator(chunk), &bytes);
            let _ = hydrator(CHUNK).plan("t", &mut &bytes[..]);
        }
    }
}
