//! A full disk under the sled log: a `SledLog` on a small tmpfs, filled up by appends.
//!
//! What must hold (see `roster_store`'s `sled_log` module docs): every append the full disk
//! stops fails with a typed [`StoreFault::DiskFull`] that says so — every writer of a group
//! commit included —, nothing of it is ever seen (not by readers, not after a reopen), the log
//! holds exactly the acknowledged events and its chain verifies, reads go on, and appends
//! resume once the tmpfs grows: without a restart, and after one.
//!
//! Needs root (it mounts tmpfs); without it the tests fail, saying so — they never skip.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../reliability/tmpfs.rs"]
mod tmpfs;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use roster_core::actor::Actor;
use roster_core::envelope::Envelope;
use roster_core::event::Event;
use roster_core::id::{AgentId, CountingEntropy, TeamId};
use roster_core::port::{AppendRequest, Checkpoints, EventLog, LogError, LogRead};
use roster_core::time::Timestamp;
use roster_store::{SledLog, StoreFault, RESERVE};
use tmpfs::Tmpfs;

fn team(n: u64) -> TeamId {
    TeamId::mint(Timestamp::from_millis(1), &mut CountingEntropy::new(n))
}

/// An append of `n` events to `team` at version `expected`.
fn req(team: TeamId, expected: u64, n: usize) -> AppendRequest {
    let agent = AgentId::mint(Timestamp::from_millis(1), &mut CountingEntropy::new(9));
    AppendRequest {
        at: None,
        team,
        expected_version: expected,
        events: vec![Event::AgentRetired { agent }; n],
        actor: Actor::Runtime,
        causation: None,
    }
}

/// The full-disk fault `err` carries, or a failure saying what `err` was instead.
fn disk_full(err: &LogError) -> &StoreFault {
    let fault = StoreFault::of(err).unwrap_or_else(|| panic!("not a store fault: {err:?}"));
    assert!(fault.is_disk_full(), "not a full disk: {fault:?}");
    let text = err.to_string();
    assert!(text.contains("the data disk is full"), "{text}");
    assert!(text.contains("nothing of this was recorded"), "{text}");
    fault
}

/// Every acknowledged event, by position.
type Acked = BTreeMap<u64, Envelope>;

/// Appends from `writers` threads at once (each to its own team, 16 events at a time) until
/// each is refused; every refusal must be the full disk. What was acknowledged.
fn fill(log: &Arc<SledLog>, writers: u64, first_team: u64) -> Acked {
    let threads: Vec<_> = (0..writers)
        .map(|i| {
            let log = Arc::clone(log);
            std::thread::spawn(move || {
                let team = team(first_team + i);
                let mut acked = Vec::new();
                let mut version = log.team_version(team).unwrap();
                loop {
                    match log.append(req(team, version, 16)) {
                        Ok(envs) => {
                            version += envs.len() as u64;
                            acked.extend(envs);
                        }
                        Err(e) => {
                            disk_full(&e);
                            return acked;
                        }
                    }
                }
            })
        })
        .collect();
    let mut acked = Acked::new();
    for t in threads {
        for env in t.join().unwrap() {
            assert!(
                acked.insert(env.seq, env).is_none(),
                "a position acked twice"
            );
        }
    }
    acked
}

/// The log holds exactly `acked` (positions 0.., same envelopes), its chain verifies, and each
/// team's stream (through the team index) is exactly its acknowledged events.
fn holds_exactly(log: &SledLog, acked: &Acked) {
    let all: Vec<Envelope> = acked.values().cloned().collect();
    assert_eq!(log.len(), all.len() as u64, "the log's length");
    assert_eq!(log.read(0, usize::MAX).unwrap(), all);
    assert_eq!(log.verify().unwrap(), all.len() as u64);
    let mut teams: BTreeMap<String, Vec<&Envelope>> = BTreeMap::new();
    for env in &all {
        teams.entry(env.team.to_string()).or_default().push(env);
    }
    for envs in teams.values() {
        let team = envs[0].team;
        assert_eq!(log.team_version(team).unwrap(), envs.len() as u64);
        let read = log.read_team(team, 1, usize::MAX).unwrap();
        assert_eq!(read.iter().collect::<Vec<_>>(), *envs);
    }
}

fn store(fs: &Tmpfs) -> PathBuf {
    fs.path().join("log")
}

/// The disk fills up under four concurrent writers: each is refused with the full disk, the
/// log (read live, then reopened) holds exactly what was acknowledged, and once the tmpfs
/// grows the same open log accepts appends again — no restart. The long form repeats the
/// fill/grow cycle.
#[test]
fn appends_on_a_full_disk_fail_clearly_and_resume_without_a_restart() {
    let rounds = if std::env::var_os("ROSTER_LONG").is_some() {
        6
    } else {
        2
    };
    let mut mib = RESERVE / (1 << 20) + 4;
    let fs = Tmpfs::mount(mib);
    let mut acked = Acked::new();
    {
        let log = Arc::new(SledLog::open(&store(&fs)).unwrap());
        for round in 0..rounds {
            let got = fill(&log, 4, round * 10);
            assert!(got.len() > 100, "round {round}: only {} acked", got.len());
            acked.extend(got);
            assert!(log.fault().is_some_and(|f| f.is_disk_full()));
            // Still full: refused at once, the same way; reads go on.
            let v = log.team_version(team(999)).unwrap();
            disk_full(&log.append(req(team(999), v, 1)).unwrap_err());
            disk_full(&log.set_checkpoint("outbox", 1).unwrap_err());
            holds_exactly(&log, &acked);
            mib += 4;
            fs.grow(mib);
            let next = log.append(req(team(999), v, 1)).unwrap();
            assert_eq!(next[0].seq, acked.len() as u64);
            assert_eq!(next[0].prev_hash(), acked.values().last().unwrap().hash());
            acked.extend(next.into_iter().map(|e| (e.seq, e)));
            // Team 999's stream goes on from what was acknowledged.
            let next = log.append(req(team(999), v + 1, 1)).unwrap();
            acked.extend(next.into_iter().map(|e| (e.seq, e)));
            assert!(log.fault().is_none());
            log.set_checkpoint("outbox", 7).unwrap();
            holds_exactly(&log, &acked);
        }
    }
    let log = SledLog::open(&store(&fs)).unwrap();
    holds_exactly(&log, &acked);
    assert_eq!(log.checkpoint("outbox").unwrap(), Some(7));
}

/// Writes a file in `dir` until the disk is full, as another program filling the disk would.
fn fill_with_a_file(dir: &Path) -> PathBuf {
    use std::io::Write;
    let path = dir.join("filler");
    let mut file = std::fs::File::create(&path).unwrap();
    let chunk = vec![7u8; 64 << 10];
    loop {
        if let Err(e) = file.write_all(&chunk) {
            assert_eq!(e.kind(), std::io::ErrorKind::StorageFull, "{e}");
            return path;
        }
    }
}

/// A store closed in good order, whose disk then fills up (another program's file): it opens
/// all the same — sled needs room to open, which its reserve gives back —, serves reads,
/// refuses appends with the full disk and nothing half-written, and accepts them again once
/// there is room.
#[test]
fn a_store_opened_on_a_full_disk_serves_reads_and_resumes_when_space_returns() {
    let fs = Tmpfs::mount(RESERVE / (1 << 20) + 4);
    let mut acked = Acked::new();
    {
        let log = SledLog::open(&store(&fs)).unwrap();
        for _ in 0..20 {
            let v = log.team_version(team(1)).unwrap();
            acked.extend(
                log.append(req(team(1), v, 16))
                    .unwrap()
                    .into_iter()
                    .map(|e| (e.seq, e)),
            );
        }
    }
    let filler = fill_with_a_file(fs.path());
    for _ in 0..2 {
        let log = SledLog::open(&store(&fs)).unwrap();
        holds_exactly(&log, &acked);
        assert!(log.fault().is_some_and(|f| f.is_disk_full()));
        for _ in 0..3 {
            let v = log.team_version(team(1)).unwrap();
            disk_full(&log.append(req(team(1), v, 1)).unwrap_err());
        }
        holds_exactly(&log, &acked);
    }
    let log = SledLog::open(&store(&fs)).unwrap();
    std::fs::remove_file(filler).unwrap();
    let v = log.team_version(team(1)).unwrap();
    let next = log.append(req(team(1), v, 3)).unwrap();
    assert_eq!(next[0].seq, acked.len() as u64);
    acked.extend(next.into_iter().map(|e| (e.seq, e)));
    holds_exactly(&log, &acked);
    drop(log);
    let log = SledLog::open(&store(&fs)).unwrap();
    holds_exactly(&log, &acked);
}
