//! Reading records back: every record is decoded through [`crate::record::decode`] (hash
//! re-computed, position checked against its key) and linked to the record before it.

use roster_core::envelope::{ChainError, Envelope, Hash};
use roster_core::port::LogError;

use super::storage;
use crate::{keys, record};

/// The verified record at `seq`; a missing one is a gap.
pub(super) fn get(db: &sled::Db, seq: u64) -> Result<Envelope, LogError> {
    let bytes = db
        .get(keys::event(seq))
        .map_err(storage("read a record"))?
        .ok_or(ChainError::Gap {
            expected: seq,
            found: seq + 1,
        })?;
    Ok(record::decode(seq, &bytes)?)
}

/// The hash the record at `seq` claims (for the link check of the record after it);
/// [`Hash::ZERO`] before position 0.
pub(super) fn hash_before(db: &sled::Db, seq: u64) -> Result<Hash, LogError> {
    let Some(prev) = seq.checked_sub(1) else {
        return Ok(Hash::ZERO);
    };
    let bytes = db
        .get(keys::event(prev))
        .map_err(storage("read a record"))?
        .ok_or(ChainError::Gap {
            expected: prev,
            found: seq,
        })?;
    record::stored_hash(&bytes).ok_or_else(|| {
        ChainError::Undecodable {
            seq: prev,
            why: "the record has no readable header".into(),
        }
        .into()
    })
}

/// Walks the records `from..to` in order, each verified and linked to the one before (to
/// `prev` for the first, or to the stored hash before `from` when `prev` is `None`), and hands
/// each to `visit`.
pub(super) fn records(
    db: &sled::Db,
    from: u64,
    to: u64,
    prev: Option<&Envelope>,
    mut visit: impl FnMut(Envelope) -> Result<(), LogError>,
) -> Result<(), LogError> {
    if from >= to {
        return Ok(());
    }
    let mut link = match prev {
        Some(p) => p.hash(),
        None => hash_before(db, from)?,
    };
    let mut expected = from;
    for item in db.range(keys::event(from)..keys::event(to)) {
        let (key, bytes) = item.map_err(storage("read the log"))?;
        let found = keys::event_seq(&key).unwrap_or(u64::MAX);
        if found != expected {
            return Err(ChainError::Gap { expected, found }.into());
        }
        let env = record::decode(found, &bytes)?;
        if env.prev_hash() != link {
            return Err(ChainError::BrokenLink { seq: found }.into());
        }
        link = env.hash();
        expected += 1;
        visit(env)?;
    }
    if expected != to {
        return Err(ChainError::Gap {
            expected,
            found: to,
        }
        .into());
    }
    Ok(())
}
