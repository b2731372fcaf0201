//! Setting an image in a Helm values file: under the values key (`image` by default, or a
//! dotted path such as `app.image`), `repository` and `digest` are set, and `tag` is updated
//! when the file has one and the artifact has a tag. The file is edited in place: only those
//! scalars change (keeping their quoting), a missing `repository` or `digest` is added as a
//! line after the mapping's last entry, and every comment, blank line and the formatting of
//! the rest of the file are kept byte for byte.

use serde_saphyr::granit_parser::{Event, Parser, Span, StructureStyle};

use super::kustomize::Edit;

/// A checked values key: mapping keys separated by `.`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValuesKey(Vec<String>);

impl ValuesKey {
    /// Parses `image` or `app.image`; each key is letters, digits, `_` and `-`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let keys: Vec<String> = s.split('.').map(str::to_string).collect();
        if keys.iter().any(|k| k.is_empty() || !k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')) {
            return Err("must be mapping keys of letters, digits, `_` and `-`, separated by `.` (e.g. image or app.image)".into());
        }
        Ok(Self(keys))
    }
}

impl std::fmt::Display for ValuesKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.join("."))
    }
}

/// The file's events with their source spans (comments left out).
struct Events<'a>(Vec<(Event<'a>, Span)>);

impl<'a> Events<'a> {
    fn parse(text: &'a str) -> Result<Self, String> {
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
            return Err("holds several YAML documents; a values file is one".into());
        }
        Ok(Self(out))
    }

    /// The index just after the node starting at `i`.
    fn skip(&self, i: usize) -> usize {
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

    /// The entries of the mapping starting at `i`: (key, index of the value).
    fn entries(&self, i: usize) -> Vec<(&str, usize)> {
        let mut out = Vec::new();
        let mut j = i + 1;
        while !matches!(self.0[j].0, Event::MappingEnd) {
            let key = match &self.0[j].0 {
                Event::Scalar(k, ..) => k.as_ref(),
                _ => "",
            };
            let value = self.skip(j);
            out.push((key, value));
            j = self.skip(value);
        }
        out
    }
}

/// Sets `<key>.repository` and `<key>.digest` (and `<key>.tag`, when present, to `tag`).
pub fn set_image(text: &str, key: &ValuesKey, repository: &str, digest: &str, tag: Option<&str>) -> Result<Edit, String> {
    let events = Events::parse(text)?;
    if events.0.is_empty() {
        return Err(format!("is empty; it needs a `{key}` mapping with repository and digest"));
    }
    let mut node = 0;
    for (depth, k) in key.0.iter().enumerate() {
        let shown = key.0[..=depth].join(".");
        if !matches!(events.0[node].0, Event::MappingStart(..)) {
            return Err(format!("has no mapping at {}, so it has no `{shown}`", if depth == 0 { "its top level".to_string() } else { key.0[..depth].join(".") }));
        }
        node = events.entries(node).into_iter().find(|(name, _)| name == k).map(|(_, v)| v).ok_or_else(|| format!("has no `{shown}` (gitops.values_key); add it with repository and digest"))?;
    }
    let Event::MappingStart(style, ..) = &events.0[node].0 else { return Err(format!("has a value at `{key}` that is not a mapping with repository and digest")) };
    if *style == StructureStyle::Flow {
        return Err(format!("writes `{key}` as a flow mapping ({{...}}); Nova edits block mappings only"));
    }
    let entries = events.entries(node);
    let scalar = |name: &str| -> Result<Option<(String, Span)>, String> {
        match entries.iter().find(|(n, _)| *n == name) {
            None => Ok(None),
            Some((_, i)) => match &events.0[*i] {
                (Event::Scalar(v, ..), span) => Ok(Some((v.to_string(), *span))),
                _ => Err(format!("has a `{key}.{name}` that is not a single value")),
            },
        }
    };
    let (repo_now, digest_now, tag_now) = (scalar("repository")?, scalar("digest")?, scalar("tag")?);
    let wanted_tag = tag.filter(|_| tag_now.is_some());
    let same = |now: &Option<(String, Span)>, want: &str| now.as_ref().is_some_and(|(v, _)| v == want);
    if same(&repo_now, repository) && same(&digest_now, digest) && wanted_tag.is_none_or(|t| same(&tag_now, t)) {
        return Ok(Edit::AlreadySet);
    }
    // Where new entries go: after the line holding the mapping's last scalar, at the column of
    // its keys.
    let first_key = &events.0[node + 1].1;
    let indent = " ".repeat(first_key.start.col());
    let last_end = events.0[node..events.skip(node)].iter().filter(|(e, _)| matches!(e, Event::Scalar(..))).filter_map(|(_, s)| s.end.byte_offset()).max().unwrap_or(0);
    let line_end = text[last_end..].find('\n').map_or(text.len(), |i| last_end + i);
    let mut edits: Vec<(std::ops::Range<usize>, String)> = Vec::new();
    let mut added = String::new();
    for (name, now, want) in [("repository", &repo_now, Some(repository)), ("digest", &digest_now, Some(digest)), ("tag", &tag_now, wanted_tag)] {
        let Some(want) = want else { continue };
        match now {
            Some((v, _)) if v == want => {}
            Some((_, span)) => {
                let range = span.byte_range().ok_or("cannot be edited in place (no source positions)")?;
                let quote = text[range.clone()].chars().next().filter(|c| *c == '\'' || *c == '"');
                edits.push((range, quote.map_or_else(|| want.to_string(), |q| format!("{q}{want}{q}"))));
            }
            None => added.push_str(&format!("\n{indent}{name}: {want}")),
        }
    }
    if !added.is_empty() {
        edits.push((line_end..line_end, added));
    }
    edits.sort_by_key(|(r, _)| std::cmp::Reverse(r.start));
    let mut out = text.to_string();
    for (range, with) in edits {
        out.replace_range(range, &with);
    }
    Ok(Edit::Changed(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const VALUES: &str = "# Values for shop.\nreplicaCount: 2\n\nimage:\n  # where the image comes from\n  repository: registry.example.com/shop/old   # set by Nova\n  tag: \"v1\"\n  pullPolicy: IfNotPresent\n\nservice:\n  port: 80 # http\n";

    fn set(text: &str, key: &str, tag: Option<&str>) -> Result<Edit, String> {
        set_image(text, &ValuesKey::parse(key).unwrap(), "registry.example.com/shop/shop", D1, tag)
    }

    #[test]
    fn sets_the_image_and_keeps_everything_else() {
        let Edit::Changed(out) = set(VALUES, "image", Some("v2")).unwrap() else { panic!("changed") };
        let expected = format!(
            "# Values for shop.\nreplicaCount: 2\n\nimage:\n  # where the image comes from\n  repository: registry.example.com/shop/shop   # set by Nova\n  tag: \"v2\"\n  pullPolicy: IfNotPresent\n  digest: {D1}\n\nservice:\n  port: 80 # http\n"
        );
        assert_eq!(out, expected);
        assert_eq!(set(&out, "image", Some("v2")).unwrap(), Edit::AlreadySet);
        // Without a tag the file's tag stays; a new digest replaces the old one in place.
        let Edit::Changed(again) = set_image(&out, &ValuesKey::parse("image").unwrap(), "registry.example.com/shop/shop", &D1.replace('1', "2"), None).unwrap() else { panic!() };
        assert_eq!(again, expected.replace(D1, &D1.replace('1', "2")));
    }

    #[test]
    fn nested_keys_and_missing_tags() {
        let text = "app:\n  image:\n    repository: r/old\n  other: 1\nlast: true\n";
        let Edit::Changed(out) = set(text, "app.image", Some("v9")).unwrap() else { panic!() };
        assert_eq!(out, format!("app:\n  image:\n    repository: registry.example.com/shop/shop\n    digest: {D1}\n  other: 1\nlast: true\n"), "no tag is added");
    }

    #[test]
    fn refuses_what_it_cannot_edit() {
        assert!(set("replicaCount: 1\n", "image", None).unwrap_err().contains("has no `image`"));
        assert!(set("image: r/app:v1\n", "image", None).unwrap_err().contains("not a mapping"));
        assert!(set("image: {repository: r}\n", "image", None).unwrap_err().contains("flow mapping"));
        assert!(set("image:\n  repository: [a]\n", "image", None).unwrap_err().contains("not a single value"));
        assert!(set("a: [\n", "image", None).unwrap_err().contains("not valid YAML"));
        assert!(set("a: 1\n---\nb: 2\n", "image", None).unwrap_err().contains("several YAML documents"));
        assert!(set("", "image", None).unwrap_err().contains("empty"));
        for bad in ["", "a..b", "a b", "image.", "a[0]"] {
            assert!(ValuesKey::parse(bad).is_err(), "{bad}");
        }
    }
}
