//! Damage done to the files behind the log's back (through raw sled access) is detected and
//! named by position: a flipped bit, a forged record, a missing record.
// Helpers of a test crate panic on failure like the tests themselves.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use roster_core::actor::Actor;
use roster_core::envelope::ChainError;
use roster_core::event::Event;
use roster_core::id::{AgentId, CountingEntropy, TeamId};
use roster_core::port::{AppendRequest, EventLog, LogError, LogRead};
use roster_core::subscription::Subscription;
use roster_core::time::Timestamp;
use roster_store::{export_jsonl, keys, record, MemLog, SledLog, TAIL_CHECK};

fn team() -> TeamId {
    TeamId::mint(Timestamp::from_millis(1), &mut CountingEntropy::new(1))
}

/// Writes `n` events in appends of up to 100.
fn fill(log: &dyn EventLog, n: u64) {
    let agent = AgentId::mint(Timestamp::from_millis(1), &mut CountingEntropy::new(2));
    let mut done = 0;
    while done < n {
        let k = (n - done).min(100);
        log.append(AppendRequest {
            at: None,
            team: team(),
            expected_version: done,
            events: vec![Event::AgentRetired { agent }; k as usize],
            actor: Actor::Runtime,
            causation: None,
        })
        .unwrap();
        done += k;
    }
}

fn store(n: u64) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    fill(&SledLog::open(dir.path()).unwrap(), n);
    dir
}

/// Changes the stored record at `seq` with raw sled, the log closed.
fn tamper(dir: &Path, seq: u64, change: impl FnOnce(&mut Vec<u8>)) {
    let db = raw(dir);
    let mut bytes = db.get(keys::event(seq)).unwrap().unwrap().to_vec();
    change(&mut bytes);
    db.insert(keys::event(seq), bytes).unwrap();
    db.flush().unwrap();
}

fn corrupt(result: Result<impl std::fmt::Debug, LogError>) -> ChainError {
    match result {
        Err(LogError::Corrupt(e)) => e,
        other => panic!("expected a corrupt log, got {other:?}"),
    }
}

#[test]
fn a_flipped_bit_is_never_served_and_verify_names_its_position() {
    let n = TAIL_CHECK + 100;
    let dir = store(n);
    // Position 5 is outside the tail that open re-checks, so open succeeds.
    tamper(dir.path(), 5, |b| b[record::HEADER_LEN + 10] ^= 0x04);
    let log = SledLog::open(dir.path()).unwrap();
    assert_eq!(log.len(), n);
    let bad = ChainError::HashMismatch { seq: 5 };
    assert_eq!(corrupt(log.read(5, 1)), bad);
    assert_eq!(corrupt(log.read(0, 10)), bad);
    assert_eq!(corrupt(log.read_team(team(), 6, 1)), bad);
    assert_eq!(corrupt(log.verify()), bad);
    assert!(corrupt(log.verify())
        .to_string()
        .contains("event at position 5"));
    // Its neighbours still read: the damage is contained and named.
    assert_eq!(log.read(4, 1).unwrap()[0].seq, 4);
    assert_eq!(log.read(6, 3).unwrap()[0].seq, 6);
    let mut sub = Subscription::new(std::sync::Arc::new(log), 0);
    let mut delivered = 0;
    let err = loop {
        match sub.next().unwrap() {
            Ok(_) => delivered += 1,
            Err(e) => break e,
        }
    };
    assert_eq!(delivered, 5);
    assert!(matches!(
        err,
        LogError::Corrupt(ChainError::HashMismatch { seq: 5 })
    ));
}

#[test]
fn a_flipped_bit_in_the_tail_stops_open() {
    let dir = store(10);
    tamper(dir.path(), 7, |b| b[1] ^= 0x80);
    assert_eq!(
        corrupt(SledLog::open(dir.path())),
        ChainError::HashMismatch { seq: 7 }
    );
}

#[test]
fn a_well_formed_forgery_breaks_the_link() {
    let dir = store(TAIL_CHECK + 20);
    // A record that hashes correctly, but was sealed in another history.
    let other = MemLog::new();
    fill(&other, 10);
    let forged = record::encode(&other.read(3, 1).unwrap()[0]);
    tamper(dir.path(), 3, |b| *b = forged);
    let log = SledLog::open(dir.path()).unwrap();
    assert_eq!(corrupt(log.verify()), ChainError::BrokenLink { seq: 3 });
    assert_eq!(corrupt(log.read(3, 1)), ChainError::BrokenLink { seq: 3 });
    // The record after it no longer links to it either.
    assert_eq!(corrupt(log.read(4, 1)), ChainError::BrokenLink { seq: 4 });
    assert!(export_jsonl(&log, &mut Vec::new()).is_err());
}

#[test]
fn a_removed_record_is_a_gap_at_open() {
    let dir = store(50);
    {
        let db = raw(dir.path());
        db.remove(keys::event(20)).unwrap();
        db.flush().unwrap();
    }
    let err = corrupt(SledLog::open(dir.path()));
    assert_eq!(
        err,
        ChainError::Gap {
            expected: 20,
            found: 21
        }
    );
    assert!(err.to_string().contains("position 20"), "{err}");
}

/// Raw sled access to the store's files, without sled's background flusher. sled's threads can
/// hold the file lock for a moment after the log was dropped, so this waits for it.
fn raw(dir: &std::path::Path) -> sled::Db {
    let config = sled::Config::new().path(dir).flush_every_ms(None);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match config.open() {
            Ok(db) => return db,
            Err(e) if std::time::Instant::now() < deadline => {
                eprintln!("waiting for the store's lock: {e}");
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(e) => panic!("cannot open the store raw: {e}"),
        }
    }
}
