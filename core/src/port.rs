//! Ports: the traits the I/O crates implement. `store` implements [`EventLog`] and
//! [`Checkpoints`] on sled and in memory; the daemon and the CLI only ever talk to the trait.

use std::time::Duration;

use crate::actor::Actor;
use crate::envelope::{ChainError, Envelope};
use crate::event::Event;
use crate::id::{EventId, TeamId};
use crate::signed::{PublicKey, SignedHead};
use crate::time::Timestamp;

/// One atomic append: all of `events` are committed to `team`'s stream, or none is.
#[derive(Debug, Clone)]
pub struct AppendRequest {
    /// The team whose stream grows.
    pub team: TeamId,
    /// The team's version the caller decided on (0 for a team with no events yet); if the
    /// team has moved on, the append fails with [`LogError::Conflict`] and writes nothing.
    pub expected_version: u64,
    /// The events, in order. Must not be empty.
    pub events: Vec<Event>,
    /// Who caused them.
    pub actor: Actor,
    /// The event that caused them, if any.
    pub causation: Option<EventId>,
    /// The time the events were decided at (`decide`'s `now`), so that the recorded time is the
    /// one the decision was checked against; the log stamps `max(at, last committed time)`.
    /// `None`: the log's clock now.
    pub at: Option<Timestamp>,
}

/// Why a log operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LogError {
    /// Optimistic concurrency: the team's stream is not at the expected version. Nothing written.
    #[error("team {team} is at version {actual}, not {expected}: someone else wrote first; reload and retry")]
    Conflict {
        /// The team.
        team: TeamId,
        /// The version the caller expected.
        expected: u64,
        /// The version the stream is at.
        actual: u64,
    },
    /// An append with no events.
    #[error("nothing to append: the batch is empty")]
    EmptyBatch,
    /// The log's content does not verify.
    #[error("the log is corrupt: {0}")]
    Corrupt(#[from] ChainError),
    /// The store's files are damaged below the level of records (the storage engine's own
    /// checks failed), so no position can be named.
    #[error("the store's files are damaged: {why}")]
    Damaged {
        /// What the storage engine reported.
        why: String,
    },
    /// The underlying storage failed (disk full, I/O error). Nothing acknowledged was lost.
    #[error("storage failed while trying to {op}: {source}")]
    Storage {
        /// What was being done.
        op: &'static str,
        /// The storage's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The log was written by a newer (or unknown) format.
    #[error("the store's format version is {found}; this build reads version {supported}")]
    Format {
        /// The version on disk.
        found: u32,
        /// The version this build writes and reads.
        supported: u32,
    },
    /// The log has been closed (its writer stopped).
    #[error("the log is closed")]
    Closed,
}

/// An append-only, hash-chained event log: [`LogRead`] and the one way it grows.
///
/// Positions (`seq`) are gapless from 0. `append` returns only once its events are durable.
/// Only the ledger (`roster_core::ledger`) appends decisions; readers are handed the
/// [`LogRead`] half.
pub trait EventLog: LogRead {
    /// Appends one batch atomically and durably; returns the sealed envelopes.
    fn append(&self, request: AppendRequest) -> Result<Vec<Envelope>, LogError>;
}

/// The reading half of an [`EventLog`]: what a reader, a subscriber or an export needs, and
/// nothing that can change the log.
pub trait LogRead: Send + Sync {
    /// The number of committed events (the next `seq`).
    fn len(&self) -> u64;

    /// True when nothing was ever committed.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Up to `limit` envelopes from position `from`, each re-verified against its hash.
    fn read(&self, from: u64, limit: usize) -> Result<Vec<Envelope>, LogError>;

    /// Up to `limit` envelopes of `team` from its version `from_version` (1-based).
    fn read_team(
        &self,
        team: TeamId,
        from_version: u64,
        limit: usize,
    ) -> Result<Vec<Envelope>, LogError>;

    /// The current version of `team`'s stream (0 if it has no events).
    fn team_version(&self, team: TeamId) -> Result<u64, LogError>;

    /// Blocks until the log holds more than `len` events or `timeout` passes; returns the
    /// log's length then. The building block of catch-up-then-live subscriptions.
    fn wait_longer_than(&self, len: u64, timeout: Duration) -> u64;

    /// Walks the whole chain and names the first position that does not verify.
    fn verify(&self) -> Result<u64, LogError>;
}

/// Named positions kept beside a log, outside its chain: how far a consumer of the log (the NATS
/// outbox, a durable subscriber) has got.
///
/// A checkpoint is a consumer's progress, not state: losing one only means handling again from
/// an earlier position, which the consumer's dedup absorbs.
pub trait Checkpoints: Send + Sync {
    /// The position consumer `name` recorded with [`Checkpoints::set_checkpoint`], if any.
    fn checkpoint(&self, name: &str) -> Result<Option<u64>, LogError>;

    /// Records durably that consumer `name` has handled everything before position `seq`.
    fn set_checkpoint(&self, name: &str, seq: u64) -> Result<(), LogError>;
}

/// Signed heads kept beside a log, outside its chain (see [`crate::signed`]): what `verify`
/// checks the chain against and `export` carries. Like [`Checkpoints`], they are not state:
/// nothing is decided from them. Unlike them, losing one loses evidence, so they are kept as
/// durably as events.
pub trait SignedHeads: Send + Sync {
    /// Every head kept, by position, then key. Each is as it was stored: check it before
    /// believing it.
    fn signed_heads(&self) -> Result<Vec<SignedHead>, LogError>;

    /// The head of the highest position kept (of any key), if any.
    fn last_signed_head(&self) -> Result<Option<SignedHead>, LogError>;

    /// The head of position `seq` by `key`, if one is kept.
    fn signed_head(&self, seq: u64, key: &PublicKey) -> Result<Option<SignedHead>, LogError>;

    /// Keeps `head` durably, beside any other key's head of the same position (one of the
    /// same key and position is replaced). The caller signed it over the committed log.
    fn keep_signed_head(&self, head: SignedHead) -> Result<(), LogError>;
}

/// A log and its consumers' checkpoints: what a consumer that tails the log from where it
/// stopped (the NATS outbox) runs over.
pub trait CheckpointedLog: LogRead + Checkpoints {}

impl<T: LogRead + Checkpoints + ?Sized> CheckpointedLog for T {}
