//! Reliability suite: faults (being written).
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

#[path = "../../cli/tests/common/mod.rs"]
mod common;
