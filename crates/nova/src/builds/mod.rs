//! The build lane: an owner asks for an image build and a backend runs it.
//! [`backend`] holds the systems that run builds remotely (Jenkins, GitHub Actions); [`store`]
//! records the builds owners asked for; [`local`] is Nova's own runner; [`tracker`] starts and
//! follows builds in the remote backends.

pub mod backend;
pub mod local;
pub mod store;
pub mod tracker;
