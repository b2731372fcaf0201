//! A document's YAML as a small read-only tree, built from the parser's events.
//!
//! The parser is the one serde-saphyr is built on (re-exported as
//! `serde_saphyr::granit_parser`); its limits are those of a [`serde_saphyr::Budget`]. The
//! tree is built from events rather than through serde because deserializing through serde
//! took 2.7 times as long as the parse alone (10.7 s against 4.0 s for 50,000 manifests,
//! 76 MB, on one core), and checking must keep up with tens of thousands of manifests (see
//! `docs/BENCHMARKS-policy.md`).
//!
//! Aliases are shared, never copied, so an alias bomb costs what its text costs; merge keys
//! (`<<`) are resolved when their mapping closes and each copied entry is charged against
//! `max_nodes`. A mapping's entries are kept sorted by key, so lookups stay cheap however
//! often a large mapping is reached through aliases.

use std::borrow::Cow;
use std::collections::HashMap;

use serde_saphyr::Budget;
use serde_saphyr::granit_parser::{Event, Parser, ScalarStyle, ScanError, Tag};

/// Index of a node in its [`Tree`].
pub(crate) type NodeId = usize;

/// A parsed document.
#[derive(Debug)]
pub(crate) struct Tree<'a> {
    nodes: Vec<Node>,
    scalars: Vec<Cow<'a, str>>,
    items: Vec<NodeId>,
    entries: Vec<(Cow<'a, str>, NodeId)>,
    root: Option<NodeId>,
}

#[derive(Debug, Clone, Copy)]
enum Node {
    Null,
    Scalar(usize),
    Sequence(usize, usize),
    Mapping(usize, usize),
}

/// A document that could not be read into a tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LoadError {
    /// 1-based line of the input where the problem is.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

impl<'a> Tree<'a> {
    /// The document's root, or `None` for an empty document.
    pub fn root(&self) -> Option<NodeId> {
        self.root
            .filter(|&root| !matches!(self.nodes[root], Node::Null))
    }

    /// The value of `key` in mapping `node`; `None` when `node` is not a mapping, the key is
    /// absent, or its value is null.
    pub fn get(&self, node: NodeId, key: &str) -> Option<NodeId> {
        let entries = self.entries(node)?;
        let found = entries
            .binary_search_by(|(k, _)| k.as_ref().cmp(key))
            .ok()?;
        let value = entries[found].1;
        (!matches!(self.nodes[value], Node::Null)).then_some(value)
    }

    /// Follows `path` of keys from `node`.
    pub fn path(&self, node: NodeId, path: &[&str]) -> Option<NodeId> {
        path.iter().try_fold(node, |node, key| self.get(node, key))
    }

    /// The text of a scalar node.
    pub fn text(&self, node: NodeId) -> Option<&str> {
        match self.nodes[node] {
            Node::Scalar(index) => Some(&self.scalars[index]),
            _ => None,
        }
    }

    /// The items of a sequence node.
    pub fn items(&self, node: NodeId) -> Option<&[NodeId]> {
        match self.nodes[node] {
            Node::Sequence(start, end) => Some(&self.items[start..end]),
            _ => None,
        }
    }

    /// The entries of a mapping node, sorted by key.
    pub fn entries(&self, node: NodeId) -> Option<&[(Cow<'a, str>, NodeId)]> {
        match self.nodes[node] {
            Node::Mapping(start, end) => Some(&self.entries[start..end]),
            _ => None,
        }
    }

    /// Whether `node` is a mapping.
    pub fn is_mapping(&self, node: NodeId) -> bool {
        matches!(self.nodes[node], Node::Mapping(..))
    }

    /// What kind of node `node` is, for messages.
    pub fn describe(&self, node: NodeId) -> &'static str {
        match self.nodes[node] {
            Node::Null => "null",
            Node::Scalar(_) => "a scalar",
            Node::Sequence(..) => "a sequence",
            Node::Mapping(..) => "a mapping",
        }
    }
}

/// Parses one document. `first_line` is the input line the text starts on, so that
/// errors name lines of the input rather than of the document.
pub(crate) fn load<'a>(
    text: &'a str,
    first_line: usize,
    budget: &Budget,
) -> Result<Tree<'a>, LoadError> {
    let mut options = serde_saphyr::granit_parser::Options::default();
    options.emit_comments = false;
    options.simple_key_max_lookahead = budget.simple_key_max_lookahead;
    options.flow_nesting_limit = budget.flow_nesting_limit;
    options.block_nesting_limit = options.block_nesting_limit.max(budget.max_depth + 1);
    let mut builder = Builder::new(budget, first_line);
    for item in Parser::new_from_str_with_options(text, options) {
        let (event, span) = item.map_err(|error| builder.scan_error(&error))?;
        builder.line = first_line + span.start.line() - 1;
        builder.event(event)?;
    }
    Ok(builder.tree)
}

/// A collection still being read.
struct Open {
    mapping: bool,
    anchor: usize,
    /// Where this collection's children start in `Builder::pending`.
    first: usize,
}

/// A child of an open collection: for mappings, keys and values alternate.
enum Pending<'a> {
    Value(NodeId),
    Key(Key<'a>, usize),
}

enum Key<'a> {
    Text(Cow<'a, str>),
    Merge,
    /// A sequence or mapping used as a key: kept out of lookups.
    Complex,
}

struct Builder<'a, 'b> {
    tree: Tree<'a>,
    budget: &'b Budget,
    first_line: usize,
    line: usize,
    open: Vec<Open>,
    pending: Vec<Pending<'a>>,
    anchors: HashMap<usize, NodeId>,
    events: usize,
    nodes: usize,
    aliases: usize,
    scalar_bytes: usize,
    merge_keys: usize,
}

impl<'a, 'b> Builder<'a, 'b> {
    fn new(budget: &'b Budget, first_line: usize) -> Self {
        Builder {
            tree: Tree {
                nodes: Vec::new(),
                scalars: Vec::new(),
                items: Vec::new(),
                entries: Vec::new(),
                root: None,
            },
            budget,
            first_line,
            line: first_line,
            open: Vec::new(),
            pending: Vec::new(),
            anchors: HashMap::new(),
            events: 0,
            nodes: 0,
            aliases: 0,
            scalar_bytes: 0,
            merge_keys: 0,
        }
    }

    fn scan_error(&self, error: &ScanError) -> LoadError {
        let mark = error.marker();
        LoadError {
            line: self.first_line + mark.line() - 1,
            message: format!(
                "YAML syntax error: {} (column {})",
                error.info(),
                mark.col() + 1
            ),
        }
    }

    fn error(&self, message: impl Into<String>) -> LoadError {
        LoadError {
            line: self.line,
            message: message.into(),
        }
    }

    fn charge(&self, used: usize, limit: usize, what: &str) -> Result<(), LoadError> {
        if used > limit {
            return Err(self.error(format!(
                "document exceeds the YAML budget: more than {limit} {what}"
            )));
        }
        Ok(())
    }

    fn event(&mut self, event: Event<'a>) -> Result<(), LoadError> {
        self.events += 1;
        self.charge(self.events, self.budget.max_events, "parser events")?;
        match event {
            Event::Scalar(text, style, anchor, tag) => {
                self.count_node()?;
                self.scalar_bytes += text.len();
                self.charge(
                    self.scalar_bytes,
                    self.budget.max_total_scalar_bytes,
                    "bytes of scalars",
                )?;
                if anchor == 0 && self.expecting_key() {
                    let key = if style == ScalarStyle::Plain && tag.is_none() && text == "<<" {
                        Key::Merge
                    } else {
                        Key::Text(text)
                    };
                    self.pending.push(Pending::Key(key, self.line));
                    return Ok(());
                }
                let node = if is_null(&text, style, tag.as_deref()) {
                    Node::Null
                } else {
                    self.tree.scalars.push(text);
                    Node::Scalar(self.tree.scalars.len() - 1)
                };
                let id = self.add(node, anchor)?;
                self.child(id);
            }
            Event::SequenceStart(_, anchor, _) => self.open(false, anchor)?,
            Event::MappingStart(_, anchor, _) => self.open(true, anchor)?,
            Event::SequenceEnd => {
                let open = self.open.pop().expect("the parser balances sequences");
                let start = self.tree.items.len();
                for pending in self.pending.drain(open.first..) {
                    if let Pending::Value(id) = pending {
                        self.tree.items.push(id);
                    }
                }
                let id = self.add(Node::Sequence(start, self.tree.items.len()), open.anchor)?;
                self.child(id);
            }
            Event::MappingEnd => {
                let open = self.open.pop().expect("the parser balances mappings");
                let node = self.close_mapping(open.first)?;
                let id = self.add(node, open.anchor)?;
                self.child(id);
            }
            Event::Alias(anchor) => {
                self.aliases += 1;
                self.charge(self.aliases, self.budget.max_aliases, "aliases")?;
                let Some(&id) = self.anchors.get(&anchor) else {
                    return Err(self.error("an alias refers to a collection that contains it"));
                };
                self.child(id);
            }
            _ => {}
        }
        Ok(())
    }

    fn count_node(&mut self) -> Result<(), LoadError> {
        self.nodes += 1;
        self.charge(self.nodes, self.budget.max_nodes, "nodes")
    }

    fn open(&mut self, mapping: bool, anchor: usize) -> Result<(), LoadError> {
        self.count_node()?;
        self.open.push(Open {
            mapping,
            anchor,
            first: self.pending.len(),
        });
        self.charge(self.open.len(), self.budget.max_depth, "levels of nesting")
    }

    /// Whether the next node is a key of the innermost open mapping.
    fn expecting_key(&self) -> bool {
        self.open
            .last()
            .is_some_and(|open| open.mapping && (self.pending.len() - open.first).is_multiple_of(2))
    }

    fn add(&mut self, node: Node, anchor: usize) -> Result<NodeId, LoadError> {
        self.tree.nodes.push(node);
        let id = self.tree.nodes.len() - 1;
        if anchor != 0 {
            self.anchors.insert(anchor, id);
            self.charge(self.anchors.len(), self.budget.max_anchors, "anchors")?;
        }
        Ok(id)
    }

    /// Hands a finished node to the collection that contains it, or makes it the root.
    fn child(&mut self, id: NodeId) {
        if self.expecting_key() {
            let key = match self.tree.nodes[id] {
                Node::Scalar(index) => Key::Text(self.tree.scalars[index].clone()),
                Node::Null => Key::Text(Cow::Borrowed("null")),
                _ => Key::Complex,
            };
            self.pending.push(Pending::Key(key, self.line));
        } else if self.open.is_empty() {
            self.tree.root = Some(id);
        } else {
            self.pending.push(Pending::Value(id));
        }
    }

    fn close_mapping(&mut self, first: usize) -> Result<Node, LoadError> {
        let mut own: Vec<(Cow<'a, str>, NodeId, usize)> = Vec::new();
        let mut merged = Vec::new();
        let mut pending = self.pending.drain(first..);
        while let (Some(Pending::Key(key, line)), Some(Pending::Value(value))) =
            (pending.next(), pending.next())
        {
            match key {
                Key::Text(text) => own.push((text, value, line)),
                Key::Merge => merged.push(value),
                Key::Complex => {}
            }
        }
        drop(pending);
        own.sort_by(|a, b| a.0.cmp(&b.0));
        if let Some(pair) = own.windows(2).find(|pair| pair[0].0 == pair[1].0) {
            let (key, line) = (&pair[1].0, pair[1].2);
            return Err(LoadError {
                line,
                message: format!("duplicate key `{key}` in a mapping"),
            });
        }
        let mut entries: Vec<(Cow<'a, str>, NodeId)> = own
            .into_iter()
            .map(|(key, value, _)| (key, value))
            .collect();
        if !merged.is_empty() {
            self.merge_keys += merged.len();
            self.charge(self.merge_keys, self.budget.max_merge_keys, "merge keys")?;
            self.merge_into(&mut entries, &merged)?;
        }
        let start = self.tree.entries.len();
        self.tree.entries.extend(entries);
        Ok(Node::Mapping(start, self.tree.entries.len()))
    }

    /// Adds the entries of the mappings merged with `<<` that `entries` does not have
    /// itself; the earliest mapping named wins, as YAML's merge key specifies. `entries`
    /// is sorted on entry and on return.
    fn merge_into(
        &mut self,
        entries: &mut Vec<(Cow<'a, str>, NodeId)>,
        merged: &[NodeId],
    ) -> Result<(), LoadError> {
        let mut sources = Vec::new();
        for &value in merged {
            match self.tree.items(value) {
                Some(items) => sources.extend_from_slice(items),
                None => sources.push(value),
            }
        }
        let mut inherited = Vec::new();
        for source in sources {
            let Some(from) = self.tree.entries(source) else {
                return Err(
                    self.error("a merge key (`<<`) must name a mapping or a sequence of mappings")
                );
            };
            self.nodes += from.len();
            self.charge(self.nodes, self.budget.max_nodes, "nodes")?;
            inherited.extend_from_slice(from);
        }
        // A stable sort keeps equal keys in source order, so `dedup_by` keeps the earliest.
        inherited.sort_by(|a, b| a.0.cmp(&b.0));
        inherited.dedup_by(|later, earlier| later.0 == earlier.0);
        inherited.retain(|(key, _)| entries.binary_search_by(|(own, _)| own.cmp(key)).is_err());
        entries.extend(inherited);
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(())
    }
}

/// YAML core-schema null: `~`, `null`, `Null`, `NULL` or nothing, plain and untagged; or
/// anything tagged `!!null`.
fn is_null(text: &str, style: ScalarStyle, tag: Option<&Tag>) -> bool {
    match tag {
        Some(tag) => tag.handle() == "tag:yaml.org,2002:" && tag.suffix() == "null",
        None => style == ScalarStyle::Plain && matches!(text, "" | "~" | "null" | "Null" | "NULL"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::Value;

    fn parse(text: &str) -> Result<Tree<'_>, LoadError> {
        load(text, 1, &Budget::default())
    }

    fn text_at<'t>(tree: &'t Tree<'_>, path: &[&str]) -> Option<&'t str> {
        tree.text(tree.path(tree.root()?, path)?)
    }

    #[test]
    fn reads_nested_mappings_and_sequences() {
        let tree = parse("a:\n  b: [x, {c: d}]\n  e: 'f'\n").unwrap();
        let b = tree.path(tree.root().unwrap(), &["a", "b"]).unwrap();
        let items = tree.items(b).unwrap();
        assert_eq!(tree.text(items[0]), Some("x"));
        assert_eq!(text_at(&tree, &["a", "e"]), Some("f"));
        assert_eq!(tree.text(tree.get(items[1], "c").unwrap()), Some("d"));
    }

    #[test]
    fn nulls_are_absent_but_quoted_nulls_are_text() {
        let tree = parse("a: null\nb: ~\nc:\nd: 'null'\ne: !!null x\nf: !!str null\n").unwrap();
        let root = tree.root().unwrap();
        for key in ["a", "b", "c", "e"] {
            assert_eq!(tree.get(root, key), None, "{key}");
        }
        assert_eq!(text_at(&tree, &["d"]), Some("null"));
        assert_eq!(text_at(&tree, &["f"]), Some("null"));
    }

    #[test]
    fn empty_and_null_documents_have_no_root() {
        assert_eq!(parse("---\n").unwrap().root(), None);
        assert_eq!(parse("# only a comment\n").unwrap().root(), None);
        assert_eq!(parse("null\n").unwrap().root(), None);
    }

    #[test]
    fn aliases_share_the_anchored_node() {
        let tree = parse("a: &x {k: v}\nb: *x\n").unwrap();
        let root = tree.root().unwrap();
        assert_eq!(tree.get(root, "a"), tree.get(root, "b"));
    }

    #[test]
    fn merge_keys_fill_in_missing_keys_and_own_keys_win() {
        let tree =
            parse("base: &b {x: 1, y: 2}\nother: &o {y: 3, z: 4}\nm:\n  <<: [*b, *o]\n  x: 0\n")
                .unwrap();
        let m = tree.get(tree.root().unwrap(), "m").unwrap();
        let keys: Vec<_> = tree
            .entries(m)
            .unwrap()
            .iter()
            .map(|(k, v)| (k.as_ref(), tree.text(*v).unwrap()))
            .collect();
        assert_eq!(keys, vec![("x", "0"), ("y", "2"), ("z", "4")]);
    }

    #[test]
    fn a_quoted_merge_key_is_an_ordinary_key() {
        let tree = parse("'<<': {x: 1}\n").unwrap();
        assert!(tree.get(tree.root().unwrap(), "<<").is_some());
    }

    #[test]
    fn duplicate_keys_are_an_error_naming_the_key_and_line() {
        let error = parse("a: 1\nb: 2\na: 3\n").unwrap_err();
        assert_eq!(
            error,
            LoadError {
                line: 3,
                message: "duplicate key `a` in a mapping".into()
            }
        );
    }

    #[test]
    fn syntax_errors_name_the_input_line() {
        let error = load("a: [1, 2\nb: c\n", 10, &Budget::default()).unwrap_err();
        assert!(error.line >= 10, "{error:?}");
        assert!(error.message.starts_with("YAML syntax error"), "{error:?}");
    }

    #[test]
    fn a_self_referencing_alias_is_refused() {
        assert!(parse("a: &x [*x]\n").is_err());
    }

    #[test]
    fn an_alias_bomb_is_cheap_and_the_budget_still_applies() {
        let mut bomb = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for level in 1..9 {
            let refs = vec![format!("*a{}", level - 1); 10].join(", ");
            bomb.push_str(&format!("a{level}: &a{level} [{refs}]\n"));
        }
        assert!(parse(&bomb).is_ok());
        let small = serde_saphyr::budget! { max_aliases: 20 }.unwrap();
        let error = load(&bomb, 1, &small).unwrap_err();
        assert!(error.message.contains("more than 20 aliases"), "{error:?}");
    }

    #[test]
    fn deep_nesting_stops_at_the_depth_budget() {
        let deep = "[".repeat(100) + &"]".repeat(100);
        let error = parse(&deep).unwrap_err();
        assert!(
            error.message.contains("budget") || error.message.contains("syntax"),
            "{error:?}"
        );
    }

    /// The tree below `node` as JSON: scalars as strings.
    fn project(tree: &Tree<'_>, node: NodeId) -> Value {
        if let Some(text) = tree.text(node) {
            Value::String(text.to_owned())
        } else if let Some(items) = tree.items(node) {
            Value::Array(items.iter().map(|&item| project(tree, item)).collect())
        } else if let Some(entries) = tree.entries(node) {
            Value::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.to_string(), project(tree, *v)))
                    .collect(),
            )
        } else {
            Value::Null
        }
    }

    fn value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![Just(Value::Null), "[ -~\né]{0,12}".prop_map(Value::String)];
        leaf.prop_recursive(4, 64, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map("[a-z~:# -]{0,6}", inner, 0..6)
                    .prop_map(|map| Value::Object(map.into_iter().collect())),
            ]
        })
    }

    proptest! {
        /// What serde-saphyr writes, the tree reads back: the same structure and text.
        #[test]
        fn reads_back_what_serde_saphyr_writes(original in value()) {
            let yaml = serde_saphyr::to_string(&original).unwrap();
            let tree = parse(&yaml).unwrap();
            let read = tree.root.map_or(Value::Null, |root| project(&tree, root));
            prop_assert_eq!(read, original, "{}", yaml);
        }

        #[test]
        fn no_input_panics(text in "[ -~\n\t\u{80}-\u{10ffff}]{0,200}") {
            let _ = parse(&text);
        }
    }
}
