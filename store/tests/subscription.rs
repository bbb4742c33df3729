//! [`Subscription`] over a real log: catch-up, then live, without skipping.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use roster_core::actor::Actor;
use roster_core::event::Event;
use roster_core::id::{AgentId, CountingEntropy, TeamId};
use roster_core::port::AppendRequest;
use roster_core::port::EventLog;
use roster_core::subscription::Subscription;
use roster_core::time::Timestamp;
use roster_store::MemLog;

fn append(log: &dyn EventLog, team: TeamId, n: usize) {
    let agent = AgentId::mint(Timestamp::from_millis(1), &mut CountingEntropy::new(5));
    log.append(AppendRequest {
        at: None,
        team,
        expected_version: log.team_version(team).unwrap(),
        events: vec![Event::AgentRetired { agent }; n],
        actor: Actor::Runtime,
        causation: None,
    })
    .unwrap();
}

#[test]
fn catches_up_then_follows_live_without_skipping() {
    let log = Arc::new(MemLog::new());
    let team = TeamId::mint(Timestamp::from_millis(1), &mut CountingEntropy::new(1));
    append(&*log, team, 600);
    let dynlog: Arc<dyn EventLog> = log.clone();
    let mut sub = Subscription::new(dynlog, 10);
    let writer = {
        let log = Arc::clone(&log);
        std::thread::spawn(move || {
            for _ in 0..50 {
                append(&*log, team, 3);
            }
        })
    };
    let mut seen = Vec::new();
    while seen.len() < 590 + 150 {
        let env = sub.next().unwrap().unwrap();
        seen.push(env.seq);
    }
    writer.join().unwrap();
    assert_eq!(seen, (10..750).collect::<Vec<_>>());
    assert_eq!(sub.position(), 750);
    assert!(sub
        .next_timeout(Duration::from_millis(20))
        .unwrap()
        .is_none());
}
