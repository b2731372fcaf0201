//! Nova: a self-hosted developer platform console.
//!
//! The binary (`src/main.rs`) is a thin shell over this library. Start reading at
//! [`cli`] (the subcommands), then [`app`] (how the server is assembled); each capability is a
//! module: [`catalog`], [`registry`], [`auth`], [`jobs`], [`storage`], [`secrets`], [`http`] (the JSON API) and
//! [`web`] (the console); child processes start through [`process`]. docs/ARCHITECTURE.md has the map.

pub mod app;
pub mod audit;
pub mod auth;
pub mod authz;
pub mod builds;
pub mod catalog;
pub mod cli;
pub mod config;
pub mod demo;
pub mod doctor;
pub mod flags;
pub mod git_remote;
pub mod health;
pub mod http;
pub mod jobs;
pub mod outbound;
pub mod process;
pub mod secrets;
pub mod registry;
pub mod release;
pub mod storage;
pub mod telemetry;
pub mod web;
