//! Cutting an input into its documents before any of them is parsed.
//!
//! Each document is parsed on its own, so one broken document is one error and the others
//! are still checked, document numbers stay stable, and the documents of one large file can
//! be checked on several threads.
//!
//! YAML: a line that starts with `---` or `...` followed by white space (or nothing) is a
//! document marker wherever it appears; the YAML specification forbids such lines inside
//! scalars (production `c-forbidden`), so cutting at them is exact. Directives (`%YAML`) and
//! comments before a `---` belong to the document that `---` starts.
//!
//! JSON: an input whose first character is `{` or `[` and that is one or more complete JSON
//! values in a row is read as JSON, one document per value. Anything else is YAML.

/// One document of an input, not parsed yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RawDocument<'a> {
    /// 1-based position of the document in its input.
    pub index: usize,
    /// 1-based line of the input on which the document's text starts.
    pub line: usize,
    /// The document's text.
    pub text: &'a str,
}

/// Cuts `text` into its documents, JSON or YAML as described in the module documentation.
pub(crate) fn split(text: &str) -> Vec<RawDocument<'_>> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    split_json(text).unwrap_or_else(|| split_yaml(text))
}

fn split_json(text: &str) -> Option<Vec<RawDocument<'_>>> {
    let first = text.trim_start();
    if !(first.starts_with('{') || first.starts_with('[')) {
        return None;
    }
    let mut documents = Vec::new();
    let mut stream = serde_json::Deserializer::from_str(text).into_iter::<serde::de::IgnoredAny>();
    let mut start = 0;
    while let Some(value) = stream.next() {
        value.ok()?;
        let end = stream.byte_offset();
        let skipped = text[start..end].len() - text[start..end].trim_start().len();
        let value_start = start + skipped;
        documents.push(RawDocument {
            index: documents.len() + 1,
            line: line_of(text, value_start),
            text: &text[value_start..end],
        });
        start = end;
    }
    Some(documents)
}

/// 1-based line number of byte `offset` in `text`.
fn line_of(text: &str, offset: usize) -> usize {
    1 + text.as_bytes()[..offset]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
}

fn split_yaml(text: &str) -> Vec<RawDocument<'_>> {
    let mut documents = Vec::new();
    let mut current = Pending {
        start: 0,
        line: 1,
        marker: false,
        content: false,
    };
    let mut offset = 0;
    for (number, line) in (1..).zip(text.split_inclusive('\n')) {
        let end = offset + line.len();
        if is_marker(line, "---") {
            if current.marker || current.content {
                current.push(text, offset, &mut documents);
                current = Pending {
                    start: offset,
                    line: number,
                    marker: false,
                    content: false,
                };
            }
            current.marker = true;
        } else if is_marker(line, "...") {
            current.push(text, end, &mut documents);
            current = Pending {
                start: end,
                line: number + 1,
                marker: false,
                content: false,
            };
        } else if !current.marker && !is_prefix_line(line) {
            current.content = true;
        }
        offset = end;
    }
    current.push(text, offset, &mut documents);
    documents
}

/// The document being cut: where it starts, and whether it has seen a `---` or content.
struct Pending {
    start: usize,
    line: usize,
    marker: bool,
    content: bool,
}

impl Pending {
    fn push<'a>(&self, text: &'a str, end: usize, documents: &mut Vec<RawDocument<'a>>) {
        if self.marker || self.content {
            documents.push(RawDocument {
                index: documents.len() + 1,
                line: self.line,
                text: &text[self.start..end],
            });
        }
    }
}

fn is_marker(line: &str, marker: &str) -> bool {
    line.strip_prefix(marker)
        .is_some_and(|rest| rest.chars().next().is_none_or(char::is_whitespace))
}

/// Lines that may come before a document's `---` without being content of their own.
fn is_prefix_line(line: &str) -> bool {
    let trimmed = line.trim();
    trimmed.is_empty() || trimmed.starts_with('#') || line.starts_with('%')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cut(text: &str) -> Vec<(usize, usize, &str)> {
        split(text)
            .into_iter()
            .map(|d| (d.index, d.line, d.text))
            .collect()
    }

    #[test]
    fn a_bare_document_and_marked_ones_are_numbered_in_order() {
        assert_eq!(
            cut("a: 1\n---\nb: 2\n--- \nc: 3"),
            vec![
                (1, 1, "a: 1\n"),
                (2, 2, "---\nb: 2\n"),
                (3, 4, "--- \nc: 3")
            ]
        );
    }

    #[test]
    fn comments_and_directives_before_the_first_marker_belong_to_it() {
        assert_eq!(
            cut("# header\n%YAML 1.2\n---\na: 1\n"),
            vec![(1, 1, "# header\n%YAML 1.2\n---\na: 1\n")]
        );
    }

    #[test]
    fn empty_documents_keep_their_number() {
        assert_eq!(
            cut("---\n---\na: 1\n---\n"),
            vec![(1, 1, "---\n"), (2, 2, "---\na: 1\n"), (3, 4, "---\n")]
        );
    }

    #[test]
    fn an_end_marker_closes_a_document() {
        assert_eq!(
            cut("a: 1\n...\nb: 2\n"),
            vec![(1, 1, "a: 1\n...\n"), (2, 3, "b: 2\n")]
        );
    }

    #[test]
    fn dashes_that_are_not_markers_stay_in_the_document() {
        assert_eq!(
            cut("a: |\n  ---\n----\n---x\n"),
            vec![(1, 1, "a: |\n  ---\n----\n---x\n")]
        );
    }

    #[test]
    fn a_stream_of_json_values_is_one_document_per_value() {
        assert_eq!(
            cut("{\"a\": 1}\n\n  {\"b\":\n 2}\n[]"),
            vec![(1, 1, "{\"a\": 1}"), (2, 3, "{\"b\":\n 2}"), (3, 5, "[]")]
        );
    }

    #[test]
    fn flow_yaml_that_is_not_json_is_yaml() {
        assert_eq!(
            cut("{a: 1}\n---\n{b: 2}\n"),
            vec![(1, 1, "{a: 1}\n"), (2, 2, "---\n{b: 2}\n")]
        );
    }

    #[test]
    fn a_byte_order_mark_is_not_content() {
        assert_eq!(cut("\u{feff}---\na: 1\n"), vec![(1, 1, "---\na: 1\n")]);
    }
}
