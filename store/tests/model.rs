//! Model-based test: random appends (current or stale expected version), reads, team reads,
//! subscriptions and reopens against a `Vec<Envelope>` model — for `SledLog` (with reopen) and
//! `MemLog` (without).
// Helpers of a test crate panic on failure like the tests themselves.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use roster_core::actor::Actor;
use roster_core::envelope::{Envelope, Hash};
use roster_core::event::{Event, SCHEMA_VERSION};
use roster_core::id::{AgentId, CountingEntropy, TeamId};
use roster_core::name::Name;
use roster_core::port::{AppendRequest, EventLog, LogError};
use roster_core::subscription::Subscription;
use roster_core::time::Timestamp;
use roster_store::{MemLog, SledLog};

#[derive(Debug, Clone)]
enum Op {
    Append {
        team: usize,
        events: usize,
        stale: bool,
        operator: bool,
    },
    Read {
        from: u64,
        limit: usize,
    },
    ReadTeam {
        team: usize,
        from: u64,
        limit: usize,
    },
    Subscribe {
        from: u64,
    },
    Reopen,
}

fn op(reopen: bool) -> impl Strategy<Value = Op> {
    let reopen_weight = if reopen { 1 } else { 0 };
    prop_oneof![
        6 => (0..3usize, 1..5usize, prop::bool::weighted(0.2), any::<bool>()).prop_map(
            |(team, events, stale, operator)| Op::Append { team, events, stale, operator }
        ),
        2 => (0..50u64, 0..12usize).prop_map(|(from, limit)| Op::Read { from, limit }),
        2 => (0..3usize, 0..20u64, 0..8usize)
            .prop_map(|(team, from, limit)| Op::ReadTeam { team, from, limit }),
        1 => (0..50u64).prop_map(|from| Op::Subscribe { from }),
        reopen_weight => Just(Op::Reopen),
    ]
}

/// The log under test, which may be reopened.
trait Subject {
    fn log(&self) -> Arc<dyn EventLog>;
    fn reopen(&mut self);
}

struct Sled {
    _dir: tempfile::TempDir,
    path: PathBuf,
    log: Option<Arc<SledLog>>,
}

impl Subject for Sled {
    fn log(&self) -> Arc<dyn EventLog> {
        self.log.clone().unwrap()
    }
    fn reopen(&mut self) {
        let log = self.log.take().unwrap();
        assert_eq!(Arc::strong_count(&log), 1);
        drop(log);
        self.log = Some(Arc::new(SledLog::open(&self.path).unwrap()));
    }
}

struct Mem(Arc<MemLog>);

impl Subject for Mem {
    fn log(&self) -> Arc<dyn EventLog> {
        self.0.clone()
    }
    fn reopen(&mut self) {}
}

fn teams() -> [TeamId; 3] {
    let mut e = CountingEntropy::new(77);
    let at = Timestamp::from_millis(1_700_000_000_000);
    [
        TeamId::mint(at, &mut e),
        TeamId::mint(at, &mut e),
        TeamId::mint(at, &mut e),
    ]
}

fn version(model: &[Envelope], team: TeamId) -> u64 {
    model.iter().filter(|e| e.team == team).count() as u64
}

fn check(subject: &mut dyn Subject, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let teams = teams();
    let mut model: Vec<Envelope> = Vec::new();
    let mut ids = CountingEntropy::new(1);
    for op in ops {
        let log = subject.log();
        match op {
            Op::Append {
                team,
                events,
                stale,
                operator,
            } => {
                let team = teams[team];
                let current = version(&model, team);
                let expected = if stale { current + 1 } else { current };
                let at = Timestamp::from_millis(1);
                let evs: Vec<Event> = (0..events)
                    .map(|i| {
                        if i % 2 == 0 {
                            Event::AgentRetired {
                                agent: AgentId::mint(at, &mut ids),
                            }
                        } else {
                            Event::TeamCreated {
                                name: Name::parse(&format!("t{}", model.len() + i)).unwrap(),
                            }
                        }
                    })
                    .collect();
                let actor = if operator {
                    Actor::Operator(Name::parse("alice").unwrap())
                } else {
                    Actor::Runtime
                };
                let causation = model.last().map(|e| e.id);
                let result = log.append(AppendRequest {
                    at: None,
                    team,
                    expected_version: expected,
                    events: evs.clone(),
                    actor: actor.clone(),
                    causation,
                });
                if stale {
                    match result {
                        Err(LogError::Conflict {
                            team: t,
                            expected: e,
                            actual,
                        }) => {
                            prop_assert_eq!((t, e, actual), (team, expected, current));
                        }
                        other => prop_assert!(false, "expected a conflict, got {:?}", other),
                    }
                    prop_assert_eq!(log.len(), model.len() as u64);
                } else {
                    let envs = result.unwrap();
                    prop_assert_eq!(envs.len(), evs.len());
                    for (i, (env, ev)) in envs.iter().zip(evs).enumerate() {
                        let prev = model.last().map_or(Hash::ZERO, |p| p.hash());
                        prop_assert_eq!(env.seq, model.len() as u64);
                        prop_assert_eq!(env.prev_hash(), prev);
                        prop_assert_eq!(env.team, team);
                        prop_assert_eq!(env.version, current + 1 + i as u64);
                        prop_assert_eq!(&env.event, &ev);
                        prop_assert_eq!(&env.actor, &actor);
                        prop_assert_eq!(env.causation, causation);
                        prop_assert_eq!(env.schema, SCHEMA_VERSION);
                        if let Some(p) = model.last() {
                            prop_assert!(env.at >= p.at);
                            prop_assert_ne!(env.id, p.id);
                        }
                        model.push(env.clone());
                    }
                }
            }
            Op::Read { from, limit } => {
                let got = log.read(from, limit).unwrap();
                let lo = (from as usize).min(model.len());
                let hi = lo.saturating_add(limit).min(model.len());
                prop_assert_eq!(got, model[lo..hi].to_vec());
            }
            Op::ReadTeam { team, from, limit } => {
                let team = teams[team];
                let got = log.read_team(team, from, limit).unwrap();
                let want: Vec<Envelope> = model
                    .iter()
                    .filter(|e| e.team == team && e.version >= from)
                    .take(limit)
                    .cloned()
                    .collect();
                prop_assert_eq!(got, want);
            }
            Op::Subscribe { from } => {
                let mut sub = Subscription::new(log.clone(), from);
                let mut got = Vec::new();
                while let Some(env) = sub.next_timeout(Duration::from_millis(5)).unwrap() {
                    got.push(env);
                }
                let lo = (from as usize).min(model.len());
                prop_assert_eq!(got, model[lo..].to_vec());
            }
            Op::Reopen => {
                drop(log);
                subject.reopen();
                let log = subject.log();
                prop_assert_eq!(log.len(), model.len() as u64);
                prop_assert_eq!(log.verify().unwrap(), model.len() as u64);
                for t in teams {
                    prop_assert_eq!(log.team_version(t).unwrap(), version(&model, t));
                }
            }
        }
    }
    let log = subject.log();
    prop_assert_eq!(log.verify().unwrap(), model.len() as u64);
    prop_assert_eq!(log.read(0, usize::MAX).unwrap(), model);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn sled_log_matches_the_model(ops in prop::collection::vec(op(true), 1..40)) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let log = Some(Arc::new(SledLog::open(&path).unwrap()));
        check(&mut Sled { _dir: dir, path, log }, ops)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn mem_log_matches_the_model(ops in prop::collection::vec(op(false), 1..60)) {
        check(&mut Mem(Arc::new(MemLog::new())), ops)?;
    }
}
