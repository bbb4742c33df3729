//! References an operator types: an agent by id or `team/name`, a team by name or id. Parsed
//! where they are typed (or arrive on the admin socket, as the same text), resolved against a
//! world when a command runs.

use serde::{Deserialize, Serialize};

use crate::id::{AgentId, IdError, TeamId};
use crate::name::Name;
use crate::world::{Agent, Team, World};

/// A reference that does not parse, or names nothing in the world it is resolved against.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RefError {
    /// Not an id, not `team/name`, or a part that is not a valid name.
    #[error("{0}")]
    Malformed(String),
    /// No agent has this id.
    #[error("there is no agent {0}")]
    NoAgent(AgentId),
    /// No team has this id.
    #[error("there is no team {0}")]
    NoTeamId(TeamId),
    /// No team has this name.
    #[error("there is no team `{0}`")]
    NoTeam(Name),
    /// The team has no agent of this name.
    #[error("there is no agent `{name}` in team `{team}`")]
    NoAgentNamed {
        /// The team.
        team: Name,
        /// The name looked for.
        name: Name,
    },
}

/// An agent as typed: `agt_…` or `team/name`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum AgentRef {
    /// By id.
    Id(AgentId),
    /// By team and name.
    Named(Name, Name),
}

impl AgentRef {
    /// Parses `agt_…` or `team/name`.
    pub fn parse(s: &str) -> Result<Self, RefError> {
        let malformed = |e: &dyn std::fmt::Display| RefError::Malformed(e.to_string());
        if s.starts_with(AgentId::PREFIX) {
            return s
                .parse()
                .map(AgentRef::Id)
                .map_err(|e: IdError| malformed(&e));
        }
        let Some((team, name)) = s.split_once('/') else {
            return Err(RefError::Malformed(format!(
                "`{s}` is not an agent: write its id (agt_…) or team/name"
            )));
        };
        let team = Name::parse_as(team, "team name").map_err(|e| malformed(&e))?;
        let name = Name::parse_as(name, "agent name").map_err(|e| malformed(&e))?;
        Ok(AgentRef::Named(team, name))
    }

    /// Finds the agent in `world`.
    pub fn resolve<'w>(&self, world: &'w World) -> Result<&'w Agent, RefError> {
        match self {
            AgentRef::Id(id) => world.agent(*id).ok_or(RefError::NoAgent(*id)),
            AgentRef::Named(team, name) => {
                let t = world
                    .team_named(team)
                    .ok_or_else(|| RefError::NoTeam(team.clone()))?;
                world
                    .agent_named(t.id, name)
                    .ok_or_else(|| RefError::NoAgentNamed {
                        team: team.clone(),
                        name: name.clone(),
                    })
            }
        }
    }
}

/// A team as typed: its name or `team_…`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum TeamRef {
    /// By id.
    Id(TeamId),
    /// By name.
    Named(Name),
}

impl TeamRef {
    /// Parses a name or `team_…`.
    pub fn parse(s: &str) -> Result<Self, RefError> {
        if s.starts_with(TeamId::PREFIX) && s.len() == TeamId::PREFIX.len() + 32 {
            return s
                .parse()
                .map(TeamRef::Id)
                .map_err(|e: IdError| RefError::Malformed(e.to_string()));
        }
        Name::parse_as(s, "team name")
            .map(TeamRef::Named)
            .map_err(|e| RefError::Malformed(e.to_string()))
    }

    /// Finds the team in `world`.
    pub fn resolve<'w>(&self, world: &'w World) -> Result<&'w Team, RefError> {
        match self {
            TeamRef::Id(id) => world.team(*id).ok_or(RefError::NoTeamId(*id)),
            TeamRef::Named(n) => world
                .team_named(n)
                .ok_or_else(|| RefError::NoTeam(n.clone())),
        }
    }
}

impl std::fmt::Display for AgentRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AgentRef::Id(id) => write!(f, "{id}"),
            AgentRef::Named(team, name) => write!(f, "{team}/{name}"),
        }
    }
}

impl std::fmt::Display for TeamRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TeamRef::Id(id) => write!(f, "{id}"),
            TeamRef::Named(name) => write!(f, "{name}"),
        }
    }
}

macro_rules! text_ref {
    ($($t:ty),*) => {$(
        impl std::str::FromStr for $t {
            type Err = RefError;
            fn from_str(s: &str) -> Result<Self, RefError> {
                Self::parse(s)
            }
        }

        impl TryFrom<String> for $t {
            type Error = RefError;
            fn try_from(s: String) -> Result<Self, RefError> {
                Self::parse(&s)
            }
        }

        impl From<$t> for String {
            fn from(r: $t) -> String {
                r.to_string()
            }
        }
    )*};
}

text_ref!(AgentRef, TeamRef);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_round_trip_as_text() {
        let id = AgentId::mint(
            crate::time::Timestamp::from_millis(1),
            &mut crate::id::CountingEntropy::new(7),
        )
        .to_string();
        for text in ["dev/alice", id.as_str()] {
            let a = AgentRef::parse(text).unwrap();
            assert_eq!(a.to_string(), text);
            let json = serde_json::to_string(&a).unwrap();
            assert_eq!(serde_json::from_str::<AgentRef>(&json).unwrap(), a);
        }
        assert_eq!(TeamRef::parse("dev").unwrap().to_string(), "dev");
    }

    #[test]
    fn malformed_references_are_refused_on_the_wire_too() {
        assert!(serde_json::from_str::<AgentRef>("\"nobody\"").is_err());
        assert!(serde_json::from_str::<AgentRef>("\"dev/Not A Name\"").is_err());
        assert!(serde_json::from_str::<TeamRef>("\"../etc\"").is_err());
    }
}
