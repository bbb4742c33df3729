//! # roster-runtime
//!
//! The daemon as a library: what `roster serve` runs, and what a test or a benchmark starts
//! in-process with [`daemon::start`] (a data directory and [`ServeOptions`] in, a
//! [`daemon::Running`] handle out, [`daemon::Running::shutdown`] to stop).
//!
//! # Layout
//! - [`app`]: one opened data directory — the ledger over the sled log ([`app::App`]) and the
//!   snapshots readers take.
//! - [`error`]: one error enum per operation ([`RuntimeError`], [`StartError`],
//!   [`SupervisorError`], [`ControlError`], [`ConfigError`]).
//! - [`config`]: the configuration file, `DATA/roster.toml`.
//! - [`daemon`]: the daemon — its world behind one lane ([`daemon::Daemon::decide`],
//!   [`daemon::Daemon::snapshot`]), the admin socket, the supervisor of the agents'
//!   containers, context between agents, `act` and the tool providers.
//! - [`gateway`]: each agent's socket — framing, rate limits, fair admission, the answers.
//! - [`describe`]: one-line texts for people of agents, grants and events (the CLI and the
//!   gateway's answers).
//! - [`out`]: where a command's text goes (this process, or a client of the admin socket).
#![forbid(unsafe_code)]

pub mod app;
pub mod config;
pub mod daemon;
pub mod describe;
pub mod error;
pub mod gateway;
pub mod out;

pub use daemon::ServeOptions;
pub use error::{ConfigError, ControlError, RuntimeError, StartError, SupervisorError};
