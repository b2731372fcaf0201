//! Setting an image in a `kustomization.yaml`: the `images` entry whose `name` matches gets
//! `newName` and `digest` (any `newTag` is removed, since the digest pins the image). The file
//! is rewritten from its parsed form, so YAML comments in it are not kept.

use serde_json::{Map, Value};

/// What setting the image did to the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Edit {
    /// The new text of the file.
    Changed(String),
    /// The file already names this image by this digest; nothing to write.
    AlreadySet,
}

/// Sets the `images` entry named `image_name` to `new_name@digest`; adds the entry if it is
/// missing. The error names what is wrong with the file.
pub fn set_image(text: &str, image_name: &str, new_name: &str, digest: &str) -> Result<Edit, String> {
    let options = serde_saphyr::options! {
        budget: serde_saphyr::budget! { max_documents: 1, max_nodes: 200_000, max_depth: 64 },
    };
    let mut doc: Value = serde_saphyr::from_str_with_options(text, options)
        .map_err(|e| format!("is not valid YAML: {}", e.render_with_options(serde_saphyr::render_options! { snippets: serde_saphyr::SnippetMode::Off })))?;
    let root = doc.as_object_mut().ok_or("is not a kustomization (its top level is not a mapping)")?;
    let images = root.entry("images").or_insert_with(|| Value::Array(Vec::new()));
    let images = images.as_array_mut().ok_or("has an `images` key that is not a list")?;
    let position = images.iter().position(|e| e.get("name").and_then(Value::as_str) == Some(image_name));
    let entry = match position {
        Some(i) => images[i].as_object_mut().ok_or("has an `images` entry that is not a mapping")?,
        None => {
            let mut m = Map::new();
            m.insert("name".into(), Value::String(image_name.into()));
            images.push(Value::Object(m));
            images.last_mut().and_then(Value::as_object_mut).expect("just pushed a mapping")
        }
    };
    let already = entry.get("newName").and_then(Value::as_str).unwrap_or(image_name) == new_name
        && entry.get("digest").and_then(Value::as_str) == Some(digest)
        && entry.get("newTag").is_none();
    if already {
        return Ok(Edit::AlreadySet);
    }
    entry.insert("newName".into(), Value::String(new_name.into()));
    entry.remove("newTag");
    entry.insert("digest".into(), Value::String(digest.into()));
    render(&doc)
}

/// The edited document as YAML; long strings (image references) stay on one line.
pub(super) fn render(doc: &Value) -> Result<Edit, String> {
    let options = serde_saphyr::ser_options! { prefer_block_scalars: false };
    serde_saphyr::to_string_with_options(doc, options).map(Edit::Changed).map_err(|e| format!("cannot be written back: {e}"))
}

/// The digest the file's `images` entry named `image_name` is set to, if any.
pub fn current_digest(text: &str, image_name: &str) -> Option<String> {
    let doc: Value = serde_saphyr::from_str(text).ok()?;
    doc.get("images")?.as_array()?.iter().find(|e| e.get("name").and_then(Value::as_str) == Some(image_name))?.get("digest")?.as_str().map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";

    #[test]
    fn sets_replaces_and_recognises_the_image() {
        let text = "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n- ../../base\nimages:\n- name: app\n  newTag: v1\n- name: other\n  newTag: v2\n";
        let Edit::Changed(out) = set_image(text, "app", "registry.example.com/team/app", D1).unwrap() else { panic!("changed") };
        assert_eq!(current_digest(&out, "app").as_deref(), Some(D1));
        assert!(out.contains("registry.example.com/team/app") && !out.contains("newTag: v1") && out.contains("newTag: v2") && out.contains("../../base"), "{out}");
        assert_eq!(set_image(&out, "app", "registry.example.com/team/app", D1).unwrap(), Edit::AlreadySet);

        let Edit::Changed(added) = set_image("resources: [a.yaml]\n", "app", "r/app", D1).unwrap() else { panic!("changed") };
        assert_eq!(current_digest(&added, "app").as_deref(), Some(D1));

        assert!(set_image("- a\n- b\n", "app", "r/app", D1).unwrap_err().contains("not a mapping"));
        assert!(set_image("images: 3\n", "app", "r/app", D1).unwrap_err().contains("not a list"));
        assert!(set_image("a: [\n", "app", "r/app", D1).unwrap_err().contains("not valid YAML"));
    }
}
