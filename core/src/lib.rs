//! # roster-core
//!
//! The pure domain core of roster: what a team is, what can happen to it, who may do what, and
//! how the log is chained. **No I/O**: no storage, network, containers, sockets or clock reads —
//! time and randomness are parameters, storage is a port ([`port::EventLog`]).
//!
//! # Layout
//! - [`id`]: typed UUID v7 ids (`team_…`, `agt_…`, `grt_…`) and the [`id::Entropy`] they are minted from.
//! - [`name`], [`topic`], [`time`]: validated names, texts, topics and timestamps.
//! - [`capability`]: `ACTION@RESOURCE,constraints`, matching, and [`capability::covers`].
//! - [`event`], [`actor`], [`envelope`]: events v1, who caused them, and the hash chain.
//! - [`world`]: the projection, a pure fold over envelopes.
//! - [`authz`]: `World::authorize`, the one authorization function.
//! - [`command`]: commands and [`command::decide`].
//! - [`port`]: the [`port::EventLog`] trait that `roster-store` implements.
#![forbid(unsafe_code)]

pub mod actor;
pub mod authz;
pub mod capability;
pub mod command;
pub mod envelope;
pub mod event;
pub mod id;
pub mod name;
pub mod port;
pub mod time;
pub mod topic;
pub mod world;

/// The image an agent runs when none is named: the minimal base image the runtime builds itself
/// (a static busybox and `roster-agent`), so nothing depends on a registry.
pub const BASE_IMAGE: &str = "roster/agent-base:1";
