//! Helpers shared by roster-core's integration tests.
//!
//! - [`spec`]: [`CapSpec`], a capability as a plain structure that generators build, narrow,
//!   widen and instantiate, with the strategies that draw them.
//! - [`harness`]: [`Harness`], which drives `decide` and folds each accepted decision into a
//!   `World` through sealed envelopes (consecutive `seq`, team versions from the world, the
//!   previous hash), the way the daemon does with a real log.
#![allow(dead_code)] // Each test binary uses its own subset of these helpers.

pub mod harness;
pub mod spec;

pub use harness::*;
#[allow(unused_imports)] // `decide.rs` names no spec.
pub use spec::*;
