//! Who caused an event.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::id::AgentId;
use crate::name::Name;

/// Who caused an event: a human at the admin socket, an agent through its gateway, or the
/// runtime itself (container lifecycle).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Actor {
    /// A human operator, by name.
    Operator(Name),
    /// An agent, through its own gateway socket.
    Agent(AgentId),
    /// The runtime itself.
    Runtime,
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Actor::Operator(n) => write!(f, "operator:{n}"),
            Actor::Agent(a) => write!(f, "{a}"),
            Actor::Runtime => f.write_str("runtime"),
        }
    }
}
