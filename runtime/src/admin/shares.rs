//! `share propose|accept|close`, `shares`: consent to context crossing team boundaries.

use roster_core::command::Command;
use roster_core::id::ShareId;
use roster_core::refs::{AgentRef, IdRef, TeamRef};
use roster_core::topic::TopicPattern;
use roster_core::world::World;

use super::{AdminError, Ctx, Item};
use crate::gateway::answer::share_view;

pub(super) fn propose(
    from: &TeamRef,
    to: &TeamRef,
    topics: TopicPattern,
    by: Option<&AgentRef>,
    ctx: &Ctx<'_>,
) -> Result<(), AdminError> {
    ctx.commit(|world| {
        let from = from.resolve(world)?.id;
        let to = to.resolve(world)?.id;
        let command = Command::ProposeShare { from, to, topics };
        Ok((command, ctx.actor(world, by)?))
    })?;
    Ok(())
}

pub(super) fn accept(
    share: &IdRef<ShareId>,
    by: Option<&AgentRef>,
    ctx: &Ctx<'_>,
) -> Result<(), AdminError> {
    ctx.commit(|world| {
        let share = resolve(share, world)?;
        Ok((Command::AcceptShare { share }, ctx.actor(world, by)?))
    })?;
    Ok(())
}

pub(super) fn close(
    share: &IdRef<ShareId>,
    by: Option<&AgentRef>,
    ctx: &Ctx<'_>,
) -> Result<(), AdminError> {
    ctx.commit(|world| {
        let share = resolve(share, world)?;
        Ok((Command::CloseShare { share }, ctx.actor(world, by)?))
    })?;
    Ok(())
}

/// The share `share` names among the world's.
fn resolve(share: &IdRef<ShareId>, world: &World) -> Result<ShareId, AdminError> {
    Ok(share.resolve(world.shares().map(|s| s.id))?)
}

/// `roster shares`: each share as the gateway's `shares` gives it (one type, one shape).
pub(super) fn list(team: Option<TeamRef>, ctx: &Ctx<'_>) -> Result<(), AdminError> {
    let app = ctx.read()?;
    let team = team
        .map(|t| t.resolve(app.world()).map(|t| t.id))
        .transpose()?;
    for s in app.world().shares() {
        if team.is_some_and(|t| t != s.from && t != s.to) {
            continue;
        }
        ctx.reply.send(Item::Share(share_view(app.world(), s)))?;
    }
    Ok(())
}
