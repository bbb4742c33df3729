//! A log and its projection, grown through `decide` the way the daemon grows them, and small
//! constructors for the values tests name.

use roster_core::actor::Actor;
use roster_core::capability::{Action, Capability, Resource};
use roster_core::command::{decide, Command, Decision, Rejected};
use roster_core::envelope::{Body, Envelope, Hash};
use roster_core::event::{AgentSpec, Event, SCHEMA_VERSION};
use roster_core::id::{AgentId, CountingEntropy, Entropy, EventId, TeamId};
use roster_core::limits::DiskMib;
use roster_core::name::{Label, Name};
use roster_core::time::Timestamp;
use roster_core::world::World;

use super::spec::T0;

/// Parses a name or panics.
pub fn name(s: &str) -> Name {
    Name::parse(s).unwrap()
}

/// Parses a capability or panics with the parser's message.
pub fn cap(s: &str) -> Capability {
    Capability::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
}

/// Parses a concrete action.
pub fn action(s: &str) -> Action {
    Action::parse(s).unwrap()
}

/// Parses a concrete resource.
pub fn resource(s: &str) -> Resource {
    Resource::parse(s).unwrap()
}

/// The operator every test acts as.
pub fn operator() -> Actor {
    Actor::Operator(name("ops"))
}

/// A hire command with the base spec.
pub fn hire(team: TeamId, agent_name: &str, grants: Vec<Capability>) -> Command {
    Command::Hire {
        team,
        name: name(agent_name),
        role: Label::parse("worker").unwrap(),
        spec: AgentSpec::base(),
        disk: DiskMib::default(),
        grants,
    }
}

/// Seals the events of `decision` after the last envelope of the log, as the store would: the
/// next global positions, the team's next versions, time `at`, the previous hash.
///
/// Panics if the decision was not made on the team's current version (the store would refuse it
/// as a conflict, and a harness that decides on the current world must never see one).
pub fn seal_decision(
    world: &World,
    prev: Option<&Envelope>,
    decision: &Decision,
    actor: &Actor,
    at: Timestamp,
    entropy: &mut dyn Entropy,
) -> Vec<Envelope> {
    let base = world.team_version(decision.team);
    assert_eq!(
        decision.expected_version, base,
        "decision made on version {} but team {} is at {base}: {decision:?}",
        decision.expected_version, decision.team
    );
    assert!(!decision.events.is_empty(), "empty decision {decision:?}");
    let mut prev_hash = prev.map_or(Hash::ZERO, Envelope::hash);
    let mut out = Vec::with_capacity(decision.events.len());
    for (i, event) in decision.events.iter().enumerate() {
        let i = u64::try_from(i).unwrap();
        let body = Body {
            seq: world.next_seq() + i,
            id: EventId::mint(at, entropy),
            team: decision.team,
            version: base + 1 + i,
            at,
            actor: actor.clone(),
            causation: None,
            schema: SCHEMA_VERSION,
            event: event.clone(),
        };
        let env = Envelope::seal(body, prev_hash);
        prev_hash = env.hash();
        out.push(env);
    }
    out
}

/// A log and its projection, grown one decision at a time.
#[derive(Debug)]
pub struct Harness {
    /// The projection of `log`.
    pub world: World,
    /// Every committed envelope.
    pub log: Vec<Envelope>,
    /// `history[seq]`: the world right after the event at `seq`.
    pub history: Vec<World>,
    /// Ids for decisions and events.
    pub entropy: CountingEntropy,
    /// The time decisions are made and events committed at.
    pub now: Timestamp,
    /// Whether rejections' `AccessDenied` records are appended (the daemon does).
    pub record_audits: bool,
}

impl Default for Harness {
    fn default() -> Self {
        Self::new()
    }
}

impl Harness {
    /// An empty log at [`T0`], recording audits.
    pub fn new() -> Self {
        Self {
            world: World::new(),
            log: Vec::new(),
            history: Vec::new(),
            entropy: CountingEntropy::new(0),
            now: T0,
            record_audits: true,
        }
    }

    /// Decides `command` on the current world without committing anything.
    pub fn decide(&mut self, command: Command, actor: &Actor) -> Result<Decision, Rejected> {
        decide(&self.world, command, actor, self.now, &mut self.entropy)
    }

    /// Seals, checks the chain of, and folds a decision's events; returns them.
    pub fn commit(&mut self, decision: &Decision, actor: &Actor) -> Vec<Envelope> {
        let envs = seal_decision(
            &self.world,
            self.log.last(),
            decision,
            actor,
            self.now,
            &mut self.entropy,
        );
        for env in &envs {
            env.follows(self.log.last())
                .unwrap_or_else(|e| panic!("helper broke the chain: {e}"));
            // Checked as an import would: whatever `decide` produces must obey the log's rules.
            self.world
                .apply_checked(env)
                .unwrap_or_else(|e| panic!("decided events do not fold: {e}\n{:?}", env.event));
            self.log.push(env.clone());
            self.history.push(self.world.clone());
        }
        envs
    }

    /// Decides and, when accepted, commits; a rejection's audit record is committed too when
    /// `record_audits` is set.
    pub fn run(&mut self, command: Command, actor: &Actor) -> Result<Vec<Envelope>, Rejected> {
        match self.decide(command, actor) {
            Ok(d) => Ok(self.commit(&d, actor)),
            Err(r) => {
                if self.record_audits {
                    if let Some(audit) = &r.audit {
                        self.commit(audit, actor);
                    }
                }
                Err(r)
            }
        }
    }

    /// Runs a command that must be accepted.
    pub fn ok(&mut self, command: Command, actor: &Actor) -> Vec<Envelope> {
        let shown = format!("{command:?}");
        self.run(command, actor)
            .unwrap_or_else(|r| panic!("{shown} by {actor} was refused: {r}"))
    }

    /// Creates a team as the operator.
    pub fn team(&mut self, team_name: &str) -> TeamId {
        let envs = self.ok(
            Command::CreateTeam {
                name: name(team_name),
            },
            &operator(),
        );
        envs[0].team
    }

    /// Hires an agent (as `actor`) and returns its id.
    pub fn hire_as(
        &mut self,
        actor: &Actor,
        team: TeamId,
        agent_name: &str,
        grants: &[&str],
    ) -> AgentId {
        let grants = grants.iter().map(|g| cap(g)).collect();
        let envs = self.ok(hire(team, agent_name, grants), actor);
        hired_agent(&envs).unwrap()
    }
}

/// The agent an `AgentHired` among `envs` hired.
pub fn hired_agent(envs: &[Envelope]) -> Option<AgentId> {
    envs.iter().find_map(|e| match &e.event {
        Event::AgentHired { agent, .. } => Some(*agent),
        _ => None,
    })
}
