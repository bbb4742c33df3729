//! The supervisor's policy, as data: what should be done about each agent is a pure function of
//! the log's world, what the supervisor has observed of the engine ([`Watch`]) and of each
//! agent's container ([`Run`]), and the time. The async shell (`supervisor.rs`) makes the
//! observations and carries the [`Action`]s out, one agent's in order.

use std::time::Duration;

use tokio::time::Instant;

use roster_core::event::StopReason;
use roster_core::id::AgentId;
use roster_core::world::World;

/// What the supervisor knows of the engine as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Watch {
    /// Its events are followed: each [`Run`] is current.
    Followed,
    /// It went away (it refused a request, or its event stream ended) and no reconcile since
    /// has been whole: the runs may be stale, and a start would fail or race its shutdown.
    Lost,
}

/// What the supervisor knows of one agent's container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Run {
    /// No container of ours runs. After a crash, `retry` is the earliest a restart may begin.
    Down {
        /// Not before this instant may it be started again.
        retry: Option<Instant>,
    },
    /// A start is under way (or queued): nothing else is started for it meanwhile.
    Starting,
    /// What the engine did is not known (an engine call failed, maybe after it acted): its
    /// owner looks again (`Action::Adopt`), not before `retry`.
    Unknown {
        /// Not before this instant is it looked at again.
        retry: Instant,
    },
    /// Its container runs.
    Up {
        /// The engine's id of the container.
        container: String,
        /// When this run began (for its timeout, and for how long it lasted before a crash).
        since: Instant,
        /// Set once roster stops it itself, with why: its death is then not a crash, and it is
        /// not stopped twice.
        stopping: Option<StopReason>,
    },
}

impl Run {
    /// True while a container of ours runs.
    pub fn is_up(&self) -> bool {
        matches!(self, Run::Up { .. })
    }

    /// The running container, if one runs.
    pub fn container(&self) -> Option<&str> {
        match self {
            Run::Up { container, .. } => Some(container),
            Run::Down { .. } | Run::Starting | Run::Unknown { .. } => None,
        }
    }
}

impl Default for Run {
    fn default() -> Self {
        Run::Down { retry: None }
    }
}

/// One thing the supervisor should do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Start the agent's container: the log wants it running and none runs or is starting.
    Start(AgentId),
    /// Stop the agent's container: this run has lasted the agent's timeout.
    TimeOut(AgentId),
    /// Stop the agent's container without recording anything: the log already says it stopped
    /// (a stop recorded before a daemon was killed, or whose signal failed), so this only
    /// carries out what was decided.
    Halt(AgentId),
    /// The agent is retired: close its gateway, remove its container and gateway directory.
    Remove(AgentId),
    /// Look at the agent's container again, from the log and the engine (`Run::Unknown`).
    Adopt(AgentId),
}

/// What to do, for every agent the world knows, given what is known of the engine (`watch`)
/// and what `run_of` says of each agent's container (`None`: the supervisor holds nothing for
/// it) at `now`. Nothing while the engine is lost: its reconcile decides first. Agents come in
/// id order, so the same inputs give the same actions in the same order.
pub fn converge<'r>(
    world: &World,
    watch: Watch,
    run_of: impl Fn(AgentId) -> Option<&'r Run>,
    now: Instant,
) -> Vec<Action> {
    let mut actions = Vec::new();
    if watch == Watch::Lost {
        return actions;
    }
    for agent in world.agents() {
        let run = run_of(agent.id);
        if agent.is_retired() {
            if run.is_some() {
                actions.push(Action::Remove(agent.id));
            }
            continue;
        }
        match run {
            Some(Run::Unknown { retry }) if *retry <= now => {
                actions.push(Action::Adopt(agent.id));
            }
            None | Some(Run::Down { retry: None }) if agent.wants_running() => {
                actions.push(Action::Start(agent.id));
            }
            Some(Run::Down { retry: Some(at) }) if agent.wants_running() && *at <= now => {
                actions.push(Action::Start(agent.id));
            }
            Some(Run::Up { stopping: None, .. }) if !agent.wants_running() => {
                actions.push(Action::Halt(agent.id));
            }
            Some(Run::Up {
                since,
                stopping: None,
                ..
            }) => {
                let limit = agent.spec.resources.timeout_secs.map(u64::from);
                if limit.is_some_and(|secs| now.duration_since(*since) >= Duration::from_secs(secs))
                {
                    actions.push(Action::TimeOut(agent.id));
                }
            }
            _ => {}
        }
    }
    actions
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use std::collections::HashMap;
    use std::sync::Arc;

    use roster_core::actor::Actor;
    use roster_core::command::{Command, Lifecycle};
    use roster_core::event::{AgentSpec, Event};
    use roster_core::id::CountingEntropy;
    use roster_core::ledger::Ledger;
    use roster_core::name::{Label, Name};
    use roster_core::time::Timestamp;
    use roster_store::MemLog;

    use super::*;

    /// A world built through the ledger; agents by name.
    struct Team {
        ledger: Ledger<MemLog>,
        team: roster_core::id::TeamId,
        entropy: CountingEntropy,
        at: i64,
    }

    impl Team {
        fn new() -> Team {
            let mut t = Team {
                ledger: Ledger::open(Arc::new(MemLog::new())).unwrap(),
                team: roster_core::id::TeamId::from_uuid(Default::default()),
                entropy: CountingEntropy::new(3),
                at: 0,
            };
            let created = t.run(
                Command::CreateTeam {
                    name: Name::parse("lab").unwrap(),
                },
                &Actor::Operator(Name::parse("op").unwrap()),
            );
            t.team = created[0].team;
            t
        }

        fn run(&mut self, c: Command, actor: &Actor) -> Vec<roster_core::envelope::Envelope> {
            self.at += 1;
            let now = Timestamp::from_millis(1_800_000_000_000 + self.at);
            self.ledger
                .execute(c, actor, now, &mut self.entropy)
                .unwrap()
        }

        fn hire(&mut self, name: &str, timeout_secs: Option<u32>) -> AgentId {
            let mut spec = AgentSpec::base();
            spec.resources.timeout_secs = timeout_secs;
            let hired = self.run(
                Command::Hire {
                    team: self.team,
                    name: Name::parse(name).unwrap(),
                    role: Label::default(),
                    spec,
                    disk: roster_core::limits::DiskMib::default(),
                    grants: vec![],
                },
                &Actor::Operator(Name::parse("op").unwrap()),
            );
            hired
                .iter()
                .find_map(|e| match e.event {
                    Event::AgentHired { agent, .. } => Some(agent),
                    _ => None,
                })
                .unwrap()
        }

        fn lifecycle(&mut self, agent: AgentId, change: Lifecycle) {
            self.run(Command::Lifecycle { agent, change }, &Actor::Runtime);
        }

        fn retire(&mut self, agent: AgentId) {
            self.run(
                Command::Retire { agent },
                &Actor::Operator(Name::parse("op").unwrap()),
            );
        }

        fn world(&self) -> &World {
            self.ledger.world()
        }
    }

    #[test]
    fn an_unknown_container_is_looked_at_again_when_its_time_comes() {
        let mut t = Team::new();
        let a = t.hire("a", None);
        let now = Instant::now();
        let mut runs = HashMap::new();
        runs.insert(
            a,
            Run::Unknown {
                retry: now + Duration::from_secs(1),
            },
        );
        assert_eq!(actions(t.world(), &runs, now), []);
        let later = now + Duration::from_secs(1);
        assert_eq!(actions(t.world(), &runs, later), [Action::Adopt(a)]);
    }

    #[test]
    fn a_running_container_the_log_says_stopped_is_halted_once() {
        let mut t = Team::new();
        let a = t.hire("a", None);
        t.lifecycle(a, Lifecycle::Started("c1".into()));
        t.lifecycle(a, Lifecycle::Stopped(StopReason::Requested));
        let now = Instant::now();
        let mut runs = HashMap::new();
        runs.insert(a, up(now, None));
        assert_eq!(actions(t.world(), &runs, now), [Action::Halt(a)]);
        // Once roster is stopping it, nothing more is asked.
        runs.insert(a, up(now, Some(StopReason::Requested)));
        assert_eq!(actions(t.world(), &runs, now), []);
    }

    fn up(since: Instant, stopping: Option<StopReason>) -> Run {
        Run::Up {
            container: "c1".into(),
            since,
            stopping,
        }
    }

    fn actions(world: &World, runs: &HashMap<AgentId, Run>, now: Instant) -> Vec<Action> {
        converge(world, Watch::Followed, |id| runs.get(&id), now)
    }

    #[test]
    fn nothing_is_decided_while_the_engine_is_lost() {
        let mut t = Team::new();
        let a = t.hire("a", Some(1));
        let b = t.hire("b", None);
        let since = Instant::now();
        let runs = HashMap::from([(a, up(since, None))]);
        let later = since + Duration::from_secs(5);
        let followed = converge(t.world(), Watch::Followed, |id| runs.get(&id), later);
        assert_eq!(followed, [Action::TimeOut(a), Action::Start(b)]);
        let lost = converge(t.world(), Watch::Lost, |id| runs.get(&id), later);
        assert_eq!(lost, []);
    }

    #[test]
    fn a_hired_agent_with_nothing_running_is_started_once() {
        let mut t = Team::new();
        let a = t.hire("a", None);
        let now = Instant::now();
        let mut runs = HashMap::new();
        assert_eq!(actions(t.world(), &runs, now), [Action::Start(a)]);
        runs.insert(a, Run::Down { retry: None });
        assert_eq!(actions(t.world(), &runs, now), [Action::Start(a)]);
        // Once the shell marks it starting, or it runs, nothing more is asked.
        runs.insert(a, Run::Starting);
        assert_eq!(actions(t.world(), &runs, now), []);
        runs.insert(a, up(now, None));
        assert_eq!(actions(t.world(), &runs, now), []);
    }

    #[test]
    fn a_crashed_agent_waits_for_its_backoff() {
        let mut t = Team::new();
        let a = t.hire("a", None);
        t.lifecycle(a, Lifecycle::Started("c1".into()));
        t.lifecycle(a, Lifecycle::Stopped(StopReason::Crashed { code: 1 }));
        let now = Instant::now();
        let later = now + Duration::from_secs(2);
        let runs = HashMap::from([(a, Run::Down { retry: Some(later) })]);
        assert_eq!(actions(t.world(), &runs, now), []);
        assert_eq!(actions(t.world(), &runs, later), [Action::Start(a)]);
    }

    #[test]
    fn an_agent_stopped_on_purpose_stays_stopped() {
        let mut t = Team::new();
        let requested = t.hire("requested", None);
        let timed_out = t.hire("timed-out", Some(5));
        for (a, why) in [
            (requested, StopReason::Requested),
            (timed_out, StopReason::TimedOut),
        ] {
            t.lifecycle(a, Lifecycle::Started("c".into()));
            t.lifecycle(a, Lifecycle::Stopped(why));
        }
        let runs = HashMap::new();
        assert_eq!(actions(t.world(), &runs, Instant::now()), []);
    }

    #[test]
    fn a_retired_agent_is_removed_only_while_something_is_held_for_it() {
        let mut t = Team::new();
        let a = t.hire("a", None);
        t.retire(a);
        let now = Instant::now();
        let runs = HashMap::from([(a, up(now, None))]);
        assert_eq!(actions(t.world(), &runs, now), [Action::Remove(a)]);
        assert_eq!(actions(t.world(), &HashMap::new(), now), []);
    }

    #[test]
    fn a_run_past_its_timeout_is_stopped_once() {
        let mut t = Team::new();
        let a = t.hire("a", Some(3));
        let forever = t.hire("forever", None);
        t.lifecycle(a, Lifecycle::Started("c1".into()));
        t.lifecycle(forever, Lifecycle::Started("c1".into()));
        let since = Instant::now();
        let mut runs = HashMap::from([(a, up(since, None)), (forever, up(since, None))]);
        let almost = since + Duration::from_millis(2_999);
        let over = since + Duration::from_secs(3);
        assert_eq!(actions(t.world(), &runs, almost), []);
        assert_eq!(actions(t.world(), &runs, over), [Action::TimeOut(a)]);
        // Once a stop is under way, the timeout is not asked for again.
        runs.insert(a, up(since, Some(StopReason::TimedOut)));
        assert_eq!(actions(t.world(), &runs, over), []);
    }

    #[test]
    fn the_same_inputs_give_the_same_actions_in_id_order() {
        let mut t = Team::new();
        let ids: Vec<AgentId> = (0..5).map(|i| t.hire(&format!("a{i}"), None)).collect();
        let now = Instant::now();
        let first = actions(t.world(), &HashMap::new(), now);
        assert_eq!(
            first,
            ids.iter().map(|a| Action::Start(*a)).collect::<Vec<_>>()
        );
        assert_eq!(actions(t.world(), &HashMap::new(), now), first);
    }
}
