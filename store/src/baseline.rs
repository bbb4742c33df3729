//! Raw sled baselines for `roster bench`: the same record bytes written and read with sled alone,
//! no log semantics (no sealing, no index, no verification). They live here because this is the
//! only crate that names sled; the benchmark prints them next to the log's own figures.

use std::path::Path;
use std::time::{Duration, Instant};

use roster_core::envelope::Body;
use roster_core::port::LogError;

use crate::record;

fn sled_error(op: &'static str) -> impl Fn(sled::Error) -> LogError {
    move |e| LogError::Storage {
        op,
        source: Box::new(e),
    }
}

/// Opens a raw sled db with sled's default configuration, waiting for its file lock as the
/// log does: a db of this process dropped a moment ago may still hold it.
fn open_raw(dir: &Path) -> Result<sled::Db, LogError> {
    crate::sled_log::open_waiting(&sled::Config::new().path(dir))
}

/// Writes `records` into a new sled db at `dir` in batches of `per_flush`, flushing after each
/// batch, keyed by position as the log keys them; returns the time it took.
pub fn insert_and_flush(
    dir: &Path,
    records: &[Vec<u8>],
    per_flush: usize,
) -> Result<Duration, LogError> {
    let db = open_raw(dir)?;
    let started = Instant::now();
    for (c, chunk) in records.chunks(per_flush.max(1)).enumerate() {
        let mut batch = sled::Batch::default();
        for (i, r) in chunk.iter().enumerate() {
            let seq = (c * per_flush.max(1) + i) as u64;
            batch.insert(&crate::keys::event(seq)[..], r.as_slice());
        }
        db.apply_batch(batch)
            .map_err(sled_error("write a raw batch"))?;
        db.flush().map_err(sled_error("flush a raw batch"))?;
    }
    Ok(started.elapsed())
}

/// How long a raw replay took.
#[derive(Debug, Clone, Copy)]
pub struct RawReplay {
    /// Records decoded (per pass).
    pub records: u64,
    /// Open + iterate + decode.
    pub cold: Duration,
    /// A second iterate + decode on the open db.
    pub warm: Duration,
}

/// Opens the raw db at `dir` (written by [`insert_and_flush`]) and postcard-decodes every
/// record's body, twice.
pub fn iterate_and_decode(dir: &Path) -> Result<RawReplay, LogError> {
    let started = Instant::now();
    let db = open_raw(dir)?;
    let records = decode_all(&db)?;
    let cold = started.elapsed();
    let started = Instant::now();
    decode_all(&db)?;
    let warm = started.elapsed();
    Ok(RawReplay {
        records,
        cold,
        warm,
    })
}

fn decode_all(db: &sled::Db) -> Result<u64, LogError> {
    let mut decoded = 0u64;
    for kv in db.iter() {
        let (_, v) = kv.map_err(sled_error("iterate a raw sled db"))?;
        let body: Body = postcard::from_bytes(v.get(record::HEADER_LEN..).unwrap_or_default())
            .map_err(|e| LogError::Storage {
                op: "decode a raw record",
                source: Box::new(e),
            })?;
        decoded += u64::from(std::hint::black_box(body).seq < u64::MAX);
    }
    Ok(decoded)
}

#[cfg(test)]
mod tests {
    use super::*;
    use roster_core::actor::Actor;
    use roster_core::envelope::{Envelope, Hash};
    use roster_core::event::{Event, SCHEMA_VERSION};
    use roster_core::id::{CountingEntropy, EventId, TeamId};
    use roster_core::name::Name;
    use roster_core::time::Timestamp;

    #[test]
    fn raw_round_trip_counts_every_record() {
        let tmp = tempfile::tempdir().unwrap();
        let t = Timestamp::from_millis(1);
        let mut e = CountingEntropy::new(1);
        let team = TeamId::mint(t, &mut e);
        let mut prev = Hash::ZERO;
        let records: Vec<Vec<u8>> = (0..10)
            .map(|seq| {
                let body = Body {
                    seq,
                    id: EventId::mint(t, &mut e),
                    team,
                    version: seq + 1,
                    at: t,
                    actor: Actor::Runtime,
                    causation: None,
                    schema: SCHEMA_VERSION,
                    event: Event::TeamCreated {
                        name: Name::parse("x").unwrap(),
                    },
                };
                let env = Envelope::seal(body, prev);
                prev = env.hash();
                record::encode(&env)
            })
            .collect();
        insert_and_flush(tmp.path(), &records, 4).unwrap();
        let r = iterate_and_decode(tmp.path()).unwrap();
        assert_eq!(r.records, 10);
    }
}
