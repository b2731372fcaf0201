//! The build lane: an owner asks for an image build and a backend runs it.
//! [`backend`] holds the systems that run builds remotely (Jenkins, GitHub Actions); [`store`]
//! records the builds owners asked for.

pub mod backend;
pub mod store;
