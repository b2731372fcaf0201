//! Setting an image in a `kustomization.yaml`: the `images` entry whose `name` matches gets
//! `newName` and `digest` (any `newTag` is removed, since the digest pins the image). In a
//! block-style file the edit is made in place (`yaml_edit`): an existing entry has only those
//! lines changed, a missing one is added after the last entry (or as a new `images` list at the
//! end of the file), and comments and formatting are kept. A flow-style `images` list is
//! rewritten from the file's parsed form, which does not keep its comments.

use serde_json::{Map, Value};

use serde_saphyr::granit_parser::Event;

use super::yaml_edit::{Events, set_scalars};

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
    if let Some(edit) = edit_in_place(text, image_name, new_name, digest) {
        return Ok(edit);
    }
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

/// The in-place edit of a block-style file, if it can be made and the edited text reads back
/// as that image by that digest; `None` sends the caller to the rewrite.
fn edit_in_place(text: &str, image_name: &str, new_name: &str, digest: &str) -> Option<Edit> {
    let events = Events::parse(text).ok()?;
    if events.0.is_empty() || !events.is_block(0) || !events.is_mapping(0) {
        return None;
    }
    let edit = match events.get(0, "images") {
        None => Edit::Changed(format!("{}{}images:\n{}", text, if text.ends_with('\n') { "" } else { "\n" }, new_entry("", image_name, new_name, digest))),
        Some(images) if events.is_block(images) && events.is_sequence(images) => {
            let named = |item: &usize| events.is_mapping(*item) && events.get(*item, "name").and_then(|n| events.scalar(n)) == Some(image_name);
            let items = events.items(images);
            match items.iter().find(|i| named(i)) {
                Some(&entry) if events.is_block(entry) => {
                    // A missing newName means the image's own name: nothing to add when that is the one wanted.
                    let has_name = events.get(entry, "newName").is_some();
                    let name = Some(new_name).filter(|n| has_name || *n != image_name);
                    set_scalars(text, &events, entry, "images", &[("newName", name), ("digest", Some(digest))], &["newTag"]).ok()?
                }
                Some(_) => return None,
                None => append_entry(text, &events, *items.last()?, image_name, new_name, digest)?,
            }
        }
        Some(_) => return None,
    };
    match &edit {
        Edit::Changed(out) => {
            let doc: Value = serde_saphyr::from_str(out).ok()?;
            let entry = doc.get("images")?.as_array()?.iter().find(|e| e.get("name").and_then(Value::as_str) == Some(image_name))?;
            let reads_back = entry.get("newName").and_then(Value::as_str).unwrap_or(image_name) == new_name
                && entry.get("digest").and_then(Value::as_str) == Some(digest)
                && entry.get("newTag").is_none();
            reads_back.then_some(edit)
        }
        Edit::AlreadySet => Some(edit),
    }
}

/// A new `images` item, each line starting with `indent` (the column of the list's dashes).
fn new_entry(indent: &str, image_name: &str, new_name: &str, digest: &str) -> String {
    format!("{indent}- name: {image_name}\n{indent}  newName: {new_name}\n{indent}  digest: {digest}\n")
}

/// `text` with a new item after `last`, the block list's last item, at its dashes' column.
fn append_entry(text: &str, events: &Events<'_>, last: usize, image_name: &str, new_name: &str, digest: &str) -> Option<Edit> {
    let start = events.0[last].1.byte_range()?.start;
    let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
    let dash = line_start + text[line_start..start].find('-')?;
    let indent = &text[line_start..dash];
    if !indent.bytes().all(|b| b == b' ') {
        return None;
    }
    let end = events.0[last..events.skip(last)].iter().filter(|(e, _)| matches!(e, Event::Scalar(..))).filter_map(|(_, s)| s.end.byte_offset()).max()?;
    let line_end = text[end..].find('\n').map_or(text.len(), |i| end + i + 1);
    let newline = if text[..line_end].ends_with('\n') { "" } else { "\n" };
    let mut out = text.to_string();
    out.insert_str(line_end, &format!("{newline}{}", new_entry(indent, image_name, new_name, digest)));
    Some(Edit::Changed(out))
}

/// The edited document as YAML; long strings (image references) stay on one line.
fn render(doc: &Value) -> Result<Edit, String> {
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

    #[test]
    fn an_existing_entry_is_edited_in_place_keeping_comments() {
        let text = "# staging overlay\napiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - ../../base   # the app\nimages:\n  # set by Nova\n  - name: demo/web\n    newName: 127.0.0.1:5000/web\n    newTag: v1.1.0  # was\n  - name: sidecar\n    newTag: '2'\n";
        let Edit::Changed(out) = set_image(text, "demo/web", "127.0.0.1:5000/web", D1).unwrap() else { panic!("changed") };
        assert_eq!(out, text.replace("    newTag: v1.1.0  # was\n", &format!("    digest: {D1}\n")).replace("newName: 127.0.0.1:5000/web\n    digest", "newName: 127.0.0.1:5000/web\n    digest"));
        assert_eq!(set_image(&out, "demo/web", "127.0.0.1:5000/web", D1).unwrap(), Edit::AlreadySet);
        // Another digest and name replace theirs in place, quoting kept.
        let quoted = out.replace(&format!("digest: {D1}"), &format!("digest: \"{D1}\""));
        let d2 = D1.replace('1', "2");
        let Edit::Changed(again) = set_image(&quoted, "demo/web", "r.example.com/web", &d2).unwrap() else { panic!("changed") };
        assert!(again.contains(&format!("    newName: r.example.com/web\n    digest: \"{d2}\"\n")) && again.contains("# set by Nova") && again.contains("newTag: '2'"), "{again}");
        // An entry without newName keeps going without one when the name is the image's own.
        let Edit::Changed(own) = set_image("images:\n- name: app # mine\n  newTag: v1\n", "app", "app", D1).unwrap() else { panic!("changed") };
        assert_eq!(own, format!("images:\n- name: app # mine\n  digest: {D1}\n"));
        // A missing entry is added after the last one, at its dashes' column; a missing list
        // at the end of the file. Both keep the rest byte for byte.
        let Edit::Changed(added) = set_image(&out, "worker", "r/worker", D1).unwrap() else { panic!("changed") };
        assert_eq!(added, format!("{out}  - name: worker\n    newName: r/worker\n    digest: {D1}\n"));
        let Edit::Changed(listed) = set_image("# base\nresources:\n- a.yaml # the app", "app", "r/app", D1).unwrap() else { panic!("changed") };
        assert_eq!(listed, format!("# base\nresources:\n- a.yaml # the app\nimages:\n- name: app\n  newName: r/app\n  digest: {D1}\n"));
        // A flow-style entry is rewritten instead.
        let Edit::Changed(flow) = set_image("images: [{name: app, newTag: v1}]\n", "app", "r/app", D1).unwrap() else { panic!("changed") };
        assert_eq!(current_digest(&flow, "app").as_deref(), Some(D1));
    }
}
