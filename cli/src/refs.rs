//! References an operator types: an agent by id or `team/name`, a team by name or id.

use roster_core::id::{AgentId, TeamId};
use roster_core::name::Name;
use roster_core::world::{Agent, Team, World};

/// An agent as typed: `agt_…` or `team/name`.
#[derive(Debug, Clone)]
pub enum AgentRef {
    /// By id.
    Id(AgentId),
    /// By team and name.
    Named(Name, Name),
}

impl AgentRef {
    /// Parses `agt_…` or `team/name`.
    pub fn parse(s: &str) -> Result<Self, String> {
        if s.starts_with(AgentId::PREFIX) {
            return s
                .parse()
                .map(AgentRef::Id)
                .map_err(|e: roster_core::id::IdError| e.to_string());
        }
        let Some((team, name)) = s.split_once('/') else {
            return Err(format!(
                "`{s}` is not an agent: write its id (agt_…) or team/name"
            ));
        };
        let team = Name::parse_as(team, "team name").map_err(|e| e.to_string())?;
        let name = Name::parse_as(name, "agent name").map_err(|e| e.to_string())?;
        Ok(AgentRef::Named(team, name))
    }

    /// Finds the agent in `world`.
    pub fn resolve<'w>(&self, world: &'w World) -> Result<&'w Agent, String> {
        match self {
            AgentRef::Id(id) => world
                .agent(*id)
                .ok_or_else(|| format!("there is no agent {id}")),
            AgentRef::Named(team, name) => {
                let t = world
                    .team_named(team)
                    .ok_or_else(|| format!("there is no team `{team}`"))?;
                world
                    .agent_named(t.id, name)
                    .ok_or_else(|| format!("there is no agent `{name}` in team `{team}`"))
            }
        }
    }
}

/// A team as typed: its name or `team_…`.
#[derive(Debug, Clone)]
pub enum TeamRef {
    /// By id.
    Id(TeamId),
    /// By name.
    Named(Name),
}

impl TeamRef {
    /// Parses a name or `team_…`.
    pub fn parse(s: &str) -> Result<Self, String> {
        if s.starts_with(TeamId::PREFIX) && s.len() == TeamId::PREFIX.len() + 32 {
            return s
                .parse()
                .map(TeamRef::Id)
                .map_err(|e: roster_core::id::IdError| e.to_string());
        }
        Name::parse_as(s, "team name")
            .map(TeamRef::Named)
            .map_err(|e| e.to_string())
    }

    /// Finds the team in `world`.
    pub fn resolve<'w>(&self, world: &'w World) -> Result<&'w Team, String> {
        match self {
            TeamRef::Id(id) => world
                .team(*id)
                .ok_or_else(|| format!("there is no team {id}")),
            TeamRef::Named(n) => world
                .team_named(n)
                .ok_or_else(|| format!("there is no team `{n}`")),
        }
    }
}
