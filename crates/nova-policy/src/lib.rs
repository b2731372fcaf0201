//! Nova's platform checks on Kubernetes manifests (`nova policy check`) and its strict
//! configuration hydration (`nova hydrate`).
//!
//! Both halves are libraries first: [`policy::check_documents`] is the gate that promotion
//! calls on in-memory manifests, and [`hydrate::Hydrator`] renders a template from any
//! [`hydrate::ValueSource`]. The `run_*` functions are the command-line front ends; they do
//! all reading, writing and printing, and return the process exit code.

#![warn(missing_docs)]

pub mod hydrate;
pub mod policy;

pub use hydrate::cli::{HydrateArgs, run_hydrate, run_hydrate_with};
pub use policy::cli::{PolicyCheckArgs, run_policy_check};
