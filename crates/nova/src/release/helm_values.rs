//! Setting an image in a Helm values file: under the values key (`image` by default, or a
//! dotted path such as `app.image`), `repository` and `digest` are set, and `tag` is updated
//! when the file has one and the artifact has a tag. The file is edited in place: only those
//! scalars change (keeping their quoting), a missing `repository` or `digest` is added as a
//! line after the mapping's last entry, and every comment, blank line and the formatting of
//! the rest of the file are kept byte for byte.

use serde_saphyr::granit_parser::Event;

use super::kustomize::Edit;
use super::yaml_edit::{Events, set_scalars};

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
        node = events.get(node, k).ok_or_else(|| format!("has no `{shown}` (gitops.values_key); add it with repository and digest"))?;
    }
    if !matches!(events.0[node].0, Event::MappingStart(..)) {
        return Err(format!("has a value at `{key}` that is not a mapping with repository and digest"));
    }
    // The tag is updated only where the file has one.
    let has_tag = events.get(node, "tag").is_some();
    let tag = tag.filter(|_| has_tag);
    set_scalars(text, &events, node, &key.to_string(), &[("repository", Some(repository)), ("digest", Some(digest)), ("tag", tag)], &[])
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
