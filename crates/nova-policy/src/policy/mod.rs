//! Platform checks on Kubernetes manifests.

mod documents;
mod tree;
