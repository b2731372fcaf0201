//! Setting an image by YAML path in a plain manifest, e.g.
//! `spec.template.spec.containers[name=app].image`: segments separated by `.`, each a key,
//! optionally followed by `[N]` (a list index) or `[field=value]` (the list item whose `field`
//! is `value`). The path must exist and end at a single-line string. The file is edited in
//! place: only that scalar changes (keeping its quoting); every comment, blank line and the
//! formatting of the rest of the file are kept byte for byte.

use super::kustomize::Edit;
use super::yaml_edit::{Events, apply, replacement};

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

    /// The index of the node at this path among `events`, or what is missing.
    fn find(&self, events: &Events<'_>, shown: &str) -> Result<usize, String> {
        let missing = || format!("has nothing at YAML path {shown}");
        let mut node = 0;
        for step in &self.0 {
            node = match step {
                Step::Key(k) if events.is_mapping(node) => events.get(node, k).ok_or_else(missing)?,
                Step::Index(i) if events.is_sequence(node) => *events.items(node).get(*i).ok_or_else(missing)?,
                Step::Match(f, v) if events.is_sequence(node) => events
                    .items(node)
                    .into_iter()
                    .find(|item| events.is_mapping(*item) && events.get(*item, f).and_then(|x| events.scalar(x)) == Some(v.as_str()))
                    .ok_or_else(missing)?,
                _ => return Err(missing()),
            };
        }
        Ok(node)
    }
}

/// Sets the string at `path` to `reference`, in place.
pub fn set_reference(text: &str, path: &YamlPath, shown: &str, reference: &str) -> Result<Edit, String> {
    let events = Events::parse(text)?;
    if events.0.is_empty() {
        return Err(format!("is empty; it has nothing at YAML path {shown}"));
    }
    let node = path.find(&events, shown)?;
    let Some(current) = events.scalar(node) else {
        return Err(format!("has a {} at YAML path {shown}, not an image reference", if events.is_mapping(node) { "mapping" } else { "list" }));
    };
    if current == reference {
        return Ok(Edit::AlreadySet);
    }
    Ok(Edit::Changed(apply(text, replacement(&events, node, shown, reference)?)))
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

    #[test]
    fn only_the_reference_changes() {
        let text = "# The shop, as Argo CD syncs it.\napiVersion: apps/v1\nkind: Deployment\nspec:\n  template:\n    spec:\n      containers:\n        # the proxy; Nova leaves it alone\n        - {name: sidecar, image: \"envoy:1\"}\n        - name: app\n          image: 'shop:old'   # written by Nova\n\n          ports: [{containerPort: 80}]\n";
        let path = YamlPath::parse("spec.template.spec.containers[name=app].image").unwrap();
        let Edit::Changed(out) = set_reference(text, &path, "p", "r/shop@sha256:aa").unwrap() else { panic!("changed") };
        assert_eq!(out, text.replace("'shop:old'", "'r/shop@sha256:aa'"));
        let flow = YamlPath::parse("spec.template.spec.containers[name=sidecar].image").unwrap();
        let Edit::Changed(out) = set_reference(text, &flow, "p", "envoy@sha256:bb").unwrap() else { panic!("changed") };
        assert_eq!(out, text.replace("\"envoy:1\"", "\"envoy@sha256:bb\""), "an item written as a flow mapping is edited too");
    }

    #[test]
    fn refuses_what_it_cannot_edit() {
        let path = YamlPath::parse("spec.image").unwrap();
        assert!(set_reference("spec:\n  image: |\n    shop:v1\n", &path, "spec.image", "x").unwrap_err().contains("block scalar"));
        assert!(set_reference("spec:\n  image: a\n---\nb: 1\n", &path, "p", "x").unwrap_err().contains("several YAML documents"));
        assert!(set_reference("spec: [\n", &path, "p", "x").unwrap_err().contains("not valid YAML"));
        assert!(set_reference("", &path, "spec.image", "x").unwrap_err().contains("nothing at YAML path spec.image"));
        assert!(set_reference("spec: [a]\n", &path, "p", "x").unwrap_err().contains("nothing at YAML path"), "a key step on a list");
        assert!(set_reference("spec:\n  image: [a]\n", &path, "p", "x").unwrap_err().contains("a list at YAML path"));
    }
}
