//! Test fixtures: a small world built the real way (through the ledger, into a real in-memory
//! log), and a [`Backend`] over it that answers the read-only calls as the daemon will.

use std::sync::{Arc, Mutex, PoisonError};

use super::{answer, Backend, Reply};
use roster_core::actor::Actor;
use roster_core::capability::{Action, Amount, Capability, Resource};
use roster_core::command::Command;
use roster_core::envelope::Envelope;
use roster_core::event::{AgentSpec, Event};
use roster_core::gateway::{Call, ErrorCode, GatewayError};
use roster_core::id::{AgentId, TeamId};
use roster_core::ledger::{ExecuteError, Ledger};
use roster_core::name::{Label, Name};
use roster_core::world::World;
use roster_store::{now, MemLog, OsEntropy};

/// Two teams: `research` (lead, scout hired by lead, temp retired) and `ops` (other).
///
/// The lead holds `agent.hire@team:research`, `email.send@mailbox:*,budget=10` (3 spent) and a
/// revoked `email.read@mailbox:*`; the scout holds `email.send@mailbox:team,budget=5`, derived.
#[derive(Debug)]
pub(crate) struct Team {
    ledger: Ledger<MemLog>,
    pub lead: AgentId,
    pub scout: AgentId,
    pub retired: AgentId,
    pub other: AgentId,
}

pub(crate) fn operator() -> Actor {
    Actor::Operator(name("op"))
}

fn name(s: &str) -> Name {
    Name::parse(s).unwrap()
}

fn caps(list: &[&str]) -> Vec<Capability> {
    list.iter().map(|c| Capability::parse(c).unwrap()).collect()
}

impl Team {
    pub fn new() -> Team {
        let mut t = Team {
            ledger: Ledger::open(Arc::new(MemLog::new())).unwrap(),
            lead: AgentId::from_uuid(Default::default()),
            scout: AgentId::from_uuid(Default::default()),
            retired: AgentId::from_uuid(Default::default()),
            other: AgentId::from_uuid(Default::default()),
        };
        let research = t.create_team("research");
        let ops = t.create_team("ops");
        t.lead = t.hire(
            research,
            "lead",
            &operator(),
            &[
                "agent.hire@team:research",
                "email.send@mailbox:*,budget=10",
                "email.read@mailbox:*",
            ],
        );
        t.scout = t.hire(
            research,
            "scout",
            &Actor::Agent(t.lead),
            &["email.send@mailbox:team,budget=5"],
        );
        t.retired = t.hire(research, "temp", &operator(), &[]);
        t.exec(Command::Retire { agent: t.retired }, &operator());
        t.other = t.hire(ops, "other", &operator(), &["email.send@mailbox:*"]);
        t.exec(
            Command::Act {
                action: Action::parse("email.send").unwrap(),
                resource: Resource::parse("mailbox:alice").unwrap(),
                amount: Amount::new(3).unwrap(),
                args: Default::default(),
                approval: None,
                key: None,
            },
            &Actor::Agent(t.lead),
        );
        let read = t
            .world()
            .grants_of(t.lead)
            .find(|g| g.capability.to_string() == "email.read@mailbox:*")
            .map(|g| g.id)
            .unwrap();
        t.exec(Command::Revoke { grant: read }, &operator());
        t
    }

    pub fn world(&self) -> &World {
        self.ledger.world()
    }

    /// The log the team was recorded in.
    pub fn log(&self) -> &MemLog {
        self.ledger.log()
    }

    /// An agent id the world has never seen.
    pub fn stranger(&self) -> AgentId {
        AgentId::mint(now(), &mut OsEntropy::new())
    }

    /// Records one refused act of the lead (an `AccessDenied` in research's stream).
    pub fn act_as_lead(&mut self, on_sky: bool) {
        let resource = if on_sky { "sky:north" } else { "sea:south" };
        self.exec(
            Command::Act {
                action: Action::parse("fly.plane").unwrap(),
                resource: Resource::parse(resource).unwrap(),
                amount: Amount::new(1).unwrap(),
                args: Default::default(),
                approval: None,
                key: None,
            },
            &Actor::Agent(self.lead),
        );
    }

    fn create_team(&mut self, n: &str) -> TeamId {
        let e = self.exec(Command::CreateTeam { name: name(n) }, &operator());
        e[0].team
    }

    fn hire(&mut self, team: TeamId, n: &str, by: &Actor, grants: &[&str]) -> AgentId {
        let role = if n == "scout" { "finds things" } else { "" };
        let cmd = Command::Hire {
            team,
            name: name(n),
            role: Label::parse(role).unwrap(),
            spec: AgentSpec::base(),
            disk: roster_core::limits::DiskMib::default(),
            grants: caps(grants),
        };
        self.exec(cmd, by)
            .iter()
            .find_map(|e| match &e.event {
                Event::AgentHired { agent, .. } => Some(*agent),
                _ => None,
            })
            .unwrap()
    }

    /// Decides and commits through the ledger, as the daemon does: a refusal of an agent
    /// commits its audit record (and gives no envelopes back here).
    pub fn exec(&mut self, cmd: Command, actor: &Actor) -> Vec<Envelope> {
        match self
            .ledger
            .execute(cmd, actor, now(), &mut OsEntropy::new())
        {
            Ok(envelopes) => envelopes,
            Err(ExecuteError::Refused(_)) => Vec::new(),
            Err(e) => panic!("{e}"),
        }
    }
}

/// The team behind a lock, answering as the daemon's backend will: read-only calls from the
/// world and the log, the rest refused until the runtime issue implements them.
#[derive(Debug)]
pub(crate) struct TeamBackend(pub Mutex<Team>);

impl Backend for TeamBackend {
    /// As the daemon's: reads of the world on the connection's task when the lock is free.
    fn call_now(&self, agent: AgentId, call: &Call) -> Option<Reply> {
        let team = self.0.try_lock().ok()?;
        answer::from_world(team.world(), agent, call, now())
    }

    fn call(&self, agent: AgentId, call: Call) -> Reply {
        let team = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        answer::read_only(team.log(), team.world(), agent, &call, now()).unwrap_or_else(|| {
            Err(GatewayError::new(
                ErrorCode::Internal,
                "not answered by this test backend",
            ))
        })
    }
}
