//! The concrete [`Action`] and [`Resource`] a request names: validated like capability patterns,
//! but with no wildcards, and capped in length (every refusal of an agent records them).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::pattern::{parse_action_segments, parse_resource};
use super::{text_impls, CapabilityError};

/// A concrete action an agent asks to perform (`email.send`). No wildcards.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Action(String);

impl Action {
    /// The longest requested action, in bytes.
    pub const MAX_LEN: usize = 255;

    /// Parses a concrete action.
    pub fn parse(s: &str) -> Result<Self, CapabilityError> {
        if s.len() > Self::MAX_LEN {
            return Err(CapabilityError::RequestTooLong {
                what: "action",
                len: s.len(),
                max: Self::MAX_LEN,
            });
        }
        parse_action_segments(s, false).map_err(|why| CapabilityError::BadAction {
            input: s.to_owned(),
            action: s.to_owned(),
            why,
        })?;
        Ok(Self(s.to_owned()))
    }

    /// The action text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub(super) fn segments(&self) -> std::str::Split<'_, char> {
        self.0.split('.')
    }
}

/// A concrete resource an action is performed on (`mailbox:alice`, `repo:acme/api`).
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Resource(String);

impl Resource {
    /// The longest requested resource, in bytes (every refusal of an agent records it).
    pub const MAX_LEN: usize = 512;

    /// Parses a concrete resource.
    pub fn parse(s: &str) -> Result<Self, CapabilityError> {
        if s.len() > Self::MAX_LEN {
            return Err(CapabilityError::RequestTooLong {
                what: "resource",
                len: s.len(),
                max: Self::MAX_LEN,
            });
        }
        parse_resource(s, false).map_err(|why| CapabilityError::BadResource {
            input: s.to_owned(),
            resource: s.to_owned(),
            why,
        })?;
        Ok(Self(s.to_owned()))
    }

    /// The resource of a team, as checked by `agent.hire@team:T` and friends.
    pub fn team(name: &crate::name::Name) -> Self {
        Self(format!("team:{name}"))
    }

    /// The resource naming one entity by its id (`grant:grt_…`); ids print as letters, digits
    /// and `_` only, so the result is always a valid resource.
    pub fn entity(kind: &'static str, id: impl fmt::Display) -> Self {
        Self(format!("{kind}:{id}"))
    }

    /// The resource text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub(super) fn split(&self) -> (Option<&str>, std::str::Split<'_, char>) {
        match self.0.split_once(':') {
            Some((k, p)) => (Some(k), p.split('/')),
            None => (None, self.0.split('/')),
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
text_impls!(Action);
text_impls!(Resource);
