//! # roster-runtime
//!
//! The daemon as a library: what `roster serve` runs, and what a test or a benchmark starts
//! in-process with [`daemon::start`] (a data directory and [`ServeOptions`] in, a
//! [`daemon::Running`] handle out, [`daemon::Running::shutdown`] to stop).
//!
//! # Layout
//! - [`admin`]: the operator's operations — typed requests in, typed items out — and the
//!   admin socket that carries them to a running daemon.
//! - [`app`]: one opened data directory — the ledger over the sled log ([`app::App`]) and the
//!   snapshots readers take.
//! - [`error`]: one error enum per operation ([`RuntimeError`], [`StartError`],
//!   [`SupervisorError`], [`ControlError`], [`ConfigError`]).
//! - [`config`]: the configuration file, `DATA/roster.toml`.
//! - [`daemon`]: the daemon — its world behind one lane ([`daemon::Daemon::decide`],
//!   [`daemon::Daemon::snapshot`]), the admin socket, the supervisor of the agents'
//!   containers, context between agents, `act` and the tool providers.
//! - [`gateway`]: each agent's socket — framing, rate limits, fair admission, the answers.
//! - `private`: who may read what of a data directory; the log kept owner-only at every
//!   opening.
//! - [`signing`]: the signing key (made, kept owner-only, loaded) and the signed heads of the
//!   log made with it — by the daemon on a cadence and at a clean stop, by commands on demand.
//! - [`describe`]: one-line texts for people of agents, grants and events (the CLI and the
//!   gateway's answers).
#![forbid(unsafe_code)]

pub mod admin;
pub mod app;
pub mod config;
pub mod daemon;
pub mod describe;
pub mod error;
pub mod gateway;
mod private;
pub mod refusals;
pub mod signing;

pub use daemon::ServeOptions;
pub use error::{AdminError, ConfigError, ControlError, RuntimeError, StartError, SupervisorError};
