//! Which documents are Kubernetes workloads, and where their labels and containers are.

use super::report::Resource;
use super::tree::{NodeId, Tree};

/// A workload kind and where its pod template is.
struct Kind {
    name: &'static str,
    /// API groups the kind is checked in (`""` is the core group); a kind of the same name
    /// in another group is some custom resource and is skipped.
    groups: &'static [&'static str],
    /// Path from the object to its pod template; empty for a Pod, which is its own.
    template: &'static [&'static str],
}

const KINDS: &[Kind] = &[
    Kind {
        name: "Pod",
        groups: &[""],
        template: &[],
    },
    Kind {
        name: "Deployment",
        groups: &["apps", "extensions"],
        template: &["spec", "template"],
    },
    Kind {
        name: "StatefulSet",
        groups: &["apps"],
        template: &["spec", "template"],
    },
    Kind {
        name: "DaemonSet",
        groups: &["apps", "extensions"],
        template: &["spec", "template"],
    },
    Kind {
        name: "ReplicaSet",
        groups: &["apps", "extensions"],
        template: &["spec", "template"],
    },
    Kind {
        name: "Job",
        groups: &["batch"],
        template: &["spec", "template"],
    },
    Kind {
        name: "CronJob",
        groups: &["batch"],
        template: &["spec", "jobTemplate", "spec", "template"],
    },
];

/// Which list of the pod spec a container is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Group {
    /// `containers`
    Regular,
    /// `initContainers`
    Init,
    /// `ephemeralContainers`
    Ephemeral,
}

impl Group {
    const ALL: [Group; 3] = [Group::Regular, Group::Init, Group::Ephemeral];

    fn field(self) -> &'static str {
        match self {
            Group::Regular => "containers",
            Group::Init => "initContainers",
            Group::Ephemeral => "ephemeralContainers",
        }
    }

    fn noun(self) -> &'static str {
        match self {
            Group::Regular => "container",
            Group::Init => "init container",
            Group::Ephemeral => "ephemeral container",
        }
    }
}

/// One container of a workload.
#[derive(Debug)]
pub(crate) struct Container<'t> {
    pub group: Group,
    pub node: NodeId,
    name: Option<&'t str>,
    index: usize,
}

impl Container<'_> {
    /// How messages name the container: `container "web"`, `init container #2`.
    pub fn label(&self) -> String {
        match self.name {
            Some(name) => format!("{} {name:?}", self.group.noun()),
            None => format!("{} #{}", self.group.noun(), self.index + 1),
        }
    }
}

/// Which resource a workload is.
#[derive(Debug)]
pub(crate) struct Identity<'t> {
    pub kind: &'t str,
    /// `metadata.name`, or `generateName` followed by `*`.
    pub name: String,
    /// The namespace; `default` when the manifest names none.
    pub namespace: &'t str,
}

impl Identity<'_> {
    /// The identity as the report carries it.
    pub fn to_resource(&self) -> Resource {
        Resource {
            kind: self.kind.to_owned(),
            name: self.name.clone(),
            namespace: self.namespace.to_owned(),
        }
    }
}

/// A Kubernetes workload, ready for the rules.
#[derive(Debug)]
pub(crate) struct Workload<'t> {
    pub identity: Identity<'t>,
    /// Where labels are required (`metadata.labels`, and the pod template's), with the
    /// labels mapping when there is one.
    pub label_sets: Vec<(String, Option<NodeId>)>,
    /// The path of the pod spec, for messages.
    pub pod_spec: String,
    pub containers: Vec<Container<'t>>,
}

impl Workload<'_> {
    /// The value of label `key` on the workload's own metadata.
    pub fn label<'a>(&self, tree: &'a Tree<'_>, key: &str) -> Option<&'a str> {
        tree.text(tree.get(self.label_sets[0].1?, key)?)
    }

    /// The violation to report when the pod spec has no `containers` at all.
    pub fn missing_containers(&self) -> Option<String> {
        let any = self.containers.iter().any(|c| c.group == Group::Regular);
        (!any).then(|| format!("no containers at {}.containers", self.pod_spec))
    }
}

/// What a document (or an item of a `List`) is.
#[derive(Debug)]
pub(crate) enum Object<'t> {
    /// A workload the rules apply to.
    Workload(Workload<'t>),
    /// A list of objects (`kind: List`, `kind: PodList`, ...) with its items.
    List(&'t [NodeId]),
    /// Anything else: another kind, or not a Kubernetes object at all.
    Other,
    /// A workload whose shape is wrong where the rules look, with what is wrong.
    Malformed(Identity<'t>, String),
}

/// Classifies `node`.
pub(crate) fn classify<'t>(tree: &'t Tree<'_>, node: NodeId) -> Object<'t> {
    let text = |key| tree.get(node, key).and_then(|value| tree.text(value));
    let (Some(api_version), Some(kind)) = (text("apiVersion"), text("kind")) else {
        return Object::Other;
    };
    if kind.ends_with("List") {
        return match tree.get(node, "items").and_then(|items| tree.items(items)) {
            Some(items) => Object::List(items),
            None => Object::Other,
        };
    }
    let group = api_version.rsplit_once('/').map_or("", |(group, _)| group);
    let Some(known) = KINDS
        .iter()
        .find(|known| known.name == kind && known.groups.contains(&group))
    else {
        return Object::Other;
    };
    let metadata = tree.get(node, "metadata");
    let meta_text = |key| {
        metadata
            .and_then(|m| tree.get(m, key))
            .and_then(|value| tree.text(value))
    };
    let identity = Identity {
        kind,
        name: match (meta_text("name"), meta_text("generateName")) {
            (Some(name), _) => name.to_owned(),
            (None, Some(prefix)) => format!("{prefix}*"),
            (None, None) => "(unnamed)".to_owned(),
        },
        namespace: meta_text("namespace").unwrap_or("default"),
    };
    let labels = metadata.and_then(|m| tree.get(m, "labels"));
    match workload(tree, node, labels, known) {
        Ok((label_sets, pod_spec, containers)) => Object::Workload(Workload {
            identity,
            label_sets,
            pod_spec,
            containers,
        }),
        Err(problem) => Object::Malformed(identity, problem),
    }
}

/// The label sets, pod spec path and containers of a workload.
type Parts<'t> = (Vec<(String, Option<NodeId>)>, String, Vec<Container<'t>>);

fn workload<'t>(
    tree: &'t Tree<'_>,
    node: NodeId,
    labels: Option<NodeId>,
    known: &Kind,
) -> Result<Parts<'t>, String> {
    let mut label_sets = vec![("metadata.labels".to_owned(), labels)];
    let (template, template_path) = if known.template.is_empty() {
        (Some(node), String::new())
    } else {
        let path = known.template.join(".");
        let template = tree.path(node, known.template);
        let labels = template.and_then(|t| tree.path(t, &["metadata", "labels"]));
        label_sets.push((format!("{path}.metadata.labels"), labels));
        (template, format!("{path}."))
    };
    let pod_spec = format!("{template_path}spec");
    let mut containers = Vec::new();
    if let Some(spec) = template.and_then(|t| tree.get(t, "spec")) {
        for group in Group::ALL {
            let Some(list) = tree.get(spec, group.field()) else {
                continue;
            };
            let field = format!("{pod_spec}.{}", group.field());
            let items = tree
                .items(list)
                .ok_or_else(|| format!("{field} is {}, not a sequence", tree.describe(list)))?;
            for (index, &item) in items.iter().enumerate() {
                if !tree.is_mapping(item) {
                    return Err(format!(
                        "{field}[{index}] is {}, not a mapping",
                        tree.describe(item)
                    ));
                }
                let name = tree.get(item, "name").and_then(|n| tree.text(n));
                containers.push(Container {
                    group,
                    node: item,
                    name,
                    index,
                });
            }
        }
    }
    Ok((label_sets, pod_spec, containers))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::tree::load;
    use serde_saphyr::Budget;

    fn with_object(text: &str, check: impl FnOnce(&Tree<'_>, Object<'_>)) {
        let tree = load(text, 1, &Budget::default()).unwrap();
        let object = classify(&tree, tree.root().unwrap());
        check(&tree, object);
    }

    #[test]
    fn a_cron_job_has_its_containers_deep_down() {
        with_object(
            "apiVersion: batch/v1\nkind: CronJob\nmetadata: {name: nightly, namespace: ops}\nspec:\n  jobTemplate:\n    spec:\n      template:\n        spec:\n          initContainers: [{name: setup}]\n          containers: [{name: run}, {image: x}]\n",
            |_, object| {
                let Object::Workload(w) = object else {
                    panic!("{object:?}")
                };
                assert_eq!(
                    (
                        w.identity.kind,
                        w.identity.name.as_str(),
                        w.identity.namespace
                    ),
                    ("CronJob", "nightly", "ops")
                );
                assert_eq!(w.pod_spec, "spec.jobTemplate.spec.template.spec");
                assert_eq!(
                    w.label_sets[1].0,
                    "spec.jobTemplate.spec.template.metadata.labels"
                );
                let labels: Vec<_> = w.containers.iter().map(Container::label).collect();
                assert_eq!(
                    labels,
                    [
                        "container \"run\"",
                        "container #2",
                        "init container \"setup\""
                    ]
                );
            },
        );
    }

    #[test]
    fn a_pod_is_its_own_template() {
        with_object(
            "apiVersion: v1\nkind: Pod\nmetadata: {generateName: job-}\nspec: {ephemeralContainers: [{name: debug}]}\n",
            |_, object| {
                let Object::Workload(w) = object else {
                    panic!("{object:?}")
                };
                assert_eq!(
                    (
                        w.identity.name.as_str(),
                        w.identity.namespace,
                        w.pod_spec.as_str()
                    ),
                    ("job-*", "default", "spec")
                );
                assert_eq!(w.label_sets.len(), 1);
                assert_eq!(
                    w.missing_containers().as_deref(),
                    Some("no containers at spec.containers")
                );
            },
        );
    }

    #[test]
    fn other_kinds_and_groups_and_non_objects_are_other() {
        for text in [
            "apiVersion: v1\nkind: Service\nmetadata: {name: s}\n",
            "apiVersion: batch.volcano.sh/v1alpha1\nkind: Job\n",
            "apiVersion: apps/v1\n",
            "just: a mapping\n",
            "kind: Deployment\n",
        ] {
            with_object(text, |_, object| {
                assert!(matches!(object, Object::Other), "{text}: {object:?}")
            });
        }
    }

    #[test]
    fn lists_expose_their_items() {
        with_object(
            "apiVersion: v1\nkind: List\nitems: [{a: 1}, {b: 2}]\n",
            |_, object| {
                assert!(matches!(object, Object::List(items) if items.len() == 2));
            },
        );
    }

    #[test]
    fn malformed_container_lists_are_named() {
        with_object(
            "apiVersion: apps/v1\nkind: Deployment\nspec: {template: {spec: {containers: {name: x}}}}\n",
            |_, object| {
                let Object::Malformed(identity, problem) = object else {
                    panic!("{object:?}")
                };
                assert_eq!(identity.name, "(unnamed)");
                assert_eq!(
                    problem,
                    "spec.template.spec.containers is a mapping, not a sequence"
                );
            },
        );
        with_object(
            "apiVersion: apps/v1\nkind: Deployment\nspec: {template: {spec: {containers: [web]}}}\n",
            |_, object| {
                let Object::Malformed(_, problem) = object else {
                    panic!("{object:?}")
                };
                assert_eq!(
                    problem,
                    "spec.template.spec.containers[0] is a scalar, not a mapping"
                );
            },
        );
    }
}
