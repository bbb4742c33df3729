use super::*;
use roster_core::envelope::{ChainError, Hash};
use roster_core::port::Checkpoints;

use crate::record;
use crate::test_support::{req, team};

/// The CLI shares one log between threads and hands it around as `Arc<dyn EventLog>`.
const _: fn() = || {
    fn shareable<T: EventLog + Send + Sync + fmt::Debug + 'static>() {}
    shareable::<SledLog>();
    shareable::<crate::MemLog>();
};

#[test]
fn survives_reopen_and_continues_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (team(1), team(2));
    let last = {
        let log = SledLog::open(dir.path()).unwrap();
        assert!(log.is_empty());
        log.append(req(a, 0, 2)).unwrap();
        assert!(matches!(
            log.append(req(a, 0, 1)),
            Err(LogError::Conflict {
                expected: 0,
                actual: 2,
                ..
            })
        ));
        assert!(matches!(
            log.append(req(a, 2, 0)),
            Err(LogError::EmptyBatch)
        ));
        log.append(req(b, 0, 1)).unwrap().pop().unwrap()
    };
    let log = SledLog::open(dir.path()).unwrap();
    assert_eq!(log.len(), 3);
    assert_eq!(
        (log.team_version(a).unwrap(), log.team_version(b).unwrap()),
        (2, 1)
    );
    let next = log.append(req(a, 2, 1)).unwrap();
    assert_eq!(next[0].seq, 3);
    assert_eq!(next[0].prev_hash(), last.hash());
    assert!(next[0].at >= last.at);
    assert_eq!(log.verify().unwrap(), 4);
    let a_events: Vec<u64> = log
        .read_team(a, 1, 10)
        .unwrap()
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(a_events, [0, 1, 3]);
    assert_eq!(log.read_team(a, 3, 10).unwrap()[0].seq, 3);
    assert!(log.read_team(team(7), 1, 10).unwrap().is_empty());
    assert_eq!(log.read(1, 2).unwrap().len(), 2);
    assert_eq!(log.read(0, 100).unwrap()[0].prev_hash(), Hash::ZERO);
    assert!(log.read(4, 10).unwrap().is_empty());
}

#[test]
fn checkpoints_are_durable() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = SledLog::open(dir.path()).unwrap();
        assert_eq!(log.checkpoint("nats").unwrap(), None);
        log.set_checkpoint("nats", 41).unwrap();
        log.set_checkpoint("nats", 42).unwrap();
    }
    let log = SledLog::open(dir.path()).unwrap();
    assert_eq!(log.checkpoint("nats").unwrap(), Some(42));
    assert_eq!(log.checkpoint("other").unwrap(), None);
}

#[test]
fn an_unknown_format_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    drop(SledLog::open(dir.path()).unwrap());
    {
        let db = raw(dir.path());
        db.insert(keys::FORMAT_KEY, &3u32.to_be_bytes()).unwrap();
        db.flush().unwrap();
    }
    assert!(matches!(
        SledLog::open(dir.path()),
        Err(LogError::Format {
            found: 3,
            supported: 2
        })
    ));
}

#[test]
fn a_lost_team_index_is_rebuilt_from_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (team(1), team(2));
    {
        let log = SledLog::open(dir.path()).unwrap();
        log.append(req(a, 0, 3)).unwrap();
        log.append(req(b, 0, 2)).unwrap();
    }
    {
        let db = raw(dir.path());
        db.remove(keys::version(a)).unwrap();
        // b's only run (versions 1..=2) starts at version 1.
        db.remove(keys::team(b, 1)).unwrap();
        db.flush().unwrap();
    }
    let log = SledLog::open(dir.path()).unwrap();
    assert_eq!(log.team_version(a).unwrap(), 3);
    assert_eq!(log.team_version(b).unwrap(), 2);
    assert_eq!(log.read_team(b, 1, 10).unwrap().len(), 2);
    log.append(req(a, 3, 1)).unwrap();
}

#[test]
fn waiters_wake_when_a_group_commits() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(SledLog::open(dir.path()).unwrap());
    let waiter = {
        let log = Arc::clone(&log);
        std::thread::spawn(move || log.wait_longer_than(0, Duration::from_secs(30)))
    };
    std::thread::sleep(Duration::from_millis(20));
    log.append(req(team(1), 0, 2)).unwrap();
    assert_eq!(waiter.join().unwrap(), 2);
    assert_eq!(log.wait_longer_than(2, Duration::from_millis(5)), 2);
    assert!(log.flush_count() >= 1);
    assert!(format!("{log:?}").contains("len: 2"));
}

#[test]
fn append_sealed_must_continue_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let mem = crate::MemLog::new();
    mem.append(req(team(1), 0, 3)).unwrap();
    let envs = mem.read(0, 10).unwrap();
    let log = SledLog::open(dir.path()).unwrap();
    assert!(log.append_sealed(envs[1..].to_vec()).is_err());
    assert!(log.is_empty());
    log.append_sealed(envs.clone()).unwrap();
    assert_eq!(log.read(0, 10).unwrap(), envs);
    assert_eq!(log.team_version(team(1)).unwrap(), 3);
}

/// Raw sled access to the store's files, without sled's background flusher (which would keep
/// the file lock for a moment after the handle is dropped).
fn raw(dir: &std::path::Path) -> sled::Db {
    open_db(dir).unwrap()
}

#[test]
fn a_store_in_use_is_refused_after_a_short_wait() {
    let dir = tempfile::tempdir().unwrap();
    let _first = SledLog::open(dir.path()).unwrap();
    let start = Instant::now();
    let err = SledLog::open(dir.path()).unwrap_err();
    assert!(matches!(err, LogError::Storage { .. }), "{err:?}");
    assert!(err.to_string().contains("another process"), "{err}");
    assert!(start.elapsed() >= LOCK_WAIT);
}

/// An intact index is trusted (open stays O(tail)); one more indexed team than there are
/// versions — a stray entry, or a malformed key — is caught by the per-team count and the
/// index is rebuilt from the whole log. The rebuild is observable: it walks (and verifies)
/// records before the tail, so a corrupt old record makes it fail where a trusting open does not.
#[test]
fn open_counts_indexed_teams_and_rebuilds_on_a_mismatch() {
    let dir = tempfile::tempdir().unwrap();
    let teams: Vec<TeamId> = (1..=5).map(team).collect();
    {
        let log = SledLog::open(dir.path()).unwrap();
        for t in &teams {
            log.append(req(*t, 0, 250)).unwrap();
        }
        assert!(log.len() > TAIL_CHECK + 1);
    }
    {
        let db = raw(dir.path());
        let mut bytes = db.get(keys::event(0)).unwrap().unwrap().to_vec();
        *bytes.last_mut().unwrap() ^= 1;
        db.insert(keys::event(0), bytes).unwrap();
        db.flush().unwrap();
    }
    {
        let log = SledLog::open(dir.path()).expect("an intact index is trusted, not rebuilt");
        assert_eq!(log.team_version(teams[4]).unwrap(), 250);
        assert!(log.verify().is_err());
    }
    for stray in [keys::team(team(99), 1).to_vec(), b"t-short".to_vec()] {
        let db = raw(dir.path());
        db.insert(&stray, &0u64.to_be_bytes()).unwrap();
        db.flush().unwrap();
        drop(db);
        assert!(
            matches!(
                SledLog::open(dir.path()),
                Err(LogError::Corrupt(ChainError::HashMismatch { seq: 0 }))
            ),
            "a stray index key {stray:?} did not force a rebuild"
        );
        let db = raw(dir.path());
        db.remove(&stray).unwrap();
        db.flush().unwrap();
    }
}

/// Runs `f` on another thread; the test looks at whether it finished.
fn spawn<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> std::thread::JoinHandle<T> {
    std::thread::spawn(f)
}

/// While a group is applied but not flushed (the committer held at the gate), no reader sees
/// it; the writer meanwhile stages the next requests against it — a conflict with the held
/// group is detected — and every answer waits for the flush that covers what came before.
#[test]
fn applied_groups_stay_invisible_until_flushed_while_the_next_is_staged() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(SledLog::open(dir.path()).unwrap());
    let (a, b) = (team(1), team(2));
    log.append(req(a, 0, 1)).unwrap();
    let mut sub = roster_core::subscription::Subscription::new(Arc::clone(&log), 0);
    assert_eq!(sub.next_timeout(Duration::ZERO).unwrap().unwrap().seq, 0);
    let flushes = log.flush_count();

    log.shared.gate.close();
    let held = spawn({
        let log = Arc::clone(&log);
        move || log.append(req(a, 1, 2))
    });
    log.shared.gate.await_committer();
    assert!(
        log.shared
            .with_db("read", |db| Ok(db.get(keys::event(2)).unwrap()))
            .unwrap()
            .is_some(),
        "the held group is applied to sled"
    );
    assert_eq!(log.len(), 1);
    assert_eq!(log.read(0, 10).unwrap().len(), 1);
    assert_eq!(log.read(1, 10).unwrap(), []);
    assert_eq!(log.team_version(a).unwrap(), 1);
    assert_eq!(log.read_team(a, 1, 10).unwrap().len(), 1);
    assert_eq!(log.wait_longer_than(1, Duration::from_millis(20)), 1);
    assert_eq!(log.verify().unwrap(), 1);
    assert!(sub
        .next_timeout(Duration::from_millis(20))
        .unwrap()
        .is_none());

    let conflicting = spawn({
        let log = Arc::clone(&log);
        move || log.append(req(a, 1, 1))
    });
    let other = spawn({
        let log = Arc::clone(&log);
        move || log.append(req(b, 0, 1))
    });
    std::thread::sleep(Duration::from_millis(50));
    assert!(!held.is_finished() && !conflicting.is_finished() && !other.is_finished());
    assert_eq!(log.flush_count(), flushes);

    log.shared.gate.open();
    let held = held.join().unwrap().unwrap();
    assert_eq!((held[0].seq, held[1].seq), (1, 2));
    assert!(matches!(
        conflicting.join().unwrap(),
        Err(LogError::Conflict {
            expected: 1,
            actual: 3,
            ..
        })
    ));
    assert_eq!(other.join().unwrap().unwrap()[0].seq, 3);
    assert_eq!(log.len(), 4);
    assert_eq!(log.team_version(a).unwrap(), 3);
    assert_eq!(sub.next_timeout(Duration::ZERO).unwrap().unwrap().seq, 1);
}

/// A request that is refused fails alone and costs nothing: the requests staged with it
/// commit, and a group of nothing but refusals is answered without a flush — even while the
/// committer is held, as long as nothing staged before it is waiting to become durable.
#[test]
fn refused_requests_neither_flush_nor_wait_nor_fail_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let log = SledLog::open(dir.path()).unwrap();
    let a = team(1);
    log.append(req(a, 0, 2)).unwrap();
    let flushes = log.flush_count();
    log.shared.gate.close();
    for _ in 0..20 {
        assert!(matches!(
            log.append(req(a, 0, 1)),
            Err(LogError::Conflict { actual: 2, .. })
        ));
        assert!(matches!(
            log.append_sealed(log.read(0, 1).unwrap()),
            Err(LogError::Corrupt(ChainError::Gap { .. }))
        ));
    }
    assert_eq!(log.flush_count(), flushes);
    log.shared.gate.open();
    assert_eq!(log.append(req(a, 2, 1)).unwrap()[0].seq, 2);
}

/// After a failed flush, its callers get the error and nothing of it is ever seen: not by
/// readers, not after the store reopened sled (sled's drop-time flush does write the failed
/// group, so reopening has to remove it), not after a restart. Later appends and checkpoints
/// go on, on top of what was acknowledged.
#[test]
fn a_failed_flush_leaves_no_trace_and_appends_resume() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (team(1), team(2));
    let acked = {
        let log = SledLog::open(dir.path()).unwrap();
        let mut acked = log.append(req(a, 0, 2)).unwrap();
        log.shared.gate.fail_next();
        let err = log.append(req(a, 2, 5)).unwrap_err();
        let fault = StoreFault::of(&err).unwrap_or_else(|| panic!("no fault in {err:?}"));
        assert!(!fault.is_disk_full(), "{fault}");
        assert!(err.to_string().contains("injected"), "{err}");
        assert!(
            err.to_string().contains("nothing of this was recorded"),
            "{err}"
        );
        assert_eq!(log.len(), 2);
        assert_eq!(log.team_version(a).unwrap(), 2);
        assert_eq!(log.read(0, 10).unwrap(), acked);
        let retry = log.append(req(a, 2, 1)).unwrap();
        assert_eq!((retry[0].seq, retry[0].version), (2, 3));
        assert_eq!(retry[0].prev_hash(), acked[1].hash());
        assert!(log.fault().is_none());
        acked.extend(retry);
        acked.extend(log.append(req(b, 0, 1)).unwrap());
        log.set_checkpoint("nats", 3).unwrap();
        assert_eq!(log.read(0, 10).unwrap(), acked);
        acked
    };
    let log = SledLog::open(dir.path()).unwrap();
    assert_eq!(log.read(0, 10).unwrap(), acked);
    assert_eq!(log.verify().unwrap(), 4);
    assert_eq!(log.checkpoint("nats").unwrap(), Some(3));
    let a_seqs: Vec<u64> = log
        .read_team(a, 1, 10)
        .unwrap()
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(a_seqs, [0, 1, 2]);
    log.append(req(b, 1, 1)).unwrap();
}

/// Groups staged on top of a failed one (the writer runs ahead of the flush) are refused
/// whole, and their events never appear either.
#[test]
fn groups_staged_on_a_failed_one_are_refused_and_leave_no_trace() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(SledLog::open(dir.path()).unwrap());
    let (a, b) = (team(1), team(2));
    log.append(req(a, 0, 1)).unwrap();
    log.shared.gate.close();
    log.shared.gate.fail_next();
    let first = {
        let log = Arc::clone(&log);
        spawn(move || log.append(req(a, 1, 2)))
    };
    log.shared.gate.await_committer();
    let second = {
        let log = Arc::clone(&log);
        spawn(move || log.append(req(b, 0, 3)))
    };
    // Usually the second is staged on top of the first while the first waits at the gate;
    // either way the assertions below hold.
    std::thread::sleep(Duration::from_millis(50));
    log.shared.gate.open();
    assert!(first.join().unwrap().is_err());
    let second = second.join().unwrap();
    // Staged on top of the failed group, or after it: never both written and lost.
    let expected_len = if second.is_ok() { 4 } else { 1 };
    assert_eq!(log.len(), expected_len);
    let last = log.append(req(a, 1, 1)).unwrap();
    assert_eq!(last[0].seq, expected_len);
    drop(log);
    let log = SledLog::open(dir.path()).unwrap();
    assert_eq!(log.len(), expected_len + 1);
    assert_eq!(log.verify().unwrap(), expected_len + 1);
    assert_eq!(log.team_version(a).unwrap(), 2);
}

/// The team-index entries of `dir`'s store, as (team, first version, first seq, count).
fn index_entries(dir: &std::path::Path) -> Vec<(TeamId, u64, u64, u64)> {
    raw(dir)
        .scan_prefix([keys::TEAM_PREFIX])
        .map(|item| {
            let (k, v) = item.unwrap();
            let (team, version) = keys::team_parts(&k).unwrap();
            let (seq, count) = keys::run_parts(&v).unwrap();
            (team, version, seq, count)
        })
        .collect()
}

/// One index entry per run (per append here), and `read_team` reads across runs from any
/// version with any limit.
#[test]
fn the_team_index_holds_one_entry_per_run() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (team(1), team(2));
    {
        let log = SledLog::open(dir.path()).unwrap();
        log.append(req(a, 0, 3)).unwrap();
        log.append(req(b, 0, 2)).unwrap();
        log.append(req(a, 3, 4)).unwrap();
        log.append(req(a, 7, 1)).unwrap();
        let seqs = |from, limit| -> Vec<u64> {
            let envs = log.read_team(a, from, limit).unwrap();
            envs.iter().map(|e| e.seq).collect()
        };
        assert_eq!(seqs(1, 100), [0, 1, 2, 5, 6, 7, 8, 9]);
        assert_eq!(seqs(2, 3), [1, 2, 5]);
        assert_eq!(seqs(5, 2), [6, 7]);
        assert_eq!(seqs(8, 1), [9]);
        assert_eq!(seqs(9, 1), [] as [u64; 0]);
        assert_eq!(seqs(0, 1), [0]);
    }
    let mut entries = index_entries(dir.path());
    entries.sort_by_key(|e| e.2);
    assert_eq!(
        entries,
        [(a, 1, 0, 3), (b, 1, 3, 2), (a, 4, 5, 4), (a, 8, 9, 1)]
    );
}

/// A run entry that is missing or points at the wrong records is never papered over: reads
/// of the versions it should cover fail and say why.
#[test]
fn a_damaged_run_is_reported_by_read_team() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (team(1), team(2));
    {
        let log = SledLog::open(dir.path()).unwrap();
        log.append(req(a, 0, 3)).unwrap();
        log.append(req(b, 0, 2)).unwrap();
        log.append(req(a, 3, 2)).unwrap();
    }
    {
        let db = raw(dir.path());
        // a's first run now claims b's positions; b's run is gone.
        db.insert(keys::team(a, 1), &keys::run_value(2, 3)).unwrap();
        db.remove(keys::team(b, 1)).unwrap();
        db.flush().unwrap();
    }
    // Open checks only where each stream ends (and that every team is indexed): b lost its
    // only entry, so the index is rebuilt from the log and both streams read again.
    let log = SledLog::open(dir.path()).unwrap();
    assert_eq!(log.read_team(a, 1, 10).unwrap().len(), 5);
    assert_eq!(log.read_team(b, 1, 10).unwrap().len(), 2);
    drop(log);
    {
        let db = raw(dir.path());
        db.insert(keys::team(a, 1), &keys::run_value(2, 3)).unwrap();
        db.flush().unwrap();
    }
    let log = SledLog::open(dir.path()).unwrap();
    let err = log.read_team(a, 1, 10).unwrap_err();
    assert!(err.to_string().contains("the team index says"), "{err}");
    assert_eq!(log.read_team(a, 4, 10).unwrap().len(), 2);
    drop(log);
    {
        let db = raw(dir.path());
        db.remove(keys::team(a, 1)).unwrap();
        db.flush().unwrap();
    }
    let log = SledLog::open(dir.path()).unwrap();
    let err = log.read_team(a, 2, 10).unwrap_err();
    assert!(err.to_string().contains("version 2 of"), "{err}");
    assert_eq!(log.read_team(a, 4, 10).unwrap().len(), 2);
}

/// A store written by format 1 — the same records, one team-index entry per event — opens:
/// its index is rebuilt as runs and format 2 is stamped, and the log goes on.
#[test]
fn a_format_1_store_is_migrated_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (team(1), team(2));
    let mem = crate::MemLog::new();
    mem.append(req(a, 0, 3)).unwrap();
    mem.append(req(b, 0, 2)).unwrap();
    mem.append(req(a, 3, 1)).unwrap();
    let envs = mem.read(0, 100).unwrap();
    {
        let db = raw(dir.path());
        db.insert(keys::FORMAT_KEY, &1u32.to_be_bytes()).unwrap();
        for env in &envs {
            db.insert(keys::event(env.seq), record::encode(env))
                .unwrap();
            db.insert(keys::team(env.team, env.version), &env.seq.to_be_bytes())
                .unwrap();
        }
        db.insert(keys::version(a), &4u64.to_be_bytes()).unwrap();
        db.insert(keys::version(b), &2u64.to_be_bytes()).unwrap();
        db.flush().unwrap();
    }
    {
        let log = SledLog::open(dir.path()).unwrap();
        assert_eq!(log.read(0, 100).unwrap(), envs);
        assert_eq!(log.team_version(a).unwrap(), 4);
        let a_seqs: Vec<u64> = log
            .read_team(a, 1, 10)
            .unwrap()
            .iter()
            .map(|e| e.seq)
            .collect();
        assert_eq!(a_seqs, [0, 1, 2, 5]);
        log.append(req(b, 2, 1)).unwrap();
    }
    let db = raw(dir.path());
    let format = db.get(keys::FORMAT_KEY).unwrap().unwrap();
    assert_eq!(format.as_ref(), keys::FORMAT_VERSION.to_be_bytes());
    drop(db);
    let mut entries = index_entries(dir.path());
    entries.sort_by_key(|e| e.2);
    assert_eq!(
        entries,
        [(a, 1, 0, 3), (b, 1, 3, 2), (a, 4, 5, 1), (b, 3, 6, 1)]
    );
}
