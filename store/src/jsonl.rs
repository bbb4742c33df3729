//! The JSON-lines form of a log: one [`EnvelopeJson`] per line. `roster export` writes it and
//! `roster import` reads it back into an empty store, unchanged (same positions, ids, hashes),
//! after checking every line: its hash, its link to the line before, and that the events fold
//! into a consistent [`World`]. An edited line is refused by its number, and nothing is written.

use std::io::{BufRead, Write};

use roster_core::envelope::{ChainError, Envelope, EnvelopeJson};
use roster_core::event::SCHEMA_VERSION;
use roster_core::port::{EventLog, LogError, LogRead};
use roster_core::world::{FoldError, World};

use crate::{MemLog, SledLog};

/// How many envelopes one storage read of the export fetches.
const EXPORT_BATCH: usize = 1024;

/// A log that can take envelopes sealed elsewhere, unchanged (the target of an import).
pub trait AppendSealed: EventLog {
    /// Appends `envelopes` in one atomic, durable batch; they must continue the log exactly.
    fn append_sealed(&self, envelopes: Vec<Envelope>) -> Result<(), LogError>;
}

impl AppendSealed for SledLog {
    fn append_sealed(&self, envelopes: Vec<Envelope>) -> Result<(), LogError> {
        SledLog::append_sealed(self, envelopes)
    }
}

impl AppendSealed for MemLog {
    fn append_sealed(&self, envelopes: Vec<Envelope>) -> Result<(), LogError> {
        MemLog::append_sealed(self, envelopes)
    }
}

/// Why an export stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExportError {
    /// Reading the log failed (storage, or a record that does not verify).
    #[error("cannot read the log: {0}")]
    Log(#[from] LogError),
    /// Writing the output failed.
    #[error("cannot write the export: {0}")]
    Io(#[from] std::io::Error),
    /// An envelope could not be written as JSON.
    #[error("cannot write the event at position {seq} as JSON: {source}")]
    Json {
        /// Where.
        seq: u64,
        /// The encoder's complaint.
        #[source]
        source: serde_json::Error,
    },
}

/// Why an import was refused. Nothing was written in every case but [`ImportError::Write`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImportError {
    /// The target store already holds events; an import only fills an empty store.
    #[error("the target store is not empty (it holds {len} events); import into a new store")]
    NotEmpty {
        /// How many events it holds.
        len: u64,
    },
    /// Reading the input failed.
    #[error("cannot read the import: {0}")]
    Io(#[from] std::io::Error),
    /// A line is not an envelope in JSON.
    #[error("line {line}: not an event envelope: {source}")]
    Json {
        /// The line number, from 1.
        line: u64,
        /// The parser's complaint.
        #[source]
        source: serde_json::Error,
    },
    /// A line does not verify: edited (hash mismatch), out of order or unlinked.
    #[error("line {line}: {source}")]
    Chain {
        /// The line number, from 1.
        line: u64,
        /// What does not hold.
        #[source]
        source: ChainError,
    },
    /// A line has a schema version this build does not know.
    #[error(
        "line {line}: event schema version {found}; this build reads versions 1 to {supported} \
         (a newer roster wrote it)"
    )]
    Schema {
        /// The line number, from 1.
        line: u64,
        /// The version in the line.
        found: u16,
        /// The latest version this build reads.
        supported: u16,
    },
    /// A line's event contradicts the events before it.
    #[error("line {line}: {source}")]
    Inconsistent {
        /// The line number, from 1.
        line: u64,
        /// Why it does not fold.
        #[source]
        source: FoldError,
    },
    /// Everything checked out, but writing to the store failed.
    #[error("cannot write the imported events: {0}")]
    Write(#[from] LogError),
}

/// Writes every committed event of `log`, one JSON object per line; returns how many.
pub fn export_jsonl(log: &dyn LogRead, out: &mut dyn Write) -> Result<u64, ExportError> {
    let end = log.len();
    let mut next = 0u64;
    while next < end {
        let batch = log.read(next, EXPORT_BATCH)?;
        if batch.is_empty() {
            break;
        }
        for env in batch.into_iter().take_while(|e| e.seq < end) {
            serde_json::to_writer(&mut *out, &env).map_err(|source| ExportError::Json {
                seq: env.seq,
                source,
            })?;
            out.write_all(b"\n")?;
            next = env.seq + 1;
        }
    }
    out.flush()?;
    Ok(next)
}

/// Reads a JSON-lines log into the empty `log`, unchanged; returns how many events.
///
/// Every line is checked before anything is written — hash, position, link, schema, and the
/// fold into a [`World`] under the rules `decide` enforces ([`World::apply_checked`]: a log
/// whose hashes are right but whose events break the permission rules is refused too) — then
/// all are written in one atomic batch. Blank lines are skipped.
/// The whole log is held in memory meanwhile.
pub fn import_jsonl(log: &dyn AppendSealed, input: &mut dyn BufRead) -> Result<u64, ImportError> {
    let len = log.len();
    if len != 0 {
        return Err(ImportError::NotEmpty { len });
    }
    let mut envelopes: Vec<Envelope> = Vec::new();
    let mut world = World::new();
    let mut text = String::new();
    let mut line = 0u64;
    loop {
        text.clear();
        if input.read_line(&mut text)? == 0 {
            break;
        }
        line += 1;
        if text.trim().is_empty() {
            continue;
        }
        let json: EnvelopeJson =
            serde_json::from_str(&text).map_err(|source| ImportError::Json { line, source })?;
        let env = json
            .check()
            .map_err(|source| ImportError::Chain { line, source })?;
        env.follows(envelopes.last())
            .map_err(|source| ImportError::Chain { line, source })?;
        // Every version up to this build's reads: a later one may hold what it cannot know.
        if !(1..=SCHEMA_VERSION).contains(&env.schema) {
            return Err(ImportError::Schema {
                line,
                found: env.schema,
                supported: SCHEMA_VERSION,
            });
        }
        world
            .apply_checked(&env)
            .map_err(|source| ImportError::Inconsistent { line, source })?;
        envelopes.push(env);
    }
    let count = envelopes.len() as u64;
    log.append_sealed(envelopes)?;
    Ok(count)
}
