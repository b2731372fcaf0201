//! The template grammar, over bytes so that any text passes through untouched:
//!
//! - `$$` is a literal `$`;
//! - `$NAME` and `${NAME}` are replaced by the variable's value, names being
//!   `[A-Za-z_][A-Za-z0-9_]*`;
//! - `${NAME:-word}` uses `word` when `NAME` is unset or empty, `${NAME-word}` only when it
//!   is unset;
//! - `${NAME:?message}` is an error carrying `message` when `NAME` is unset or empty;
//! - `word` may hold further references and balanced braces (`${JSON:-{}}`); `message` is
//!   shown as written, never expanded;
//! - any other `$` is literal (`$1`, `$ `, `$é`), and a reference ends at its line: a `${`
//!   not closed on its line is an error.
//!
//! [`parse`] works on a piece of input that may end in the middle of a line, so that a
//! large template is read in chunks: with `more` set, a reference cut by the end of the
//! buffer is left unconsumed, to be parsed again with the next chunk.

/// A part of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Piece<'a> {
    /// Text copied as is.
    Text(&'a [u8]),
    /// `$$`, which stands for `$`.
    Dollar,
    /// A variable reference.
    Var(Var<'a>),
}

/// A variable reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Var<'a> {
    pub name: &'a str,
    pub op: Op<'a>,
    /// The reference as written, for references that are left alone.
    pub source: &'a [u8],
    /// Where the reference's `$` is in the buffer.
    pub offset: usize,
}

/// What a reference does when its variable is unset (or empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Op<'a> {
    /// `$NAME`, `${NAME}`: the variable must be set.
    Plain,
    /// `${NAME:-word}` (`if_empty`) or `${NAME-word}`.
    Default {
        if_empty: bool,
        word: Vec<Piece<'a>>,
    },
    /// `${NAME:?message}`.
    Required { message: &'a [u8] },
}

/// A malformed reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SyntaxError {
    /// Where the reference's `$` is in the buffer.
    pub offset: usize,
    pub message: &'static str,
}

/// The result of parsing a buffer.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Parsed<'a> {
    pub pieces: Vec<Piece<'a>>,
    pub errors: Vec<SyntaxError>,
    /// How much of the buffer the pieces cover; the rest starts a reference that the next
    /// chunk completes.
    pub consumed: usize,
}

const UNTERMINATED: &str = "unterminated `${`: no `}` on the same line";

enum Stop {
    /// The buffer ended inside a reference and more of the line follows.
    Incomplete,
    Syntax(SyntaxError),
}

/// Parses `buf`; `more` says that the line `buf` ends in continues in the next chunk.
pub(crate) fn parse(buf: &[u8], more: bool) -> Parsed<'_> {
    let parser = Parser { buf, more };
    let mut parsed = Parsed {
        pieces: Vec::new(),
        errors: Vec::new(),
        consumed: buf.len(),
    };
    let (mut text_start, mut pos) = (0, 0);
    while let Some(found) = buf[pos..].iter().position(|&b| b == b'$') {
        let at = pos + found;
        let piece = match parser.dollar(at) {
            Ok(None) => {
                pos = at + 1;
                continue;
            }
            Ok(Some(piece)) => piece,
            Err(Stop::Incomplete) => {
                parsed.consumed = at;
                break;
            }
            Err(Stop::Syntax(error)) => {
                parsed.errors.push(error);
                pos = error.offset + 1;
                continue;
            }
        };
        push_text(&mut parsed.pieces, &buf[text_start..at]);
        pos = piece.1;
        text_start = pos;
        parsed.pieces.push(piece.0);
    }
    push_text(&mut parsed.pieces, &buf[text_start..parsed.consumed]);
    parsed
}

fn push_text<'a>(pieces: &mut Vec<Piece<'a>>, text: &'a [u8]) {
    if !text.is_empty() {
        pieces.push(Piece::Text(text));
    }
}

/// Whether `name` is a variable name.
pub(crate) fn is_name(name: &str) -> bool {
    name.bytes().next().is_some_and(is_name_start) && name.bytes().all(is_name_byte)
}

fn is_name_start(byte: u8) -> bool {
    byte.is_ascii_alphabetic() || byte == b'_'
}

fn is_name_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'_'
}

struct Parser<'a> {
    buf: &'a [u8],
    more: bool,
}

impl<'a> Parser<'a> {
    /// The end of the buffer inside the reference starting at `at`.
    fn cut(&self, at: usize) -> Stop {
        if self.more {
            Stop::Incomplete
        } else {
            Stop::Syntax(SyntaxError {
                offset: at,
                message: UNTERMINATED,
            })
        }
    }

    fn name_end(&self, from: usize) -> usize {
        from + self.buf[from..]
            .iter()
            .take_while(|&&b| is_name_byte(b))
            .count()
    }

    /// The construct that the `$` at `at` starts, with where it ends; `None` for a literal `$`.
    fn dollar(&self, at: usize) -> Result<Option<(Piece<'a>, usize)>, Stop> {
        match self.buf.get(at + 1) {
            None if self.more => Err(Stop::Incomplete),
            Some(b'$') => Ok(Some((Piece::Dollar, at + 2))),
            Some(b'{') => self.braced(at).map(Some),
            Some(&b) if is_name_start(b) => {
                let end = self.name_end(at + 1);
                if end == self.buf.len() && self.more {
                    return Err(Stop::Incomplete);
                }
                Ok(Some((self.var(at, at + 1, end, Op::Plain, end), end)))
            }
            _ => Ok(None),
        }
    }

    fn var(
        &self,
        at: usize,
        name_start: usize,
        name_end: usize,
        op: Op<'a>,
        end: usize,
    ) -> Piece<'a> {
        let name = std::str::from_utf8(&self.buf[name_start..name_end]).expect("names are ASCII");
        Piece::Var(Var {
            name,
            op,
            source: &self.buf[at..end],
            offset: at,
        })
    }

    /// `${...}` starting at `at`.
    fn braced(&self, at: usize) -> Result<(Piece<'a>, usize), Stop> {
        let syntax = |message| {
            Stop::Syntax(SyntaxError {
                offset: at,
                message,
            })
        };
        let start = at + 2;
        let end = self.name_end(start);
        let Some(&next) = self.buf.get(end) else {
            return Err(self.cut(at));
        };
        if end == start {
            return Err(match next {
                b'}' => syntax("empty variable name in `${}`"),
                b'\n' => syntax(UNTERMINATED),
                _ => syntax("invalid variable name: names are [A-Za-z_][A-Za-z0-9_]*"),
            });
        }
        if !is_name_start(self.buf[start]) {
            return Err(syntax(
                "invalid variable name: names are [A-Za-z_][A-Za-z0-9_]*",
            ));
        }
        let (op_start, if_empty) = match (next, self.buf.get(end + 1)) {
            (b'}', _) => return Ok((self.var(at, start, end, Op::Plain, end + 1), end + 1)),
            (b'-', _) => (end + 1, false),
            (b':', Some(b'-')) => (end + 2, true),
            (b':', Some(b'?')) => {
                let (_, close) = self.word(at, end + 2)?;
                let op = Op::Required {
                    message: &self.buf[end + 2..close],
                };
                return Ok((self.var(at, start, end, op, close + 1), close + 1));
            }
            (b':', None) => return Err(self.cut(at)),
            (b'\n', _) => return Err(syntax(UNTERMINATED)),
            _ => {
                return Err(syntax(
                    "unsupported reference: after the name comes `}`, `:-`, `-` or `:?`",
                ));
            }
        };
        let (word, close) = self.word(at, op_start)?;
        Ok((
            self.var(at, start, end, Op::Default { if_empty, word }, close + 1),
            close + 1,
        ))
    }

    /// The word of the reference starting at `at`, from `from` to its closing `}`: its
    /// pieces, and where that `}` is.
    fn word(&self, at: usize, from: usize) -> Result<(Vec<Piece<'a>>, usize), Stop> {
        let mut pieces = Vec::new();
        let (mut text_start, mut pos, mut depth) = (from, from, 0usize);
        loop {
            let Some(&byte) = self.buf.get(pos) else {
                return Err(self.cut(at));
            };
            match byte {
                b'\n' => {
                    return Err(Stop::Syntax(SyntaxError {
                        offset: at,
                        message: UNTERMINATED,
                    }));
                }
                b'{' => depth += 1,
                b'}' if depth == 0 => {
                    push_text(&mut pieces, &self.buf[text_start..pos]);
                    return Ok((pieces, pos));
                }
                b'}' => depth -= 1,
                b'$' => {
                    if let Some((piece, end)) = self.dollar(pos)? {
                        push_text(&mut pieces, &self.buf[text_start..pos]);
                        pieces.push(piece);
                        (text_start, pos) = (end, end);
                        continue;
                    }
                }
                _ => {}
            }
            pos += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(input: &str) -> Vec<Piece<'_>> {
        let parsed = parse(input.as_bytes(), false);
        assert_eq!(parsed.errors, [], "{input}");
        assert_eq!(parsed.consumed, input.len());
        parsed.pieces
    }

    fn var<'a>(name: &'a str, op: Op<'a>, source: &'a str, offset: usize) -> Piece<'a> {
        Piece::Var(Var {
            name,
            op,
            source: source.as_bytes(),
            offset,
        })
    }

    fn text(t: &str) -> Piece<'_> {
        Piece::Text(t.as_bytes())
    }

    fn errors(input: &str) -> Vec<(usize, &'static str)> {
        parse(input.as_bytes(), false)
            .errors
            .iter()
            .map(|e| (e.offset, e.message))
            .collect()
    }

    #[test]
    fn names_are_ascii_letters_digits_and_underscores() {
        for name in ["A", "_x1", "abc_DEF"] {
            assert!(is_name(name), "{name}");
        }
        for name in ["", "1A", "A-B", "A B", "é", "A}"] {
            assert!(!is_name(name), "{name}");
        }
    }

    #[test]
    fn plain_and_braced_references() {
        assert_eq!(
            parts("a $HOME_1/b ${X}c"),
            vec![
                text("a "),
                var("HOME_1", Op::Plain, "$HOME_1", 2),
                text("/b "),
                var("X", Op::Plain, "${X}", 12),
                text("c")
            ]
        );
    }

    #[test]
    fn double_dollar_is_a_literal_dollar() {
        assert_eq!(
            parts("$$HOME $${X}"),
            vec![Piece::Dollar, text("HOME "), Piece::Dollar, text("{X}")]
        );
    }

    #[test]
    fn a_dollar_not_starting_a_name_is_literal() {
        assert_eq!(
            parts("cost $5, $ é$é $-x $"),
            vec![text("cost $5, $ é$é $-x $")]
        );
    }

    #[test]
    fn defaults_and_required_forms() {
        let default = |if_empty, word| Op::Default { if_empty, word };
        assert_eq!(
            parts("${A:-x y}"),
            vec![var("A", default(true, vec![text("x y")]), "${A:-x y}", 0)]
        );
        assert_eq!(
            parts("${A-}"),
            vec![var("A", default(false, vec![]), "${A-}", 0)]
        );
        assert_eq!(
            parts("${A:?set A}"),
            vec![var(
                "A",
                Op::Required { message: b"set A" },
                "${A:?set A}",
                0
            )]
        );
    }

    #[test]
    fn words_nest_references_and_balanced_braces() {
        let inner = var(
            "B",
            Op::Default {
                if_empty: true,
                word: vec![text("{}")],
            },
            "${B:-{}}",
            5,
        );
        assert_eq!(
            parts("${A:-${B:-{}}/$C}"),
            vec![var(
                "A",
                Op::Default {
                    if_empty: true,
                    word: vec![inner, text("/"), var("C", Op::Plain, "$C", 14)]
                },
                "${A:-${B:-{}}/$C}",
                0
            )]
        );
        assert_eq!(
            parts("${A:-{a}}}"),
            vec![
                var(
                    "A",
                    Op::Default {
                        if_empty: true,
                        word: vec![text("{a}")]
                    },
                    "${A:-{a}}",
                    0
                ),
                text("}")
            ]
        );
    }

    #[test]
    fn unicode_passes_through() {
        assert_eq!(
            errors("ünï ${Ç:-x}"),
            vec![(6, "invalid variable name: names are [A-Za-z_][A-Za-z0-9_]*")]
        );
        assert_eq!(
            parts("€$A€"),
            vec![text("€"), var("A", Op::Plain, "$A", 3), text("€")]
        );
    }

    #[test]
    fn malformed_references_are_errors_at_their_dollar() {
        assert_eq!(errors("x ${A"), vec![(2, UNTERMINATED)]);
        assert_eq!(errors("${A:-b\n}"), vec![(0, UNTERMINATED)]);
        assert_eq!(errors("${"), vec![(0, UNTERMINATED)]);
        assert_eq!(errors("${}"), vec![(0, "empty variable name in `${}`")]);
        assert_eq!(
            errors("${1A}"),
            vec![(0, "invalid variable name: names are [A-Za-z_][A-Za-z0-9_]*")]
        );
        assert_eq!(
            errors("${A?x}"),
            vec![(
                0,
                "unsupported reference: after the name comes `}`, `:-`, `-` or `:?`"
            )]
        );
        assert_eq!(
            errors("${A:+x}"),
            vec![(
                0,
                "unsupported reference: after the name comes `}`, `:-`, `-` or `:?`"
            )]
        );
        assert_eq!(errors("${A:-{}"), vec![(0, UNTERMINATED)]);
    }

    #[test]
    fn each_malformed_reference_is_reported_once_and_parsing_goes_on() {
        let parsed = parse(b"${A:-${} ${B", false);
        assert_eq!(
            parsed.errors.iter().map(|e| e.offset).collect::<Vec<_>>(),
            vec![5, 9]
        );
        let parsed = parse(b"${1} $OK", false);
        assert_eq!(parsed.pieces.last(), Some(&var("OK", Op::Plain, "$OK", 5)));
    }

    #[test]
    fn a_reference_cut_by_the_chunk_end_is_left_for_the_next_chunk() {
        for cut in [
            "ab $",
            "ab $NA",
            "ab ${NAME",
            "ab ${NAME:",
            "ab ${NAME:-x ${Y",
        ] {
            let parsed = parse(cut.as_bytes(), true);
            assert_eq!(
                (parsed.consumed, parsed.errors.as_slice()),
                (3, &[][..]),
                "{cut}"
            );
            assert_eq!(parsed.pieces, vec![text("ab ")]);
        }
        assert_eq!(parse(b"ab $", false).pieces, vec![text("ab $")]);
    }
}
