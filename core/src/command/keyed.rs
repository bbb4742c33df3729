//! Keyed calls: an agent's `act` or `delegate` with an idempotency key ([`CallKey`]).
//!
//! A keyed call is carried out at most once per agent and key. The decision that carries it
//! out begins with [`Event::CallKeyed`] (the key, the digest of what was asked, how many events
//! after it are the outcome); while the world holds that key for the agent
//! ([`World::keyed`]), `decide` refuses the key again — [`Rejection::KeyReused`], recorded like
//! any refusal. The runtime looks first and answers a repeat of the same call with the
//! recorded outcome without deciding anything; what reaches `decide` with a held key is either
//! another call under that key or a caller that did not look, and both are refused.
//!
//! The digest is BLAKE3 over an explicit encoding of what the call asks (each field a tag, then
//! its length and its bytes as text): stable whatever serde or postcard do, and independent of
//! what does not change the call's effect (an `act`'s `timeout_secs` and `approval`).

use crate::actor::Actor;
use crate::capability::{Action, Amount, Capability, Resource};
use crate::envelope::Hash;
use crate::event::Event;
use crate::id::{AgentId, GrantId};
use crate::name::{CallKey, Name};
use crate::world::World;

use super::ctx::Ctx;
use super::{Command, Decision, Rejected, Rejection};

/// The digest of an `act`: its action, resource, amount (1 when it named none) and arguments.
pub fn act_digest(
    action: &Action,
    resource: &Resource,
    amount: Amount,
    args: &std::collections::BTreeMap<Name, String>,
) -> Hash {
    let mut h = Digest::new("act");
    h.field(action.as_str());
    h.field(&resource.to_string());
    h.field(&amount.to_string());
    h.field(&args.len().to_string());
    for (k, v) in args {
        h.field(k.as_str());
        h.field(v);
    }
    h.finish()
}

/// The digest of a `delegate`: its receiver, capability and the grant it names to derive from
/// (none: whichever covers it).
pub fn delegate_digest(to: AgentId, capability: &Capability, from: Option<GrantId>) -> Hash {
    let mut h = Digest::new("delegate");
    h.field(&to.to_string());
    h.field(&capability.to_string());
    h.field(&from.map_or_else(String::new, |g| g.to_string()));
    h.finish()
}

/// An explicit, length-prefixed encoding under a domain tag: no two calls of different
/// methods or fields encode alike.
struct Digest(blake3::Hasher);

impl Digest {
    fn new(method: &str) -> Self {
        let mut h = blake3::Hasher::new();
        h.update(b"roster.call-key.v1\0");
        let mut d = Digest(h);
        d.field(method);
        d
    }

    fn field(&mut self, text: &str) {
        self.0.update(&(text.len() as u64).to_le_bytes());
        self.0.update(text.as_bytes());
    }

    fn finish(self) -> Hash {
        Hash(*self.0.finalize().as_bytes())
    }
}

impl Command {
    /// The key of a keyed call (`Act`, `Grant` with `key`) and the digest of what it asks; `None`
    /// for any other command.
    pub fn call_key(&self) -> Option<(&CallKey, Hash)> {
        match self {
            Command::Act {
                action,
                resource,
                amount,
                args,
                key: Some(key),
                ..
            } => Some((key, act_digest(action, resource, *amount, args))),
            Command::Grant {
                to,
                capability,
                from,
                key: Some(key),
            } => Some((key, delegate_digest(*to, capability, *from))),
            _ => None,
        }
    }
}

/// Before deciding a keyed call: only an agent keys its calls, and a key it holds is refused.
pub(super) fn check(
    world: &World,
    actor: &Actor,
    key: &CallKey,
    digest: Hash,
) -> Result<AgentId, Rejected> {
    let Actor::Agent(agent) = actor else {
        return Err(Ctx::plain(Rejection::AgentOnly("key a call")));
    };
    match world.keyed(*agent, key) {
        None => Ok(*agent),
        Some(held) => Err(Ctx::plain(Rejection::KeyReused {
            key: key.clone(),
            seq: held.seq,
            same: held.digest == digest,
        })),
    }
}

/// After deciding a keyed call: `CallKeyed` first when the decision carries the call out (not
/// when it only asks a human's approval: the key is recorded when the approved call is).
pub(super) fn record(
    mut decision: Decision,
    agent: AgentId,
    key: CallKey,
    digest: Hash,
) -> Decision {
    let asks_approval = decision.events.iter().any(|e| {
        matches!(
            e,
            Event::CallApprovalRequested { .. } | Event::ApprovalRequested { .. }
        )
    });
    if asks_approval {
        return decision;
    }
    // A decision holds a handful of events: the count fits.
    let outcome = u32::try_from(decision.events.len()).unwrap_or(u32::MAX);
    decision.events.insert(
        0,
        Event::CallKeyed {
            agent,
            key,
            digest,
            outcome,
        },
    );
    decision
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capability::ONE;
    use std::collections::BTreeMap;

    #[test]
    fn digests_tell_calls_apart() {
        let a = Action::parse("spend.usd").unwrap();
        let r = Resource::parse("vendor:acme").unwrap();
        let none = BTreeMap::new();
        let mut memo = BTreeMap::new();
        memo.insert(Name::parse("memo").unwrap(), "x".to_owned());
        let base = act_digest(&a, &r, ONE, &none);
        assert_eq!(base, act_digest(&a, &r, ONE, &BTreeMap::new()));
        assert_ne!(base, act_digest(&a, &r, Amount::new(2).unwrap(), &none));
        assert_ne!(base, act_digest(&a, &r, ONE, &memo));
        assert_ne!(
            base,
            act_digest(&a, &Resource::parse("vendor:acm").unwrap(), ONE, &none)
        );
        // Fields do not run into each other: `a`+`bc` is not `ab`+`c`.
        let mut split1 = BTreeMap::new();
        split1.insert(Name::parse("a").unwrap(), "bc".to_owned());
        let mut split2 = BTreeMap::new();
        split2.insert(Name::parse("ab").unwrap(), "c".to_owned());
        assert_ne!(
            act_digest(&a, &r, ONE, &split1),
            act_digest(&a, &r, ONE, &split2)
        );
    }
}
