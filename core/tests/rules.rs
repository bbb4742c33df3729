//! A log from elsewhere must obey the rules `decide` enforces, not only hash correctly:
//! `World::apply_checked` refuses forged events that the hash chain cannot tell apart.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{cap, operator, seal_decision, Harness};
use roster_core::actor::Actor;
use roster_core::capability::{Action, Resource};
use roster_core::command::{Command, Decision};
use roster_core::event::Event;
use roster_core::id::GrantId;
use roster_core::world::FoldError;

/// Seals `events` for `team` by `actor` after the harness's log and checks them on a copy.
fn forged(
    h: &mut Harness,
    team: roster_core::id::TeamId,
    actor: &Actor,
    events: Vec<Event>,
) -> Result<(), FoldError> {
    let decision = Decision {
        team,
        expected_version: h.world.team_version(team),
        events,
    };
    let envs = seal_decision(
        &h.world,
        h.log.last(),
        &decision,
        actor,
        h.now,
        &mut h.entropy,
    );
    let mut world = h.world.clone();
    for env in &envs {
        world.apply_checked(env)?;
    }
    Ok(())
}

fn refused(result: Result<(), FoldError>, says: &str) {
    match result {
        Err(e) => assert!(e.to_string().contains(says), "`{e}` does not say `{says}`"),
        Ok(()) => panic!("a forged event was accepted (expected: {says})"),
    }
}

fn spend(agent: roster_core::id::AgentId, chain: Vec<GrantId>, amount: u64) -> Event {
    Event::ActionPerformed {
        agent,
        action: Action::parse("spend.usd").unwrap(),
        resource: Resource::parse("vendor:acme").unwrap(),
        amount: amount.try_into().unwrap(),
        chain,
        approval: None,
    }
}

#[test]
fn forged_uses_and_grants_are_refused() {
    let mut h = Harness::new();
    let team = h.team("research");
    let lead = h.hire_as(
        &operator(),
        team,
        "lead",
        &[
            "agent.hire@team:research,budget=5",
            "spend.usd@*,budget=10",
            "email.send@mailbox:*,approval",
        ],
    );
    let scout = h.hire_as(
        &Actor::Agent(lead),
        team,
        "scout",
        &["spend.usd@*,budget=10"],
    );
    let scout_grant = h.world.grants_of(scout).next().unwrap().id;
    let lead_spend = h.world.grant(scout_grant).unwrap().parent.unwrap();
    let lead_email = h
        .world
        .grants_of(lead)
        .find(|g| g.capability.to_string().starts_with("email"))
        .unwrap()
        .id;
    let by_scout = Actor::Agent(scout);

    // A genuine spend passes; the same through a truncated chain does not.
    forged(
        &mut h,
        team,
        &by_scout,
        vec![spend(scout, vec![scout_grant, lead_spend], 3)],
    )
    .unwrap();
    refused(
        forged(
            &mut h,
            team,
            &by_scout,
            vec![spend(scout, vec![scout_grant], 3)],
        ),
        "whole chain",
    );
    // Over the budget.
    refused(
        forged(
            &mut h,
            team,
            &by_scout,
            vec![spend(scout, vec![scout_grant, lead_spend], 11)],
        ),
        "budget exhausted",
    );
    // Through a grant that does not allow the action.
    let mail = Event::ActionPerformed {
        agent: lead,
        action: Action::parse("spend.usd").unwrap(),
        resource: Resource::parse("vendor:acme").unwrap(),
        amount: 1.try_into().unwrap(),
        chain: vec![lead_email],
        approval: None,
    };
    refused(
        forged(&mut h, team, &Actor::Agent(lead), vec![mail]),
        "does not allow",
    );
    // Recorded as another agent's act.
    refused(
        forged(
            &mut h,
            team,
            &Actor::Agent(lead),
            vec![spend(scout, vec![scout_grant, lead_spend], 1)],
        ),
        "acts for itself",
    );
    // An approval-bound use without an approval.
    let send = Event::ActionPerformed {
        agent: lead,
        action: Action::parse("email.send").unwrap(),
        resource: Resource::parse("mailbox:all").unwrap(),
        amount: 1.try_into().unwrap(),
        chain: vec![lead_email],
        approval: None,
    };
    refused(
        forged(&mut h, team, &Actor::Agent(lead), vec![send]),
        "without one",
    );
    // An agent issuing itself a root grant.
    let root = Event::GrantIssued {
        grant: GrantId::mint(h.now, &mut h.entropy),
        holder: scout,
        capability: cap("*@**"),
        parent: None,
    };
    refused(
        forged(&mut h, team, &by_scout, vec![root]),
        "only an operator issues a root grant",
    );
    // An agent deriving from a grant it does not hold.
    let stolen = Event::GrantIssued {
        grant: GrantId::mint(h.now, &mut h.entropy),
        holder: scout,
        capability: cap("email.send@mailbox:x,approval"),
        parent: Some(lead_email),
    };
    refused(
        forged(&mut h, team, &by_scout, vec![stolen]),
        "may not derive",
    );
    // An agent deciding an approval.
    let asked = h.ok(
        Command::Act {
            action: Action::parse("email.send").unwrap(),
            resource: Resource::parse("mailbox:all").unwrap(),
            amount: 1.try_into().unwrap(),
            approval: None,
        },
        &Actor::Agent(lead),
    );
    let Event::ApprovalRequested { approval, .. } = &asked[0].event else {
        panic!("no approval asked")
    };
    let decided = Event::ApprovalDecided {
        approval: *approval,
        approved: true,
        note: None,
    };
    refused(
        forged(&mut h, team, &Actor::Agent(lead), vec![decided]),
        "only an operator decides",
    );

    // After a revocation, a spend through the revoked chain is refused.
    h.ok(Command::Revoke { grant: lead_spend }, &operator());
    refused(
        forged(
            &mut h,
            team,
            &by_scout,
            vec![spend(scout, vec![scout_grant, lead_spend], 1)],
        ),
        "revoked",
    );
}

#[test]
fn forged_container_lifecycles_are_refused() {
    use roster_core::event::StopReason;
    let mut h = Harness::new();
    let team = h.team("ops");
    let a = h.hire_as(&operator(), team, "a", &[]);
    let stop = Event::AgentStopped {
        agent: a,
        reason: StopReason::Requested,
    };
    refused(
        forged(&mut h, team, &Actor::Agent(a), vec![stop.clone()]),
        "may not record",
    );
    forged(&mut h, team, &Actor::Runtime, vec![stop.clone()]).unwrap();
    h.ok(Command::Retire { agent: a }, &operator());
    let start = Event::AgentStarted {
        agent: a,
        container: "c".into(),
    };
    refused(
        forged(&mut h, team, &Actor::Runtime, vec![start]),
        "retired",
    );
}
