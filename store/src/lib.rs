//! # roster-store
//!
//! The event log of roster: [`SledLog`] on disk (sled, postcard records, group commit) and
//! [`MemLog`] in memory, both implementing [`roster_core::port::EventLog`] with the same rules.
//! This is the only crate that names sled.
//!
//! # Layout
//! - [`keys`]: the key layout of the one sled tree (log, team index, versions, meta).
//! - [`record`]: the record of one event on disk, and its verifying decoder.
//! - `head`: the end of the log and the staging of appends, shared by both logs.
//! - `sled_log`: [`SledLog`] — open checks, the pipelined group commit (a writer thread that
//!   stages, a committer thread that applies and flushes), verified reads.
//! - `mem`: [`MemLog`].
//! - `jsonl`: [`export_signed_jsonl`] and [`import_signed_jsonl`], the JSON-lines form of a
//!   log and its signed heads.
//! - [`baseline`]: raw sled write and read baselines for `roster bench`.
//! - `clock`: the wall clock and [`OsEntropy`] (OS randomness), the only impure inputs of an
//!   append.
//!
//! The log (`e` keys) is the only source of truth; the team index and versions are derived from
//! it, written in the same atomic batch, and rebuilt from it at open if they ever disagree.
#![forbid(unsafe_code)]

pub mod baseline;
mod clock;
mod head;
mod jsonl;
pub mod keys;
mod mem;
pub mod record;
mod sled_log;
#[cfg(test)]
mod test_support;

pub use clock::{now, OsEntropy};
pub use jsonl::{
    export_jsonl, export_signed_jsonl, import_jsonl, import_signed_jsonl, AppendSealed,
    ExportError, ImportError, Imported,
};
pub use mem::MemLog;
pub use sled_log::{SledLog, StoreFault, RESERVE, TAIL_CHECK};
