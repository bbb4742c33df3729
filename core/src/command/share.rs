//! The decisions about shares between teams: proposing one (the exporting team), accepting it
//! (the importing team), closing it (either side), and sending a context message across an open
//! one. A share needs both teams' consent, so each step is taken for one team by an operator or
//! by one of that team's own agents holding the step's built-in grant (`share.propose`,
//! `share.accept`, `share.close` on `team:T`); a send needs no grant of its own.

use crate::actor::Actor;
use crate::envelope::Hash;
use crate::event::Event;
use crate::id::{Entropy, ShareId, TeamId};
use crate::topic::{Topic, TopicPattern};
use crate::world::{Share, ShareState};

use super::ctx::Ctx;
use super::{builtin, Decision, Rejected, Rejection};

fn share<'a>(cx: &Ctx<'a>, id: ShareId) -> Result<&'a Share, Rejected> {
    cx.world.share(id).ok_or_else(|| {
        Ctx::plain(Rejection::NotFound {
            what: "share",
            id: id.to_string(),
        })
    })
}

/// `ShareProposed` in `from`'s stream, after the use of `share.propose@team:FROM` for an agent.
pub(super) fn propose(
    cx: &Ctx<'_>,
    from: TeamId,
    to: TeamId,
    topics: TopicPattern,
    entropy: &mut dyn Entropy,
) -> Result<Decision, Rejected> {
    let f = cx.team(from)?;
    // Consent comes first: an agent that may not propose its team's shares learns nothing of
    // the team it named (the gateway asks a team that does not exist this way, as `to: from`).
    let mut events = cx.for_team(builtin::SHARE_PROPOSE, f, "propose its shares")?;
    cx.team(to)?;
    if from == to {
        return Err(Ctx::plain(Rejection::SameTeam(f.name.clone())));
    }
    events.push(Event::ShareProposed {
        share: ShareId::mint(cx.now, entropy),
        to,
        topics,
    });
    Ok(Decision {
        team: f.id,
        expected_version: f.version,
        events,
    })
}

/// `ShareAccepted` in the importing team's stream; only a proposed share is accepted.
pub(super) fn accept(cx: &Ctx<'_>, id: ShareId) -> Result<Decision, Rejected> {
    let s = share(cx, id)?;
    let t = cx.team(s.to)?;
    // Consent comes first: an agent of another team learns nothing of the share's state.
    let mut events = cx.for_team(builtin::SHARE_ACCEPT, t, "accept the shares offered to it")?;
    match s.state {
        ShareState::Proposed => {}
        ShareState::Open => {
            return Err(Ctx::plain(Rejection::Share {
                id,
                why: "it is already open",
            }))
        }
        ShareState::Closed => {
            return Err(Ctx::plain(Rejection::Share {
                id,
                why: "it is closed; the exporting team may propose a new one",
            }))
        }
    }
    events.push(Event::ShareAccepted { share: id });
    Ok(Decision {
        team: t.id,
        expected_version: t.version,
        events,
    })
}

/// `ShareClosed` in the closer's team (an operator's: the exporting team). A proposed share may
/// be closed too: withdrawn by its exporter, declined by its importer.
pub(super) fn close(cx: &Ctx<'_>, id: ShareId) -> Result<Decision, Rejected> {
    let s = share(cx, id)?;
    let side = match cx.actor {
        Actor::Agent(a) => {
            let team = cx.live_agent(*a)?.team;
            if team != s.from && team != s.to {
                return Err(Ctx::plain(Rejection::Share {
                    id,
                    why: "the asking agent's team is on neither side of it",
                }));
            }
            team
        }
        Actor::Operator(_) | Actor::Runtime => s.from,
    };
    let t = cx.team(side)?;
    let mut events = cx.for_team(builtin::SHARE_CLOSE, t, "close its shares")?;
    if s.state == ShareState::Closed {
        return Err(Ctx::plain(Rejection::Share {
            id,
            why: "it is already closed",
        }));
    }
    events.push(Event::ShareClosed { share: id });
    Ok(Decision {
        team: t.id,
        expected_version: t.version,
        events,
    })
}

/// `ContextShared` in the sender's team, through the first open share from its team to `to`
/// whose pattern matches `topic`. Only an agent sends; operators and the runtime speak for no
/// team's context.
pub(super) fn send(
    cx: &Ctx<'_>,
    to: TeamId,
    topic: Topic,
    digest: Hash,
    size: u64,
) -> Result<Decision, Rejected> {
    let Actor::Agent(sender) = cx.actor else {
        return Err(Ctx::plain(Rejection::AgentOnly(
            "send context to another team",
        )));
    };
    let a = cx.live_agent(*sender)?;
    let from = cx.team(a.team)?;
    let dest = cx.team(to)?;
    if from.id == to {
        return Err(Ctx::plain(Rejection::SameTeam(from.name.clone())));
    }
    let Some(s) = cx.world.open_share_for(from.id, to, &topic) else {
        return Err(Ctx::plain(Rejection::NoOpenShare {
            from: from.name.clone(),
            to: dest.name.clone(),
            topic,
        }));
    };
    Ok(Decision {
        team: from.id,
        expected_version: from.version,
        events: vec![Event::ContextShared {
            share: s.id,
            sender: *sender,
            topic,
            digest,
            size,
        }],
    })
}
