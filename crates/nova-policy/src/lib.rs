//! Nova's platform checks on Kubernetes manifests (`nova policy check`).

pub mod policy;
