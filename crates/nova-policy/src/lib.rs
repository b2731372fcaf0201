//! Nova's platform checks on Kubernetes manifests (`nova policy check`).
//!
//! [`policy::check_documents`] is the gate that promotion calls on in-memory manifests;
//! [`run_policy_check`] is the command-line front end: it does all reading and printing and
//! returns the process exit code.

pub mod policy;

pub use policy::cli::{PolicyCheckArgs, run_policy_check};
