//! Strict configuration hydration: a template's `$VAR` references replaced by values from
//! the environment, env files or any other [`ValueSource`], failing closed.
//!
//! Unlike GNU envsubst, a reference to a variable that no source has is an error, every such
//! reference is listed with its line and column, and nothing is written. Values never appear
//! in messages or listings.
//!
//! ```
//! use nova_policy::hydrate::{Hydrator, StaticValues};
//!
//! let values = StaticValues::new("test", [("DB_HOST".to_owned(), "db.internal".to_owned())]);
//! let hydrator = Hydrator::new(vec![Box::new(values)]);
//! let mut out = Vec::new();
//! hydrator.render("app.yaml", &mut "host: ${DB_HOST}\nport: ${DB_PORT:-5432}\n".as_bytes(), &mut out).unwrap();
//! assert_eq!(out, b"host: db.internal\nport: 5432\n");
//!
//! let error = hydrator.render("app.yaml", &mut "url: $DB_URL\n".as_bytes(), &mut Vec::new()).unwrap_err();
//! assert_eq!(error.to_string(), "app.yaml:1:6: DB_URL is not set");
//! ```

pub mod cli;
mod grammar;
mod render;
mod sources;

pub use render::{HydrateError, Hydrator, Origin, Plan, Position, Problem, ProblemKind, Usage};
pub use sources::{
    EnvFile, EnvFileError, Environment, Found, SecretValue, SourceError, StaticValues, ValueSource,
};
