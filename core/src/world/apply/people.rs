//! Teams and agents: a team created, an agent hired (and its home disk quota), started,
//! stopped, retired.

use crate::event::{AgentSpec, StopReason};
use crate::id::{AgentId, TeamId};
use crate::name::{Label, Name};
use crate::time::Timestamp;
use crate::world::{Agent, AgentStatus, Team, World};

use super::{FoldError, Refuse};

impl World {
    /// A new team, under a name no other team has.
    pub(super) fn team_created(
        &mut self,
        r: &Refuse,
        team: TeamId,
        name: &Name,
        at: Timestamp,
    ) -> Result<(), FoldError> {
        if self.teams.contains_key(&team) {
            return Err(r.duplicate("team", team));
        }
        if self.team_names.contains_key(name) {
            return Err(r.duplicate("team name", name));
        }
        self.teams.insert(
            team,
            Team {
                id: team,
                name: name.clone(),
                version: 0,
                created_at: at,
            },
        );
        self.team_names.insert(name.clone(), team);
        Ok(())
    }

    /// A new agent: a fresh id, a name no agent in service in its team has, a hirer that exists.
    #[allow(clippy::too_many_arguments)] // one per field of the event
    pub(super) fn agent_hired(
        &mut self,
        r: &Refuse,
        team: TeamId,
        agent: AgentId,
        name: &Name,
        role: &Label,
        parent: Option<AgentId>,
        spec: &AgentSpec,
        at: Timestamp,
    ) -> Result<(), FoldError> {
        if self.agents.contains_key(&agent) {
            return Err(r.duplicate("agent", agent));
        }
        if self
            .agent_named(team, name)
            .is_some_and(|a| !a.is_retired())
        {
            return Err(r.duplicate("agent name", name));
        }
        if let Some(p) = parent {
            if !self.agents.contains_key(&p) {
                return Err(r.unknown("agent", p));
            }
        }
        self.agents.insert(
            agent,
            Agent {
                id: agent,
                team,
                name: name.clone(),
                role: role.clone(),
                parent,
                spec: spec.clone(),
                hired_at: at,
                status: AgentStatus::Hired,
                disk_mib: None,
            },
        );
        Ok(())
    }

    /// Its home disk quota, recorded once. A value outside [`DiskMib`](crate::limits::DiskMib)'s
    /// bounds is kept as recorded ([`Agent::disk`] brings it within them); `decide` never
    /// writes one and `apply_checked` refuses it.
    pub(super) fn agent_disk_limited(
        &mut self,
        r: &Refuse,
        team: TeamId,
        agent: AgentId,
        disk_mib: u32,
    ) -> Result<(), FoldError> {
        if self.agent_in_team(r, agent, team)?.disk_mib.is_some() {
            return Err(r.inconsistent(format!(
                "the home disk quota of agent {agent} is recorded already"
            )));
        }
        if let Some(a) = self.agents.get_mut(&agent) {
            a.disk_mib = Some(disk_mib);
        }
        Ok(())
    }

    /// Its container started.
    pub(super) fn agent_started(
        &mut self,
        r: &Refuse,
        team: TeamId,
        agent: AgentId,
        container: &str,
    ) -> Result<(), FoldError> {
        self.agent_in_team(r, agent, team)?;
        let container = container.to_owned();
        self.set_status(agent, AgentStatus::Running { container });
        Ok(())
    }

    /// Its container stopped, for `reason`.
    pub(super) fn agent_stopped(
        &mut self,
        r: &Refuse,
        team: TeamId,
        agent: AgentId,
        reason: StopReason,
    ) -> Result<(), FoldError> {
        self.agent_in_team(r, agent, team)?;
        self.set_status(agent, AgentStatus::Stopped { reason });
        Ok(())
    }

    /// Retired: final (a later lifecycle event changes nothing).
    pub(super) fn agent_retired(
        &mut self,
        r: &Refuse,
        team: TeamId,
        agent: AgentId,
    ) -> Result<(), FoldError> {
        self.agent_in_team(r, agent, team)?;
        self.set_status(agent, AgentStatus::Retired);
        // A retired agent calls nothing more: its keys would only take room.
        self.keys.remove(&agent);
        Ok(())
    }
}
