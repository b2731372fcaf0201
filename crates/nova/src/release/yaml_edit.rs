//! Editing a YAML file in place: the writers that must keep a GitOps file's comments and
//! formatting (Helm values, kustomize `images`) find a block mapping through the parser's
//! events and change only the scalars they set, byte for byte around them.

use serde_saphyr::granit_parser::{Event, Parser, ScalarStyle, Span, StructureStyle};

use super::kustomize::Edit;

/// The file's events with their source spans (comments left out).
pub(super) struct Events<'a>(pub(super) Vec<(Event<'a>, Span)>);

impl<'a> Events<'a> {
    /// The events of `text`, which must be one YAML document.
    pub(super) fn parse(text: &'a str) -> Result<Self, String> {
        let mut out = Vec::new();
        let mut documents = 0;
        for item in Parser::new_from_str(text) {
            let (event, span) = item.map_err(|e| format!("is not valid YAML: {e}"))?;
            match event {
                Event::DocumentStart(..) => documents += 1,
                Event::Comment(..) | Event::Anchor(..) | Event::StreamStart | Event::StreamEnd | Event::DocumentEnd => {}
                _ if documents == 1 => out.push((event, span)),
                _ => {}
            }
        }
        if documents > 1 {
            return Err("holds several YAML documents; Nova edits files of one".into());
        }
        Ok(Self(out))
    }

    /// The index just after the node starting at `i`.
    pub(super) fn skip(&self, i: usize) -> usize {
        let mut depth = 0usize;
        let mut j = i;
        loop {
            match &self.0[j].0 {
                Event::MappingStart(..) | Event::SequenceStart(..) => depth += 1,
                Event::MappingEnd | Event::SequenceEnd => depth -= 1,
                _ => {}
            }
            j += 1;
            if depth == 0 {
                return j;
            }
        }
    }

    /// The entries of the mapping starting at `i`: (key, index of the key, index of the value).
    pub(super) fn entries(&self, i: usize) -> Vec<(&str, usize, usize)> {
        let mut out = Vec::new();
        let mut j = i + 1;
        while !matches!(self.0[j].0, Event::MappingEnd) {
            let key = match &self.0[j].0 {
                Event::Scalar(k, ..) => k.as_ref(),
                _ => "",
            };
            let value = self.skip(j);
            out.push((key, j, value));
            j = self.skip(value);
        }
        out
    }

    /// The value at `key` of the mapping starting at `i`, if it has one.
    pub(super) fn get(&self, i: usize, key: &str) -> Option<usize> {
        self.entries(i).into_iter().find(|(k, ..)| *k == key).map(|(.., v)| v)
    }

    /// The scalar at index `i`, if it is one.
    pub(super) fn scalar(&self, i: usize) -> Option<&str> {
        match &self.0[i].0 {
            Event::Scalar(v, ..) => Some(v.as_ref()),
            _ => None,
        }
    }

    /// The items of the sequence starting at `i`: the index of each.
    pub(super) fn items(&self, i: usize) -> Vec<usize> {
        let mut out = Vec::new();
        let mut j = i + 1;
        while !matches!(self.0[j].0, Event::SequenceEnd) {
            out.push(j);
            j = self.skip(j);
        }
        out
    }

    /// Whether the node at `i` is a mapping.
    pub(super) fn is_mapping(&self, i: usize) -> bool {
        matches!(self.0[i].0, Event::MappingStart(..))
    }

    /// Whether the node at `i` is a sequence.
    pub(super) fn is_sequence(&self, i: usize) -> bool {
        matches!(self.0[i].0, Event::SequenceStart(..))
    }

    /// Whether the node at `i` is a block (not flow) mapping or sequence.
    pub(super) fn is_block(&self, i: usize) -> bool {
        matches!(&self.0[i].0, Event::MappingStart(StructureStyle::Block, ..) | Event::SequenceStart(StructureStyle::Block, ..))
    }
}

/// In the block mapping starting at `node` (shown as `shown` in errors): sets each `(key,
/// Some(value))` of `set` (a scalar replaced in place, keeping its quoting; a missing one added
/// as a line after the mapping's last entry, at the column of its keys) and deletes the lines
/// of each key in `remove`. `Edit::AlreadySet` when nothing would change.
pub(super) fn set_scalars(text: &str, events: &Events<'_>, node: usize, shown: &str, set: &[(&str, Option<&str>)], remove: &[&str]) -> Result<Edit, String> {
    if !matches!(events.0[node].0, Event::MappingStart(..)) {
        return Err(format!("has a value at `{shown}` that is not a mapping"));
    }
    if !events.is_block(node) {
        return Err(format!("writes `{shown}` as a flow mapping ({{...}}); Nova edits block mappings only"));
    }
    let entries = events.entries(node);
    let scalar = |name: &str| -> Result<Option<(String, usize)>, String> {
        match entries.iter().find(|(n, ..)| *n == name) {
            None => Ok(None),
            Some((_, _, i)) => events.scalar(*i).map(|v| Some((v.to_string(), *i))).ok_or_else(|| format!("has a `{shown}.{name}` that is not a single value")),
        }
    };
    let mut edits: Vec<(std::ops::Range<usize>, String)> = Vec::new();
    let mut added = String::new();
    let indent = " ".repeat(events.0[node + 1].1.start.col());
    for (name, want) in set {
        let Some(want) = want else { continue };
        match scalar(name)? {
            Some((v, _)) if v == *want => {}
            Some((_, i)) => edits.push(replacement(events, i, &format!("{shown}.{name}"), want)?),
            None => added.push_str(&format!("\n{indent}{name}: {want}")),
        }
    }
    for name in remove {
        let Some((_, key, value)) = entries.iter().find(|(n, ..)| n == name) else { continue };
        let start = events.0[*key].1.byte_range().ok_or("cannot be edited in place (no source positions)")?.start;
        let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
        if !text[line_start..start].trim().is_empty() {
            return Err(format!("has `{shown}.{name}` on a line it shares; Nova removes whole lines only"));
        }
        let end = events.0[*value].1.byte_range().ok_or("cannot be edited in place (no source positions)")?.end;
        let line_end = text[end..].find('\n').map_or(text.len(), |i| end + i + 1);
        edits.push((line_start..line_end, String::new()));
    }
    if edits.is_empty() && added.is_empty() {
        return Ok(Edit::AlreadySet);
    }
    if !added.is_empty() {
        // After the line holding the mapping's last scalar that stays.
        let removed: Vec<std::ops::Range<usize>> = edits.iter().filter(|(_, with)| with.is_empty()).map(|(r, _)| r.clone()).collect();
        let last_end = events.0[node..events.skip(node)]
            .iter()
            .filter(|(e, _)| matches!(e, Event::Scalar(..)))
            .filter_map(|(_, s)| s.end.byte_offset())
            .filter(|end| !removed.iter().any(|r| r.contains(end)))
            .max()
            .unwrap_or(0);
        let line_end = text[last_end..].find('\n').map_or(text.len(), |i| last_end + i);
        edits.push((line_end..line_end, added));
    }
    edits.sort_by_key(|(r, _)| std::cmp::Reverse(r.start));
    let mut out = text.to_string();
    for (range, with) in edits {
        out.replace_range(range, &with);
    }
    Ok(Edit::Changed(out))
}

/// The edit that makes the scalar at index `i` (shown as `shown` in errors) say `want`, in
/// place and in the same quoting. A block scalar (`|`, `>`) is refused: Nova writes
/// single-line values.
pub(super) fn replacement(events: &Events<'_>, i: usize, shown: &str, want: &str) -> Result<(std::ops::Range<usize>, String), String> {
    let range = events.0[i].1.byte_range().ok_or("cannot be edited in place (no source positions)")?;
    match &events.0[i].0 {
        Event::Scalar(_, ScalarStyle::SingleQuoted, ..) => Ok((range, format!("'{want}'"))),
        Event::Scalar(_, ScalarStyle::DoubleQuoted, ..) => Ok((range, format!("\"{want}\""))),
        Event::Scalar(_, ScalarStyle::Plain, ..) => Ok((range, want.to_string())),
        Event::Scalar(..) => Err(format!("writes `{shown}` as a block scalar (| or >); Nova edits single-line values only")),
        _ => Err(format!("has a `{shown}` that is not a single value")),
    }
}

/// `text` with the edit made.
pub(super) fn apply(text: &str, (range, with): (std::ops::Range<usize>, String)) -> String {
    let mut out = text.to_string();
    out.replace_range(range, &with);
    out
}
