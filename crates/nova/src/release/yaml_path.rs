//! Setting an image by YAML path in a plain manifest, e.g.
//! `spec.template.spec.containers[name=app].image`: segments separated by `.`, each a key,
//! optionally followed by `[N]` (a list index) or `[field=value]` (the list item whose `field`
//! is `value`). The path must exist; the file is rewritten from its parsed form (comments are
//! not kept).

use serde_json::Value;

use super::kustomize::Edit;

/// One step of a path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Key(String),
    Index(usize),
    Match(String, String),
}

/// A checked YAML path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YamlPath(Vec<Step>);

impl YamlPath {
    /// Parses `a.b[name=app].c` or `a.b[0].c`; the error names the rule.
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut steps = Vec::new();
        for segment in s.split('.') {
            let (key, rest) = match segment.find('[') {
                Some(i) => (&segment[..i], &segment[i..]),
                None => (segment, ""),
            };
            if key.is_empty() || key.contains(']') {
                return Err("each segment is a key, optionally followed by [N] or [field=value], separated by `.`".into());
            }
            steps.push(Step::Key(key.to_string()));
            let mut rest = rest;
            while !rest.is_empty() {
                let end = rest.find(']').ok_or("an opening `[` has no closing `]`")?;
                let inner = &rest[1..end];
                steps.push(match inner.split_once('=') {
                    Some((f, v)) if !f.is_empty() && !v.is_empty() => Step::Match(f.to_string(), v.to_string()),
                    _ => Step::Index(inner.parse().map_err(|_| "a selector is [N] or [field=value]")?),
                });
                rest = &rest[end + 1..];
                if !rest.is_empty() && !rest.starts_with('[') {
                    return Err("a `]` must end its segment".into());
                }
            }
        }
        Ok(Self(steps))
    }

    fn find<'a>(&self, mut node: &'a mut Value) -> Option<&'a mut Value> {
        for step in &self.0 {
            node = match step {
                Step::Key(k) => node.as_object_mut()?.get_mut(k)?,
                Step::Index(i) => node.as_array_mut()?.get_mut(*i)?,
                Step::Match(f, v) => node.as_array_mut()?.iter_mut().find(|item| item.get(f).and_then(Value::as_str) == Some(v.as_str()))?,
            };
        }
        Some(node)
    }
}

/// Sets the string at `path` to `reference`.
pub fn set_reference(text: &str, path: &YamlPath, shown: &str, reference: &str) -> Result<Edit, String> {
    let options = serde_saphyr::options! {
        budget: serde_saphyr::budget! { max_documents: 1, max_nodes: 200_000, max_depth: 64 },
    };
    let mut doc: Value = serde_saphyr::from_str_with_options(text, options)
        .map_err(|e| format!("is not valid YAML: {}", e.render_with_options(serde_saphyr::render_options! { snippets: serde_saphyr::SnippetMode::Off })))?;
    let node = path.find(&mut doc).ok_or_else(|| format!("has nothing at YAML path {shown}"))?;
    if !node.is_string() {
        return Err(format!("has a {} at YAML path {shown}, not an image reference", if node.is_object() { "mapping" } else if node.is_array() { "list" } else { "non-string value" }));
    }
    if node.as_str() == Some(reference) {
        return Ok(Edit::AlreadySet);
    }
    *node = Value::String(reference.to_string());
    super::kustomize::render(&doc)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEPLOYMENT: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: shop\nspec:\n  template:\n    spec:\n      containers:\n      - name: sidecar\n        image: envoy:1\n      - name: app\n        image: shop:old\n";

    #[test]
    fn paths_parse_and_set() {
        let path = YamlPath::parse("spec.template.spec.containers[name=app].image").unwrap();
        let Edit::Changed(out) = set_reference(DEPLOYMENT, &path, "p", "r/shop@sha256:aa").unwrap() else { panic!("changed") };
        assert!(out.contains("image: r/shop@sha256:aa") && out.contains("image: envoy:1"), "{out}");
        assert_eq!(set_reference(&out, &path, "p", "r/shop@sha256:aa").unwrap(), Edit::AlreadySet);
        let by_index = YamlPath::parse("spec.template.spec.containers[0].image").unwrap();
        assert!(matches!(set_reference(DEPLOYMENT, &by_index, "p", "x@sha256:bb").unwrap(), Edit::Changed(t) if t.contains("x@sha256:bb") && t.contains("shop:old")));

        let missing = YamlPath::parse("spec.template.spec.containers[name=web].image").unwrap();
        assert!(set_reference(DEPLOYMENT, &missing, "the path", "x").unwrap_err().contains("nothing at YAML path the path"));
        let mapping = YamlPath::parse("spec.template").unwrap();
        assert!(set_reference(DEPLOYMENT, &mapping, "p", "x").unwrap_err().contains("mapping"));
        for bad in ["", "a..b", "a[", "a[x]", "a[0]b", "[0]"] {
            assert!(YamlPath::parse(bad).is_err(), "{bad}");
        }
    }
}
