//! The child of `tests/pipeline.rs`: appends from several threads while two readers follow the
//! log, printing every envelope acknowledged or read, until it is killed with SIGKILL.
// A test helper: it panics on any failure, which the parent sees as a dead child.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use roster_core::actor::Actor;
use roster_core::envelope::Envelope;
use roster_core::event::Event;
use roster_core::id::{AgentId, CountingEntropy, TeamId};
use roster_core::port::{AppendRequest, EventLog, LogRead};
use roster_core::subscription::Subscription;
use roster_core::time::Timestamp;
use roster_store::SledLog;

const APPENDERS: u64 = 6;

/// Appenders and readers on the store named by the first argument, printing `ACK seq hash`
/// and `SEEN seq hash` lines until it is killed (by `tests/pipeline.rs`).
fn main() {
    let Some(store) = std::env::args_os().nth(1) else {
        eprintln!("usage: pipeline-child STORE_DIR");
        std::process::exit(2);
    };
    let log = Arc::new(SledLog::open(Path::new(&store)).unwrap());
    let at = Timestamp::from_millis(1);
    let pid = u64::from(std::process::id());
    let mut threads = Vec::new();
    for t in 0..APPENDERS {
        let log = Arc::clone(&log);
        threads.push(std::thread::spawn(move || {
            let mut entropy = CountingEntropy::new(pid * 1_000 + t);
            let team = TeamId::mint(at, &mut entropy);
            let agent = AgentId::mint(at, &mut entropy);
            let mut version = 0;
            for i in 0.. {
                let envs = log
                    .append(AppendRequest {
                        at: None,
                        team,
                        expected_version: version,
                        events: vec![Event::AgentRetired { agent }; 1 + i % 8],
                        actor: Actor::Runtime,
                        causation: None,
                    })
                    .unwrap();
                version = envs.last().unwrap().version;
                print("ACK", &envs);
            }
        }));
    }
    // A follower of the whole log.
    threads.push(std::thread::spawn({
        let log = Arc::clone(&log);
        move || {
            let mut sub = Subscription::new(log, 0);
            loop {
                if let Some(env) = sub.next_timeout(Duration::from_secs(1)).unwrap() {
                    print("SEEN", &[env]);
                }
            }
        }
    }));
    // A poller of every team's stream through its version.
    threads.push(std::thread::spawn({
        let log = Arc::clone(&log);
        move || {
            let mut read: BTreeMap<TeamId, u64> = BTreeMap::new();
            loop {
                let teams: Vec<TeamId> = log
                    .read(log.len().saturating_sub(64), 64)
                    .unwrap()
                    .iter()
                    .map(|e| e.team)
                    .collect();
                for team in teams {
                    let done = read.entry(team).or_default();
                    if log.team_version(team).unwrap() > *done {
                        let envs = log.read_team(team, *done + 1, usize::MAX).unwrap();
                        *done += envs.len() as u64;
                        print("SEEN", &envs);
                    }
                }
            }
        }
    }));
    for t in threads {
        t.join().unwrap();
    }
}

fn print(kind: &str, envs: &[Envelope]) {
    let mut out = std::io::stdout().lock();
    for env in envs {
        writeln!(out, "{kind} {} {}", env.seq, env.hash().to_hex()).unwrap();
    }
    out.flush().unwrap();
}
