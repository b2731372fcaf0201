//! Nova's pure domain types.
//!
//! Everything here is parsed once, at the boundary, and never re-validated: a value of one of
//! these types is valid by construction. Nothing in this crate performs I/O.

pub mod build;
pub mod build_pipeline;
pub mod entity;
pub mod entity_ref;
pub mod image;
pub mod image_links;
pub mod names;
pub mod relations;
pub mod sensitive;

pub use entity::{CompactEntity, Entity, EntityKind, FieldError};
pub use entity_ref::{EntityRef, RefError};
pub use image::{Digest, EcrRepositoryArn, ImageNameError, ImageReference, ImageTag, RepositoryName, TagPrefix};
pub use image_links::{ImageLinks, LinkError, LinkedRepository, RepositoryLink};
pub use relations::{Relation, RelationType};
pub use sensitive::Sensitive;
