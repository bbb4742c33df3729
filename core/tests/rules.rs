//! A log from elsewhere must obey the rules `decide` enforces, not only hash correctly:
//! `World::apply_checked` refuses forged events that the hash chain cannot tell apart.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{cap, operator, seal_decision, Harness};
use roster_core::actor::Actor;
use roster_core::capability::{Action, Resource};
use roster_core::command::{Command, Decision};
use roster_core::envelope::Hash;
use roster_core::event::Event;
use roster_core::id::{GrantId, ShareId};
use roster_core::topic::{Topic, TopicPattern};
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
            args: Default::default(),
            approval: None,
            key: None,
        },
        &Actor::Agent(lead),
    );
    let Event::CallApprovalRequested { approval, .. } = &asked[0].event else {
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

fn offer(h: &mut Harness, to: roster_core::id::TeamId, pattern: &str) -> Event {
    Event::ShareProposed {
        share: ShareId::mint(h.now, &mut h.entropy),
        to,
        topics: TopicPattern::parse(pattern).unwrap(),
    }
}

fn crossing(share: ShareId, sender: roster_core::id::AgentId, topic: &str) -> Event {
    Event::ContextShared {
        share,
        sender,
        topic: Topic::parse(topic).unwrap(),
        digest: Hash::of(topic.as_bytes()),
        size: 7,
    }
}

fn share_of(envs: &[roster_core::envelope::Envelope]) -> ShareId {
    envs.iter()
        .find_map(|e| match e.event {
            Event::ShareProposed { share, .. } => Some(share),
            _ => None,
        })
        .unwrap()
}

#[test]
fn forged_share_steps_are_refused() {
    let mut h = Harness::new();
    let research = h.team("research");
    let product = h.team("product");
    let legal = h.team("legal");
    let rlead = h.hire_as(
        &operator(),
        research,
        "lead",
        &["share.propose@team:research", "share.close@team:research"],
    );
    let scout = h.hire_as(&operator(), research, "scout", &[]);
    let careful = h.hire_as(
        &operator(),
        research,
        "careful",
        &["share.propose@team:research,approval"],
    );
    let plead = h.hire_as(&operator(), product, "lead", &["share.accept@team:product"]);
    let llead = h.hire_as(&operator(), legal, "lead", &["share.*@team:*"]);
    let by = Actor::Agent;

    // Proposals: the operator, or an agent of the team with the grant in force.
    let e = offer(&mut h, product, "findings/**");
    forged(&mut h, research, &operator(), vec![e]).unwrap();
    let e = offer(&mut h, product, "findings/**");
    forged(&mut h, research, &by(rlead), vec![e]).unwrap();
    for (who, says) in [
        (
            by(scout),
            "holds no grant in force for share.propose on team:research",
        ),
        (by(careful), "holds no grant in force"),
        (by(llead), "may not share.propose for team research"),
        (by(plead), "may not share.propose for team research"),
        (Actor::Runtime, "the runtime may not share.propose"),
    ] {
        let e = offer(&mut h, product, "findings/**");
        refused(forged(&mut h, research, &who, vec![e]), says);
    }
    let e = offer(&mut h, research, "findings/**");
    refused(
        forged(&mut h, research, &operator(), vec![e]),
        "does not share with itself",
    );

    // Acceptance: in the importing team only, by its agent with the grant, once.
    let share = share_of(&h.ok(
        Command::ProposeShare {
            from: research,
            to: product,
            topics: TopicPattern::parse("findings/**").unwrap(),
        },
        &by(rlead),
    ));
    let accept = || vec![Event::ShareAccepted { share }];
    refused(
        forged(&mut h, research, &operator(), accept()),
        "importing team's stream only",
    );
    refused(
        forged(&mut h, research, &by(rlead), accept()),
        "importing team's stream only",
    );
    refused(
        forged(&mut h, product, &by(llead), accept()),
        "may not share.accept for team product",
    );
    let intern = h.hire_as(&operator(), product, "intern", &[]);
    refused(
        forged(&mut h, product, &by(intern), accept()),
        "holds no grant in force",
    );
    forged(&mut h, product, &by(plead), accept()).unwrap();
    h.ok(Command::AcceptShare { share }, &by(plead));
    refused(
        forged(&mut h, product, &operator(), accept()),
        "not waiting to be accepted",
    );

    // Closing: a side's agent with the grant, never twice.
    let close = || vec![Event::ShareClosed { share }];
    refused(
        forged(&mut h, research, &by(scout), close()),
        "holds no grant in force for share.close on team:research",
    );
    refused(
        forged(&mut h, product, &by(plead), close()),
        "holds no grant in force for share.close on team:product",
    );
    refused(
        forged(&mut h, legal, &by(llead), close()),
        "does not involve this team",
    );
    forged(&mut h, research, &by(rlead), close()).unwrap();
    h.ok(Command::CloseShare { share }, &by(rlead));
    refused(
        forged(&mut h, product, &operator(), close()),
        "already closed",
    );

    // A revoked grant proposes nothing.
    let g = h.world.grants_of(rlead).next().unwrap().id;
    h.ok(Command::Revoke { grant: g }, &operator());
    let e = offer(&mut h, product, "a");
    refused(
        forged(&mut h, research, &by(rlead), vec![e]),
        "holds no grant in force",
    );
}

#[test]
fn forged_crossings_and_denials_are_refused() {
    let mut h = Harness::new();
    let research = h.team("research");
    let product = h.team("product");
    let rlead = h.hire_as(&operator(), research, "lead", &[]);
    let scout = h.hire_as(&operator(), research, "scout", &[]);
    let plead = h.hire_as(&operator(), product, "lead", &[]);
    let by = Actor::Agent;
    let share = |h: &mut Harness, pattern: &str, open: bool| {
        let s = share_of(&h.ok(
            Command::ProposeShare {
                from: research,
                to: product,
                topics: TopicPattern::parse(pattern).unwrap(),
            },
            &operator(),
        ));
        if open {
            h.ok(Command::AcceptShare { share: s }, &operator());
        }
        s
    };
    let pending = share(&mut h, "drafts/**", false);
    let open = share(&mut h, "findings/**", true);

    forged(
        &mut h,
        research,
        &by(scout),
        vec![crossing(open, scout, "findings/a")],
    )
    .unwrap();
    let cases = [
        (
            research,
            operator(),
            crossing(open, scout, "findings/a"),
            "records what it sent",
        ),
        (
            research,
            Actor::Runtime,
            crossing(open, scout, "findings/a"),
            "records what it sent",
        ),
        (
            research,
            by(rlead),
            crossing(open, scout, "findings/a"),
            "records what it sent",
        ),
        (
            product,
            by(scout),
            crossing(open, scout, "findings/a"),
            "recorded in its exporting team",
        ),
        (
            research,
            by(scout),
            crossing(open, scout, "findingsx/a"),
            "not `findingsx/a`",
        ),
        (
            research,
            by(scout),
            crossing(open, scout, "findings"),
            "not `findings`",
        ),
        (
            research,
            by(scout),
            crossing(pending, scout, "drafts/a"),
            "never accepted",
        ),
        // The importer sending back through it: its agent is not of the exporting team.
        (
            research,
            by(plead),
            crossing(open, plead, "findings/a"),
            "not in team",
        ),
    ];
    for (team, who, event, says) in cases {
        refused(forged(&mut h, team, &who, vec![event]), says);
    }
    h.ok(Command::CloseShare { share: open }, &operator());
    refused(
        forged(
            &mut h,
            research,
            &by(scout),
            vec![crossing(open, scout, "findings/a")],
        ),
        "is closed",
    );
    let reopened = share(&mut h, "findings/**", true);
    h.ok(Command::Retire { agent: scout }, &operator());
    refused(
        forged(
            &mut h,
            research,
            &by(scout),
            vec![crossing(reopened, scout, "findings/a")],
        ),
        "retired",
    );

    // A refusal is the agent's own record, or the runtime's.
    let denied = || Event::AccessDenied {
        agent: scout,
        action: Action::parse("context.share").unwrap(),
        resource: Resource::parse("team:product").unwrap(),
        reason: "the share closed".into(),
    };
    forged(&mut h, research, &Actor::Runtime, vec![denied()]).unwrap();
    forged(&mut h, research, &by(scout), vec![denied()]).unwrap();
    refused(
        forged(&mut h, research, &operator(), vec![denied()]),
        "its own request or by the runtime",
    );
    refused(
        forged(&mut h, research, &by(rlead), vec![denied()]),
        "its own request or by the runtime",
    );
}

#[test]
fn a_forged_hire_less_confined_than_its_hirer_is_refused() {
    use roster_core::event::{AgentSpec, RuntimeKind};
    use roster_core::id::AgentId;
    let mut h = Harness::new();
    let team = h.team("ops");
    let mut gvisor = AgentSpec::base();
    gvisor.runtime = RuntimeKind::Runsc;
    let envs = h.ok(
        Command::Hire {
            team,
            name: common::name("lead"),
            role: roster_core::name::Label::parse("lead").unwrap(),
            spec: gvisor.clone(),
            disk: roster_core::limits::DiskMib::default(),
            grants: vec![cap("agent.hire@team:ops")],
        },
        &operator(),
    );
    let lead = common::hired_agent(&envs).unwrap();
    let mut hired = |spec: AgentSpec, n: u64| Event::AgentHired {
        agent: AgentId::mint(h.now, &mut h.entropy),
        name: common::name(&format!("helper{n}")),
        role: roster_core::name::Label::parse("helper").unwrap(),
        parent: Some(lead),
        spec,
    };
    let looser = hired(AgentSpec::base(), 1);
    let as_tight = hired(gvisor, 2);
    refused(
        forged(&mut h, team, &Actor::Agent(lead), vec![looser]),
        "less confined than itself: it would run under runc",
    );
    forged(&mut h, team, &Actor::Agent(lead), vec![as_tight]).unwrap();
}

#[test]
fn a_home_disk_is_recorded_once_by_the_hirer_and_never_above_the_hirers() {
    use roster_core::event::AgentSpec;
    use roster_core::id::AgentId;
    use roster_core::limits::DiskMib;
    use roster_core::name::Label;
    let mut h = Harness::new();
    let team = h.team("ops");
    let lead = h.hire_as(&operator(), team, "lead", &["agent.hire@team:ops"]);
    // Hires as version 3 recorded them: no quota, so the default.
    let legacy = |h: &mut Harness, actor: &Actor, n: &str| {
        let agent = AgentId::mint(h.now, &mut h.entropy);
        let parent = match actor {
            Actor::Agent(a) => Some(*a),
            _ => None,
        };
        let hired = Event::AgentHired {
            agent,
            name: common::name(n),
            role: Label::parse("old").unwrap(),
            parent,
            spec: AgentSpec::base(),
        };
        let decision = Decision {
            team,
            expected_version: h.world.team_version(team),
            events: vec![hired],
        };
        h.commit(&decision, actor);
        agent
    };
    let helper = legacy(&mut h, &Actor::Agent(lead), "helper");
    let old = legacy(&mut h, &operator(), "old");
    for agent in [helper, old] {
        let a = h.world.agent(agent).unwrap();
        assert_eq!((a.disk_mib, a.disk().get()), (None, DiskMib::DEFAULT));
    }
    let disk = |agent, disk_mib| Event::AgentDiskLimited { agent, disk_mib };
    let by_lead = Actor::Agent(lead);
    refused(
        forged(&mut h, team, &by_lead, vec![disk(helper, 2048)]),
        "less confined than itself: its home disk 2048 MiB is above its hirer's 1024 MiB",
    );
    refused(
        forged(&mut h, team, &operator(), vec![disk(helper, 512)]),
        "recorded by its hirer",
    );
    refused(
        forged(&mut h, team, &Actor::Agent(helper), vec![disk(old, 512)]),
        "an operator records its home disk",
    );
    refused(
        forged(&mut h, team, &operator(), vec![disk(old, 63)]),
        "63 is outside 64 to 1048576",
    );
    refused(
        forged(&mut h, team, &operator(), vec![disk(lead, 512)]),
        "recorded already",
    );
    refused(
        forged(
            &mut h,
            team,
            &by_lead,
            vec![disk(helper, 512), disk(helper, 512)],
        ),
        "recorded already",
    );
    forged(&mut h, team, &by_lead, vec![disk(helper, 1024)]).unwrap();
    forged(&mut h, team, &operator(), vec![disk(old, DiskMib::MAX)]).unwrap();

    // Unchecked, a quota out of bounds folds, brought within them.
    for (mib, has) in [(0, DiskMib::MIN), (u32::MAX, DiskMib::MAX)] {
        let decision = Decision {
            team,
            expected_version: h.world.team_version(team),
            events: vec![disk(old, mib)],
        };
        let envs = seal_decision(
            &h.world,
            h.log.last(),
            &decision,
            &operator(),
            h.now,
            &mut h.entropy,
        );
        let mut world = h.world.clone();
        world.apply(&envs[0]).unwrap();
        let a = world.agent(old).unwrap();
        assert_eq!((a.disk_mib, a.disk().get()), (Some(mib), has));
    }
}
