//! One-line descriptions of events and ids for people, with names looked up in the world.

use roster_core::actor::Actor;
use roster_core::event::{Event, StopReason};
use roster_core::id::{AgentId, GrantId, TeamId};
use roster_core::time::Timestamp;
use roster_core::world::World;

/// `team/name` of an agent, or its id if unknown.
pub fn agent(world: &World, id: AgentId) -> String {
    match world.agent(id) {
        Some(a) => format!("{}/{}", team(world, a.team), a.name),
        None => id.to_string(),
    }
}

/// Whether a grant is in force, or why not: its own revocation, expiry or holder's retirement,
/// or an ancestor's ("void (via grt_…)").
pub fn grant_status(world: &World, id: GrantId, now: roster_core::time::Timestamp) -> String {
    use roster_core::authz::DenyReason;
    match world.inactive_reason(id, now) {
        None => "active".into(),
        Some(DenyReason::Revoked(g)) if g == id => "revoked".into(),
        Some(DenyReason::Expired(g)) if g == id => "expired".into(),
        Some(DenyReason::HolderRetired(g)) if g == id => "holder retired".into(),
        Some(DenyReason::Revoked(g) | DenyReason::Expired(g) | DenyReason::HolderRetired(g)) => {
            format!("void (via {})", g.short())
        }
        Some(other) => other.to_string(),
    }
}

/// Why a container stopped, in a few words.
pub fn stop_reason(reason: &StopReason) -> String {
    match reason {
        StopReason::Requested => "on request".to_string(),
        StopReason::Exited { code } => format!("exited with {code}"),
        StopReason::Crashed { code } => format!("crashed with {code}"),
        StopReason::OomKilled => "killed: out of memory".to_string(),
        StopReason::TimedOut => "timed out".to_string(),
        StopReason::Vanished => "its container was gone".to_string(),
        StopReason::EngineRestarted => "the engine restarted".to_string(),
    }
}

/// A team's name, or its id if unknown.
pub fn team(world: &World, id: TeamId) -> String {
    world
        .team(id)
        .map_or_else(|| id.to_string(), |t| t.name.to_string())
}

/// Who did it, for people.
pub fn actor(world: &World, a: &Actor) -> String {
    match a {
        Actor::Operator(n) => format!("operator {n}"),
        Actor::Agent(id) => agent(world, *id),
        Actor::Runtime => "runtime".into(),
    }
}

fn grant(world: &World, id: GrantId) -> String {
    match world.grant(id) {
        Some(g) => format!("{} ({})", g.capability, id.short()),
        None => id.to_string(),
    }
}

/// What happened, in one line.
pub fn event(world: &World, e: &Event) -> String {
    match e {
        Event::TeamCreated { name } => format!("team {name} created"),
        Event::AgentHired {
            agent: id,
            role,
            parent,
            spec,
            ..
        } => {
            let by = parent
                .map(|p| format!(" by {}", agent(world, p)))
                .unwrap_or_default();
            let role = if role.as_str().is_empty() {
                String::new()
            } else {
                format!(" as \"{role}\"")
            };
            format!(
                "hired {}{role}{by} (image {}, {})",
                agent(world, *id),
                spec.image,
                spec.runtime
            )
        }
        Event::AgentStarted { agent: id, .. } => format!("{} started", agent(world, *id)),
        Event::AgentStopped { agent: id, reason } => {
            format!("{} stopped: {}", agent(world, *id), stop_reason(reason))
        }
        Event::AgentRetired { agent: id } => format!("{} retired", agent(world, *id)),
        Event::GrantIssued {
            grant: id,
            holder,
            capability,
            parent,
        } => {
            let from = match parent {
                Some(p) => format!(" derived from {}", p.short()),
                None => " (root)".into(),
            };
            format!(
                "granted {capability} to {}{from} [{}]",
                agent(world, *holder),
                id.short()
            )
        }
        Event::GrantRevoked { grant: id } => format!("revoked {}", grant(world, *id)),
        Event::ShareProposed { share, to, topics } => {
            format!(
                "proposed share {} of topics {topics} to {}",
                share.short(),
                team(world, *to)
            )
        }
        Event::ShareAccepted { share } => format!("accepted share {}", share.short()),
        Event::ShareClosed { share } => format!("closed share {}", share.short()),
        Event::ContextShared {
            share,
            sender,
            topic,
            size,
            ..
        } => format!(
            "{} shared {size} bytes on {topic} through share {}",
            agent(world, *sender),
            share.short()
        ),
        Event::AccessDenied {
            agent: id,
            action,
            resource,
            reason,
        } => {
            format!(
                "DENIED {} {action} on {resource}: {reason}",
                agent(world, *id)
            )
        }
        Event::ApprovalRequested {
            approval,
            agent: id,
            action,
            resource,
            amount,
            ..
        } => format!(
            "{} asks approval {} for {action} on {resource} (amount {amount})",
            agent(world, *id),
            approval
        ),
        Event::CallApprovalRequested {
            approval,
            agent: id,
            action,
            resource,
            amount,
            args: a,
            ..
        } => format!(
            "{} asks approval {} for {action} on {resource} (amount {amount}){}",
            agent(world, *id),
            approval,
            if a.is_empty() {
                String::new()
            } else {
                format!(" with {}", args(a, ARGS_SHOWN))
            }
        ),
        Event::ApprovalDecided {
            approval,
            approved,
            note,
        } => {
            let verdict = if *approved { "approved" } else { "refused" };
            let note = note.as_ref().map(|n| format!(": {n}")).unwrap_or_default();
            format!("{verdict} {approval}{note}")
        }
        Event::ActionPerformed {
            agent: id,
            action,
            resource,
            amount,
            chain,
            approval,
        } => {
            let via = chain
                .first()
                .map(|g| format!(" via {}", g.short()))
                .unwrap_or_default();
            let ap = approval
                .map(|a| format!(", approved by {}", a.short()))
                .unwrap_or_default();
            format!(
                "{} did {action} on {resource} (amount {amount}{via}{ap})",
                agent(world, *id)
            )
        }
        Event::CallKeyed {
            agent: id,
            key,
            outcome,
            ..
        } => format!(
            "{} keyed its call `{key}` (the next {outcome} event{})",
            agent(world, *id),
            if *outcome == 1 { "" } else { "s" }
        ),
        Event::AgentDiskLimited {
            agent: id,
            disk_mib,
        } => {
            format!("{} has a home disk of {disk_mib} MiB", agent(world, *id))
        }
        // Future event kinds still get a line.
        #[allow(unreachable_patterns)]
        other => other.kind().to_string(),
    }
}

/// "just now", "42s ago", "3m ago", "5h ago", "2d ago", or "in 4d" for the future.
pub fn relative(t: Timestamp, now: Timestamp) -> String {
    let delta = now.as_micros().saturating_sub(t.as_micros()) / 1_000_000;
    let (future, secs) = if delta < 0 {
        (true, -delta)
    } else {
        (false, delta)
    };
    let span = match secs {
        0..=1 => return "just now".into(),
        2..=59 => format!("{secs}s"),
        60..=3599 => format!("{}m", secs / 60),
        3600..=86_399 => format!("{}h", secs / 3600),
        _ => format!("{}d", secs / 86_400),
    };
    if future {
        format!("in {span}")
    } else {
        format!("{span} ago")
    }
}

/// How many characters of a call's arguments a line shows.
pub const ARGS_SHOWN: usize = 160;

/// A call's arguments as people read them: `name="value"` pairs, each value escaped (no
/// control character or terminal escape sequence comes through as it is), the whole cut at
/// `max` characters with what was left out counted.
pub fn args(
    args: &std::collections::BTreeMap<roster_core::name::Name, String>,
    max: usize,
) -> String {
    let full = args
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", v.escape_debug()))
        .collect::<Vec<_>>()
        .join(" ");
    let total = full.chars().count();
    if total <= max {
        return full;
    }
    let kept: String = full.chars().take(max).collect();
    format!("{kept}… ({} more characters)", total - max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_are_escaped_and_cut_with_what_was_left_out_counted() {
        let name = |n: &str| roster_core::name::Name::parse(n).unwrap_or_else(|e| panic!("{e}"));
        let args = std::collections::BTreeMap::from([
            (name("body"), "hi\u{1b}[2J \"there\"\n".to_string()),
            (name("to"), "bob".to_string()),
        ]);
        let full = r#"body="hi\u{1b}[2J \"there\"\n" to="bob""#;
        assert_eq!(super::args(&args, 100), full);
        assert!(!super::args(&args, 100).contains('\u{1b}'));
        let cut = super::args(&args, 10);
        assert_eq!(
            cut,
            format!(
                "body=\"hi\\u… ({} more characters)",
                full.chars().count() - 10
            )
        );
    }

    #[test]
    fn relative_times() {
        let now = Timestamp::from_millis(10_000_000);
        assert_eq!(relative(now, now), "just now");
        assert_eq!(
            relative(Timestamp::from_millis(10_000_000 - 42_000), now),
            "42s ago"
        );
        assert_eq!(
            relative(Timestamp::from_millis(10_000_000 - 180_000), now),
            "3m ago"
        );
        assert_eq!(
            relative(Timestamp::from_millis(10_000_000 + 4 * 86_400_000), now),
            "in 4d"
        );
    }
}
