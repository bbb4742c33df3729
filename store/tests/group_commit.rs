//! Many threads appending at once: every append is acknowledged, positions and team versions
//! are gapless, the chain verifies, and the writer flushed fewer times than it was asked to
//! append (group commit).
// Helpers of a test crate panic on failure like the tests themselves.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use roster_core::actor::Actor;
use roster_core::event::Event;
use roster_core::id::{AgentId, CountingEntropy, TeamId};
use roster_core::port::{AppendRequest, EventLog, LogError, LogRead};
use roster_core::time::Timestamp;
use roster_store::SledLog;

const THREADS: usize = 8;
const APPENDS: usize = 60;

#[test]
fn concurrent_appends_are_group_committed() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(SledLog::open(dir.path()).unwrap());
    let at = Timestamp::from_millis(1);
    let teams: Vec<TeamId> = (0..4)
        .map(|i| TeamId::mint(at, &mut CountingEntropy::new(i)))
        .collect();
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let log = Arc::clone(&log);
            // Two threads per team, so some appends race for the same version.
            let team = teams[t % teams.len()];
            std::thread::spawn(move || {
                let agent = AgentId::mint(at, &mut CountingEntropy::new(100 + t as u64));
                let (mut acked, mut conflicts) = (Vec::new(), 0);
                for i in 0..APPENDS {
                    loop {
                        let expected = log.team_version(team).unwrap();
                        match log.append(AppendRequest {
                            at: None,
                            team,
                            expected_version: expected,
                            events: vec![Event::AgentRetired { agent }; 1 + i % 3],
                            actor: Actor::Agent(agent),
                            causation: None,
                        }) {
                            Ok(envs) => {
                                acked.extend(envs);
                                break;
                            }
                            Err(LogError::Conflict { .. }) => conflicts += 1,
                            Err(e) => panic!("append failed: {e}"),
                        }
                    }
                }
                (acked, conflicts)
            })
        })
        .collect();
    let mut acked = Vec::new();
    for h in handles {
        let (envs, _conflicts) = h.join().unwrap();
        acked.extend(envs);
    }
    let per_thread: usize = (0..APPENDS).map(|i| 1 + i % 3).sum();
    assert_eq!(acked.len(), THREADS * per_thread);
    let appends = (THREADS * APPENDS) as u64;
    let flushes = log.flush_count();
    assert!(
        flushes < appends,
        "{flushes} flushes for {appends} appends: no group commit"
    );

    // Positions gapless, and every acknowledged envelope is what the log holds.
    acked.sort_by_key(|e| e.seq);
    let all = log.read(0, usize::MAX).unwrap();
    assert_eq!(all, acked);
    assert!(all.iter().enumerate().all(|(i, e)| e.seq == i as u64));
    assert_eq!(log.verify().unwrap(), all.len() as u64);
    for team in &teams {
        let versions: Vec<u64> = log
            .read_team(*team, 1, usize::MAX)
            .unwrap()
            .iter()
            .map(|e| e.version)
            .collect();
        assert_eq!(versions, (1..=versions.len() as u64).collect::<Vec<_>>());
        assert_eq!(log.team_version(*team).unwrap(), versions.len() as u64);
    }
    drop(log);
    assert_eq!(
        SledLog::open(dir.path()).unwrap().verify().unwrap(),
        all.len() as u64
    );
}
