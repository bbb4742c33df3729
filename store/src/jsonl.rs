//! The JSON-lines form of a log: one [`EnvelopeJson`] per line, each followed by the signed
//! heads of its position, one `{"signed_head": {…}}` line each ([`SignedHead`]'s JSON form).
//! `roster export` writes it and `roster import` reads it back into an empty store, unchanged
//! (same positions, ids, hashes, heads), after checking every line: its hash, its link to the
//! line before, that the events fold into a consistent [`World`], and that every signed head's
//! signature holds and its hash is the chain's at its position. An edited line is refused by
//! its number, and nothing is written.
//!
//! An export without heads (every export before signed heads, or one whose heads were
//! stripped) is still imported; [`Imported::coverage`] says it is unsigned. A reader that
//! predates heads refuses a signed export at its first head line, naming the line.

use std::io::{BufRead, Write};

use roster_core::envelope::{ChainError, Envelope, EnvelopeJson};
use roster_core::event::SCHEMA_VERSION;
use roster_core::port::{EventLog, LogError, LogRead};
use roster_core::signed::{Coverage, HeadError, PublicKey, SignedHead};
use roster_core::world::{FoldError, World};
use serde::{Deserialize, Serialize};

use crate::{MemLog, SledLog};

/// How many envelopes one storage read of the export fetches.
const EXPORT_BATCH: usize = 1024;

/// A log that can take envelopes sealed elsewhere, unchanged (the target of an import).
pub trait AppendSealed: EventLog {
    /// Appends `envelopes` in one atomic, durable batch; they must continue the log exactly.
    fn append_sealed(&self, envelopes: Vec<Envelope>) -> Result<(), LogError> {
        self.append_sealed_signed(envelopes, Vec::new())
    }

    /// [`AppendSealed::append_sealed`], keeping `heads` (checked signed heads of these
    /// envelopes) in the same batch.
    fn append_sealed_signed(
        &self,
        envelopes: Vec<Envelope>,
        heads: Vec<SignedHead>,
    ) -> Result<(), LogError>;
}

impl AppendSealed for SledLog {
    fn append_sealed_signed(
        &self,
        envelopes: Vec<Envelope>,
        heads: Vec<SignedHead>,
    ) -> Result<(), LogError> {
        SledLog::append_sealed_signed(self, envelopes, heads)
    }
}

impl AppendSealed for MemLog {
    fn append_sealed_signed(
        &self,
        envelopes: Vec<Envelope>,
        heads: Vec<SignedHead>,
    ) -> Result<(), LogError> {
        MemLog::append_sealed_signed(self, envelopes, heads)
    }
}

/// A line of an export that is not an event: a signed head of the events before it.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct HeadLine {
    signed_head: SignedHead,
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
    /// A line names itself a signed head but is not one.
    #[error("line {line}: not a signed head: {source}")]
    HeadJson {
        /// The line number, from 1.
        line: u64,
        /// The parser's complaint.
        #[source]
        source: serde_json::Error,
    },
    /// A signed head does not hold: its signature, or its hash against the events' chain (the
    /// events were edited and re-sealed after it was signed), or a position the export lacks.
    #[error("line {line}: {source}")]
    Head {
        /// The line number of the head, from 1.
        line: u64,
        /// What does not hold.
        #[source]
        source: HeadError,
    },
    /// The import was asked to take only history signed by `key` to its end, and the export
    /// is not.
    #[error(
        "the export is not signed by {key} to its end: {}, and its last event is at position \
         {last}; import it without --key to take it unsigned (it then says so)",
        signed_by(*.signed_to)
    )]
    NotSignedBy {
        /// The key asked for.
        key: PublicKey,
        /// The last position a head by `key` signs.
        signed_to: Option<u64>,
        /// The export's last position.
        last: u64,
    },
    /// Everything checked out, but writing to the store failed.
    #[error("cannot write the imported events: {0}")]
    Write(#[from] LogError),
}

fn signed_by(signed_to: Option<u64>) -> String {
    match signed_to {
        None => "no head of it is in the export".into(),
        Some(s) => format!("its heads sign it up to position {s}"),
    }
}

impl ImportError {
    /// A signed head, not the chain, refused the import (exit 9 in the CLI, not 4).
    pub fn is_signature(&self) -> bool {
        matches!(
            self,
            ImportError::Head { .. } | ImportError::NotSignedBy { .. }
        )
    }
}

/// What an import took in.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Imported {
    /// How many events.
    pub events: u64,
    /// How far the export's signed heads (all checked) cover its events.
    pub coverage: Coverage,
}

/// Writes every committed event of `log`, one JSON object per line; returns how many.
pub fn export_jsonl(log: &dyn LogRead, out: &mut dyn Write) -> Result<u64, ExportError> {
    export_signed_jsonl(log, log.len(), &[], out)
}

/// Writes the first `end` events of `log` (at most all), one JSON object per line, each
/// followed by its position's heads among `heads` as `{"signed_head": {…}}` lines; returns
/// how many events. Heads of later positions are left out.
pub fn export_signed_jsonl(
    log: &dyn LogRead,
    end: u64,
    heads: &[SignedHead],
    out: &mut dyn Write,
) -> Result<u64, ExportError> {
    let end = end.min(log.len());
    let mut heads: Vec<&SignedHead> = heads.iter().filter(|h| h.seq < end).collect();
    heads.sort_by_key(|h| (h.seq, h.public_key.to_bytes()));
    let mut heads = heads.into_iter().peekable();
    let mut next = 0u64;
    while next < end {
        let batch = log.read(next, EXPORT_BATCH)?;
        if batch.is_empty() {
            break;
        }
        for env in batch.into_iter().take_while(|e| e.seq < end) {
            let seq = env.seq;
            let json = |source| ExportError::Json { seq, source };
            serde_json::to_writer(&mut *out, &env).map_err(json)?;
            out.write_all(b"\n")?;
            while let Some(head) = heads.next_if(|h| h.seq == seq) {
                serde_json::to_writer(&mut *out, &HeadLine { signed_head: *head }).map_err(json)?;
                out.write_all(b"\n")?;
            }
            next = seq + 1;
        }
    }
    out.flush()?;
    Ok(next)
}

/// Reads a JSON-lines log into the empty `log`, unchanged; returns how many events. See
/// [`import_signed_jsonl`], which this is without a key to insist on.
pub fn import_jsonl(log: &dyn AppendSealed, input: &mut dyn BufRead) -> Result<u64, ImportError> {
    import_signed_jsonl(log, input, None).map(|i| i.events)
}

/// Reads a JSON-lines log into the empty `log`, unchanged, with its signed heads.
///
/// Every line is checked before anything is written — hash, position, link, schema, and the
/// fold into a [`World`] under the rules `decide` enforces ([`World::apply_checked`]: a log
/// whose hashes are right but whose events break the permission rules is refused too); then
/// every signed head, wherever its line is: its signature, and its hash against the chain at
/// its position (an export edited and re-sealed after a head was signed fails here). With
/// `key`, the events must also be signed by that key to the last one. Then all are written in
/// one atomic batch. Blank lines are skipped. The whole log is held in memory meanwhile.
///
/// A head proves only that its key's holder signed it: which keys to trust is the caller's
/// (`key`, or what it does with [`Imported::coverage`]).
pub fn import_signed_jsonl(
    log: &dyn AppendSealed,
    input: &mut dyn BufRead,
    key: Option<&PublicKey>,
) -> Result<Imported, ImportError> {
    let len = log.len();
    if len != 0 {
        return Err(ImportError::NotEmpty { len });
    }
    let mut heads: Vec<(u64, SignedHead)> = Vec::new();
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
        let json: EnvelopeJson = match serde_json::from_str(&text) {
            Ok(json) => json,
            Err(source) => match serde_json::from_str::<HeadLine>(&text) {
                Ok(h) => {
                    heads.push((line, h.signed_head));
                    continue;
                }
                Err(head) if text.contains("\"signed_head\"") => {
                    return Err(ImportError::HeadJson { line, source: head })
                }
                Err(_) => return Err(ImportError::Json { line, source }),
            },
        };
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
    for (line, head) in &heads {
        let at = usize::try_from(head.seq)
            .ok()
            .and_then(|i| envelopes.get(i));
        head.check_against(count, at.map(|e| e.hash()))
            .map_err(|source| ImportError::Head {
                line: *line,
                source,
            })?;
    }
    let heads: Vec<SignedHead> = heads.into_iter().map(|(_, h)| h).collect();
    let coverage = Coverage::of(&heads, key.copied(), count);
    if let (Some(key), Some(last)) = (key, count.checked_sub(1)) {
        if coverage.signed_to != Some(last) {
            return Err(ImportError::NotSignedBy {
                key: *key,
                signed_to: coverage.signed_to,
                last,
            });
        }
    }
    log.append_sealed_signed(envelopes, heads)?;
    Ok(Imported {
        events: count,
        coverage,
    })
}
