//! The build lane: an owner asks for an image build and a backend runs it.
//! [`backend`] holds the systems that run builds remotely (Jenkins, GitHub Actions).

pub mod backend;
