//! The tool-provider protocol: what a provider receives for one action the runtime authorized
//! and recorded, and nothing more.
//!
//! A provider is outside the agent: a program configured in `roster.toml`
//! (`[tools."email.send"] exec = [...]`, the call as one JSON object on stdin, one JSON value on
//! stdout) or a request/reply service on `NS.tool.ACTION`; both get the same [`ToolCall`]. It is
//! built from the `ActionPerformed` event and the arguments the agent sent (validated at the
//! gateway), so a provider never sees another grant, a secret, or anything the decision did
//! not cover. The provider's answer is any JSON value, handed back to the agent as it is.
//!
//! ```json
//! {"performed":"evt_…","action":"email.send","resource":"mailbox:alice","amount":1,
//!  "args":{"subject":"hi"},"agent":{"id":"agt_…","name":"scout","team":"research"},
//!  "chain":["grt_…","grt_…"],"approval":null}
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::capability::{Action, Amount, Resource};
use crate::envelope::Envelope;
use crate::event::Event;
use crate::id::{AgentId, ApprovalId, EventId, GrantId};
use crate::name::Name;
use crate::world::World;

/// The most bytes a provider's answer may have (a program's stdout, a NATS reply): a provider
/// gone wrong cannot make the runtime, or the agent, hold more.
pub const MAX_ANSWER: usize = 1024 * 1024;

/// One authorized action, as its tool provider receives it (JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolCall {
    /// The `ActionPerformed` event that recorded it (one call per event: a provider can use it
    /// to recognise a call it already carried out).
    pub performed: EventId,
    /// What to do.
    pub action: Action,
    /// On what.
    pub resource: Resource,
    /// How much was spent.
    pub amount: Amount,
    /// The agent's arguments (names validated, values at most 64 KiB each).
    pub args: BTreeMap<Name, String>,
    /// Who asked.
    pub agent: ToolAgent,
    /// The grants that authorized it, the agent's first, the root last.
    pub chain: Vec<GrantId>,
    /// The human's approval it used, when one was needed.
    pub approval: Option<ApprovalId>,
}

/// The acting agent, as a provider sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolAgent {
    /// Its id.
    pub id: AgentId,
    /// Its name in its team.
    pub name: Name,
    /// Its team's name.
    pub team: Name,
}

impl ToolCall {
    /// The call for `performed`, an `ActionPerformed` envelope folded into `world`, with the
    /// agent's `args`. `None` when the envelope is not an `ActionPerformed` or its agent or
    /// team is unknown to `world`.
    pub fn of(performed: &Envelope, world: &World, args: BTreeMap<Name, String>) -> Option<Self> {
        let body = performed.body();
        let Event::ActionPerformed {
            agent,
            action,
            resource,
            amount,
            chain,
            approval,
        } = &body.event
        else {
            return None;
        };
        let a = world.agent(*agent)?;
        let team = world.team(a.team)?;
        Some(ToolCall {
            performed: body.id,
            action: action.clone(),
            resource: resource.clone(),
            amount: *amount,
            args,
            agent: ToolAgent {
                id: *agent,
                name: a.name.clone(),
                team: team.name.clone(),
            },
            chain: chain.clone(),
            approval: *approval,
        })
    }
}
