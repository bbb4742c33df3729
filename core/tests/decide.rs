//! Scenarios of `decide`, told as stories: a team, a lead hired by the operator, teammates hired
//! by the lead, and what each of them may and may not do. Every accepted decision is folded
//! through sealed envelopes; every refusal of an agent is checked for its audit record, which is
//! folded too.

// Test code, helpers included: a failed unwrap or a panic is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{cap, hire, name, operator, resource, Harness};
use roster_core::actor::Actor;
use roster_core::authz::{Authorization, DenyReason};
use roster_core::capability::Amount;
use roster_core::command::{Command, Rejected, Rejection};
use roster_core::event::{AgentSpec, Event, RuntimeKind};
use roster_core::id::{AgentId, ApprovalId, GrantId, TeamId};
use roster_core::limits::DiskMib;
use roster_core::name::Label;
use roster_core::world::World;

fn amount(n: u64) -> Amount {
    Amount::new(n).unwrap()
}

fn act(action: &str, res: &str, n: u64) -> Command {
    Command::Act {
        action: common::action(action),
        resource: resource(res),
        amount: amount(n),
        args: Default::default(),
        approval: None,
        key: None,
    }
}

fn act_with(action: &str, res: &str, n: u64, approval: ApprovalId) -> Command {
    Command::Act {
        action: common::action(action),
        resource: resource(res),
        amount: amount(n),
        args: Default::default(),
        approval: Some(approval),
        key: None,
    }
}

/// The grant `agent` holds whose text is `text`.
fn grant(h: &Harness, agent: AgentId, text: &str) -> GrantId {
    h.world
        .grants_of(agent)
        .find(|g| g.capability.to_string() == text)
        .unwrap_or_else(|| panic!("{agent} holds no `{text}`"))
        .id
}

/// Runs a command that must be refused; checks it changed nothing and, for an agent, that the
/// refusal carries one `AccessDenied` naming the agent, the action tried and the reason, for the
/// agent's own team — and folds that record.
fn refused(h: &mut Harness, command: Command, actor: &Actor, tried: &str) -> Rejected {
    let before = h.world.clone();
    let shown = format!("{command:?}");
    let r = match h.decide(command, actor) {
        Ok(d) => panic!("{shown} by {actor} was accepted: {d:?}"),
        Err(r) => r,
    };
    assert_eq!(h.world, before, "a refusal changed the world");
    match actor {
        Actor::Agent(a) => {
            let audit = r
                .audit
                .as_ref()
                .unwrap_or_else(|| panic!("no audit for {}", r.rejection));
            assert_eq!(audit.team, h.world.agent(*a).unwrap().team);
            match audit.events.as_slice() {
                [Event::AccessDenied {
                    agent,
                    action,
                    reason,
                    ..
                }] => {
                    assert_eq!(agent, a);
                    assert_eq!(action.as_str(), tried);
                    assert_eq!(reason, &r.rejection.to_string());
                }
                other => panic!("audit is not one AccessDenied: {other:?}"),
            }
            let audit = (**audit).clone();
            h.commit(&audit, actor);
            assert_eq!(h.world.agents().count(), before.agents().count());
        }
        _ => assert!(r.audit.is_none(), "an operator's refusal is audited"),
    }
    r
}

fn says(r: &Rejected, words: &[&str]) {
    let text = r.to_string();
    for w in words {
        assert!(text.contains(w), "`{text}` does not say `{w}`");
    }
}

/// A team `research` and its lead, hired by the operator with `grants`.
fn team_with_lead(grants: &[&str]) -> (Harness, TeamId, AgentId) {
    let mut h = Harness::new();
    let team = h.team("research");
    let lead = h.hire_as(&operator(), team, "lead", grants);
    (h, team, lead)
}

const LEAD: &[&str] = &[
    "agent.hire@team:research,budget=2",
    "email.*@mailbox:*",
    "deploy.*@env:*,approval",
    "spend.usd@*,budget=100",
    "repo.push@repo:*,expires=2031-01-01T00:00:00Z",
];

#[test]
fn the_operator_hires_a_lead_with_root_grants() {
    let (h, team, lead) = team_with_lead(LEAD);
    let a = h.world.agent(lead).unwrap();
    assert_eq!((a.team, a.parent), (team, None));
    let texts: Vec<String> = h
        .world
        .grants_of(lead)
        .map(|g| {
            assert_eq!(g.parent, None, "an operator's grants are roots");
            g.capability.to_string()
        })
        .collect();
    assert_eq!(texts, LEAD);
}

#[test]
fn a_lead_hires_a_teammate_with_a_narrower_grant() {
    let (mut h, team, lead) = team_with_lead(LEAD);
    let envs = h.ok(
        hire(team, "mailer", vec![cap("email.send@mailbox:alice")]),
        &Actor::Agent(lead),
    );
    let mailer = common::hired_agent(&envs).unwrap();
    let hire_grant = grant(&h, lead, "agent.hire@team:research,budget=2");
    let email = grant(&h, lead, "email.*@mailbox:*");

    // The hire is recorded as a use of the lead's hire grant, then the hire, then the grant.
    match &envs[0].event {
        Event::ActionPerformed { agent, chain, .. } => {
            assert_eq!((*agent, chain.as_slice()), (lead, &[hire_grant][..]));
        }
        other => panic!("first event {other:?}"),
    }
    assert_eq!(h.world.grant(hire_grant).unwrap().spent, 1);
    assert_eq!(h.world.agent(mailer).unwrap().parent, Some(lead));
    let g = h.world.grants_of(mailer).next().unwrap();
    assert_eq!(
        g.parent,
        Some(email),
        "derived from the lead's covering grant"
    );

    let (x, r) = (common::action("email.send"), resource("mailbox:alice"));
    let send = h.world.authorize(mailer, &x, &r, amount(1), h.now);
    assert_eq!(
        send,
        Authorization::Allow {
            chain: vec![g.id, email]
        }
    );
    let mailer = Actor::Agent(mailer);
    // Narrower than the lead: not bob's mailbox, not reading.
    refused(
        &mut h,
        act("email.send", "mailbox:bob", 1),
        &mailer,
        "email.send",
    );
    refused(
        &mut h,
        act("email.read", "mailbox:alice", 1),
        &mailer,
        "email.read",
    );
    h.ok(act("email.send", "mailbox:alice", 1), &mailer);
}

#[test]
fn a_lead_cannot_hire_with_a_wider_grant() {
    let (mut h, team, lead) = team_with_lead(LEAD);
    let r = refused(
        &mut h,
        hire(team, "greedy", vec![cap("email.*@**")]),
        &Actor::Agent(lead),
        "agent.hire",
    );
    assert!(matches!(*r.rejection, Rejection::NotCovered { .. }), "{r}");
    // The closest grant is named: same action family, narrower resource.
    says(
        &r,
        &[
            "cannot grant `email.*@**`",
            "`email.*@**` asks for more than `email.*@mailbox:*` allows",
        ],
    );
    assert_eq!(h.world.agents().count(), 1, "nobody was hired");
    let hire_grant = grant(&h, lead, "agent.hire@team:research,budget=2");
    assert_eq!(
        h.world.grant(hire_grant).unwrap().spent,
        0,
        "a refused hire spends nothing"
    );
}

#[test]
fn a_lead_cannot_loosen_a_limit() {
    let (mut h, team, lead) = team_with_lead(LEAD);
    let lead = Actor::Agent(lead);
    let cases = [
        (
            "deploy.run@env:prod",
            "`deploy.*@env:*,approval` needs approval for each use; the request must keep `approval`",
        ),
        (
            "spend.usd@*,budget=150",
            "budget=150 is above the budget=100 of `spend.usd@*,budget=100`",
        ),
        (
            "spend.usd@*",
            "`spend.usd@*,budget=100` has budget=100; the request must keep a budget of at most 100",
        ),
        (
            "repo.push@repo:api,expires=2032-01-01T00:00:00Z",
            "expires=2032-01-01T00:00:00Z is later than the expiry 2031-01-01T00:00:00Z",
        ),
        (
            "repo.push@repo:api",
            "expires at 2031-01-01T00:00:00Z; the request must expire no later",
        ),
    ];
    for (asked, why) in cases {
        let r = refused(
            &mut h,
            hire(team, "loose", vec![cap(asked)]),
            &lead,
            "agent.hire",
        );
        assert!(matches!(*r.rejection, Rejection::NotCovered { .. }), "{r}");
        says(&r, &[&format!("cannot grant `{asked}`"), why]);
    }
    // Kept limits are fine.
    h.ok(
        hire(
            team,
            "careful",
            vec![
                cap("deploy.run@env:prod,approval"),
                cap("spend.usd@vendor:acme,budget=100"),
                cap("repo.push@repo:api,expires=2030-06-01T00:00:00Z"),
            ],
        ),
        &lead,
    );
}

/// `hire`, with a home disk of `mib`.
fn hire_disk(team: TeamId, agent_name: &str, mib: u32, grants: Vec<&str>) -> Command {
    let mut command = hire(team, agent_name, grants.into_iter().map(cap).collect());
    if let Command::Hire { disk, .. } = &mut command {
        *disk = DiskMib::new(mib).unwrap();
    }
    command
}

#[test]
fn a_hire_records_its_home_disk_right_after_the_agent() {
    let mut h = Harness::new();
    let team = h.team("research");
    let envs = h.ok(hire_disk(team, "lead", 2048, vec![]), &operator());
    let lead = common::hired_agent(&envs).unwrap();
    let kinds: Vec<&str> = envs.iter().map(|e| e.event.kind()).collect();
    assert_eq!(kinds, ["AgentHired", "AgentDiskLimited"]);
    assert_eq!(
        envs[1].event,
        Event::AgentDiskLimited {
            agent: lead,
            disk_mib: 2048
        }
    );
    assert_eq!(h.world.agent(lead).unwrap().disk().get(), 2048);
    // Before the grants it comes with.
    let envs = h.ok(
        hire_disk(team, "scout", 64, vec!["spend.usd@*,budget=1"]),
        &operator(),
    );
    let kinds: Vec<&str> = envs.iter().map(|e| e.event.kind()).collect();
    assert_eq!(kinds, ["AgentHired", "AgentDiskLimited", "GrantIssued"]);
}

#[test]
fn a_lead_hires_no_teammate_with_a_larger_home_disk() {
    let mut h = Harness::new();
    let team = h.team("research");
    let envs = h.ok(
        hire_disk(team, "lead", 1024, vec!["agent.hire@team:research"]),
        &operator(),
    );
    let lead = Actor::Agent(common::hired_agent(&envs).unwrap());
    let r = refused(
        &mut h,
        hire_disk(team, "big", 2048, vec![]),
        &lead,
        "agent.hire",
    );
    assert!(matches!(*r.rejection, Rejection::LooserSpec(_)), "{r}");
    says(
        &r,
        &[
            "less confined than its hirer",
            "its home disk 2048 MiB is above its hirer's 1024 MiB",
        ],
    );
    assert_eq!(h.world.agents().count(), 1, "nobody was hired");
    // As large, or smaller, is a hire.
    for (who, mib) in [("same", 1024), ("smaller", 64)] {
        let envs = h.ok(hire_disk(team, who, mib, vec![]), &lead);
        let hired = common::hired_agent(&envs).unwrap();
        assert_eq!(h.world.agent(hired).unwrap().disk().get(), mib);
    }
    // The operator sizes as it likes.
    h.ok(hire_disk(team, "huge", DiskMib::MAX, vec![]), &operator());
}

/// `hire`, with the spec `change` makes of the base one.
fn hire_with(team: TeamId, agent_name: &str, change: impl FnOnce(&mut AgentSpec)) -> Command {
    let mut command = hire(team, agent_name, vec![]);
    if let Command::Hire { spec, .. } = &mut command {
        change(spec);
    }
    command
}

#[test]
fn a_lead_hires_no_teammate_less_confined_than_itself() {
    let mut h = Harness::new();
    let team = h.team("research");
    fn tight(s: &mut AgentSpec) {
        s.runtime = RuntimeKind::Runsc;
        s.resources.memory_mib = 128;
        s.resources.timeout_secs = Some(600);
    }
    let envs = h.ok(
        {
            let mut c = hire_with(team, "lead", tight);
            if let Command::Hire { grants, .. } = &mut c {
                grants.push(cap("agent.hire@team:research"));
            }
            c
        },
        &operator(),
    );
    let lead = Actor::Agent(common::hired_agent(&envs).unwrap());
    type Change = fn(&mut AgentSpec);
    let looser: [(&str, &str, Change); 5] = [
        ("runc", "under runc, its hirer under gVisor", |s| {
            tight(s);
            s.runtime = RuntimeKind::Runc;
        }),
        ("base", "under runc", |_| {}),
        (
            "mem",
            "memory limit 256 MiB is above its hirer's 128 MiB",
            |s| {
                tight(s);
                s.resources.memory_mib = 256;
            },
        ),
        (
            "forever",
            "without a timeout, its hirer within 600 s",
            |s| {
                tight(s);
                s.resources.timeout_secs = None;
            },
        ),
        ("longer", "timeout 601 s is above its hirer's 600 s", |s| {
            tight(s);
            s.resources.timeout_secs = Some(601);
        }),
    ];
    for (who, why, change) in looser {
        let command = hire_with(team, who, change);
        let r = refused(&mut h, command, &lead, "agent.hire");
        assert!(matches!(*r.rejection, Rejection::LooserSpec(_)), "{r}");
        says(&r, &["less confined than its hirer", why]);
    }
    assert_eq!(h.world.agents().count(), 1, "nobody was hired");
    // As tight, or tighter, is a hire.
    h.ok(hire_with(team, "same", tight), &lead);
    h.ok(
        hire_with(team, "tighter", |s| {
            tight(s);
            s.resources.cpu_millis = 250;
            s.resources.timeout_secs = Some(60);
        }),
        &lead,
    );
    // The operator confines as it likes.
    h.ok(hire(team, "loose", vec![]), &operator());
}

#[test]
fn the_hire_budget_caps_hires() {
    let (mut h, team, lead) = team_with_lead(LEAD);
    let lead = Actor::Agent(lead);
    h.ok(hire(team, "one", vec![]), &lead);
    h.ok(hire(team, "two", vec![]), &lead);
    let r = refused(&mut h, hire(team, "three", vec![]), &lead, "agent.hire");
    assert!(
        matches!(
            *r.rejection,
            Rejection::Denied(DenyReason::BudgetExhausted {
                budget: 2,
                spent: 2,
                amount: 1,
                ..
            })
        ),
        "{r}"
    );
    says(&r, &["budget exhausted", "spent 2 of 2"]);
    // The operator is not limited by anyone's budget.
    h.ok(hire(team, "three", vec![]), &operator());
}

#[test]
fn revoking_the_leads_grant_voids_the_teammates() {
    let (mut h, team, lead) = team_with_lead(LEAD);
    let envs = h.ok(
        hire(team, "mailer", vec![cap("email.send@mailbox:alice")]),
        &Actor::Agent(lead),
    );
    let mailer = common::hired_agent(&envs).unwrap();
    let derived = h.world.grants_of(mailer).next().unwrap().id;
    let email = grant(&h, lead, "email.*@mailbox:*");

    // The teammate cannot revoke what it derives from; the lead can revoke what derives from
    // its own.
    let r = refused(
        &mut h,
        Command::Revoke { grant: email },
        &Actor::Agent(mailer),
        "grant.revoke",
    );
    assert!(matches!(*r.rejection, Rejection::NotYours(_)), "{r}");

    h.ok(Command::Revoke { grant: email }, &operator());
    assert!(!h.world.is_active(derived, h.now));
    let r = refused(
        &mut h,
        act("email.send", "mailbox:alice", 1),
        &Actor::Agent(mailer),
        "email.send",
    );
    assert_eq!(*r.rejection, Rejection::Denied(DenyReason::Revoked(email)));
    says(&r, &["was revoked"]);
    let r = refused(
        &mut h,
        act("email.send", "mailbox:alice", 1),
        &Actor::Agent(lead),
        "email.send",
    );
    says(&r, &["was revoked"]);
    // Revoking twice is refused, plainly for the operator.
    let r = refused(&mut h, Command::Revoke { grant: email }, &operator(), "");
    assert_eq!(*r.rejection, Rejection::AlreadyRevoked(email));
}

#[test]
fn a_lead_revokes_what_it_gave() {
    let (mut h, team, lead) = team_with_lead(LEAD);
    let envs = h.ok(
        hire(team, "mailer", vec![cap("email.send@mailbox:alice")]),
        &Actor::Agent(lead),
    );
    let mailer = common::hired_agent(&envs).unwrap();
    let derived = h.world.grants_of(mailer).next().unwrap().id;
    h.ok(Command::Revoke { grant: derived }, &Actor::Agent(lead));
    refused(
        &mut h,
        act("email.send", "mailbox:alice", 1),
        &Actor::Agent(mailer),
        "email.send",
    );
    h.ok(act("email.send", "mailbox:alice", 1), &Actor::Agent(lead));
}

#[test]
fn retiring_the_lead_voids_everything_derived_from_its_grants() {
    let (mut h, team, lead) = team_with_lead(LEAD);
    let envs = h.ok(
        hire(
            team,
            "mailer",
            vec![
                cap("email.send@mailbox:alice"),
                cap("agent.hire@team:research,budget=1"),
            ],
        ),
        &Actor::Agent(lead),
    );
    let mailer = common::hired_agent(&envs).unwrap();
    let envs = h.ok(
        hire(team, "intern", vec![cap("email.send@mailbox:alice")]),
        &Actor::Agent(mailer),
    );
    let intern = common::hired_agent(&envs).unwrap();
    assert_eq!(h.world.agent(intern).unwrap().parent, Some(mailer));
    h.ok(act("email.send", "mailbox:alice", 1), &Actor::Agent(intern));

    h.ok(Command::Retire { agent: lead }, &operator());
    for agent in [mailer, intern] {
        assert!(h.world.active_grants_of(agent, h.now).is_empty());
        let r = refused(
            &mut h,
            act("email.send", "mailbox:alice", 1),
            &Actor::Agent(agent),
            "email.send",
        );
        assert!(
            matches!(
                *r.rejection,
                Rejection::Denied(DenyReason::HolderRetired(_))
            ),
            "{r}"
        );
        says(&r, &["retired agent"]);
    }
    // The lead itself can do nothing, and its refusals are still recorded.
    let r = refused(
        &mut h,
        act("email.send", "mailbox:alice", 1),
        &Actor::Agent(lead),
        "email.send",
    );
    assert_eq!(*r.rejection, Rejection::Retired(lead));
    refused(
        &mut h,
        hire(team, "late", vec![]),
        &Actor::Agent(lead),
        "agent.hire",
    );
    // Its name is free again.
    h.hire_as(&operator(), team, "lead", &["email.*@mailbox:*"]);
}

#[test]
fn an_expired_grant_voids_what_derives_from_it() {
    let (mut h, team, lead) = team_with_lead(&[
        "agent.hire@team:research",
        "repo.push@repo:*,expires=2030-01-01T02:00:00Z",
    ]);
    let envs = h.ok(
        hire(
            team,
            "pusher",
            vec![cap("repo.push@repo:api,expires=2030-01-01T02:00:00Z")],
        ),
        &Actor::Agent(lead),
    );
    let pusher = Actor::Agent(common::hired_agent(&envs).unwrap());
    h.ok(act("repo.push", "repo:api", 1), &pusher);
    h.now = "2030-01-01T02:00:00Z".parse().unwrap();
    let r = refused(
        &mut h,
        act("repo.push", "repo:api", 1),
        &pusher,
        "repo.push",
    );
    assert!(
        matches!(*r.rejection, Rejection::Denied(DenyReason::Expired(_))),
        "{r}"
    );
    says(&r, &["has expired"]);
    let r = refused(
        &mut h,
        hire(
            team,
            "late",
            vec![cap("repo.push@repo:web,expires=2030-01-01T02:00:00Z")],
        ),
        &Actor::Agent(lead),
        "agent.hire",
    );
    says(
        &r,
        &[
            "the grant that would cover it is not in force",
            "has expired",
        ],
    );
}

#[test]
fn a_budget_caps_the_sum_of_uses() {
    let (mut h, _, lead) = team_with_lead(&["spend.usd@*,budget=100"]);
    let lead = Actor::Agent(lead);
    h.ok(act("spend.usd", "vendor:acme", 60), &lead);
    let r = refused(
        &mut h,
        act("spend.usd", "vendor:acme", 50),
        &lead,
        "spend.usd",
    );
    assert!(
        matches!(
            *r.rejection,
            Rejection::Denied(DenyReason::BudgetExhausted {
                budget: 100,
                spent: 60,
                amount: 50,
                ..
            })
        ),
        "{r}"
    );
    says(
        &r,
        &["budget exhausted", "spent 60 of 100, 50 more does not fit"],
    );
    h.ok(act("spend.usd", "vendor:acme", 40), &lead);
    refused(&mut h, act("spend.usd", "usd", 1), &lead, "spend.usd");
}

#[test]
fn teammates_sharing_a_budget_cannot_overspend_it_together() {
    let (mut h, team, lead) =
        team_with_lead(&["agent.hire@team:research", "spend.usd@*,budget=100"]);
    let mut mates = Vec::new();
    for n in ["buyer-1", "buyer-2"] {
        let envs = h.ok(
            hire(team, n, vec![cap("spend.usd@*,budget=80")]),
            &Actor::Agent(lead),
        );
        mates.push(Actor::Agent(common::hired_agent(&envs).unwrap()));
    }
    let parent = grant(&h, lead, "spend.usd@*,budget=100");
    h.ok(act("spend.usd", "vendor:acme", 60), &mates[0]);
    let r = refused(
        &mut h,
        act("spend.usd", "vendor:acme", 50),
        &mates[1],
        "spend.usd",
    );
    assert!(
        matches!(
            *r.rejection,
            Rejection::Denied(DenyReason::BudgetExhausted { grant, spent: 60, .. }) if grant == parent
        ),
        "the shared parent is what runs out: {r}"
    );
    h.ok(act("spend.usd", "vendor:acme", 40), &mates[1]);
    assert_eq!(h.world.grant(parent).unwrap().spent, 100);
    for (i, m) in mates.iter().enumerate() {
        refused(&mut h, act("spend.usd", "vendor:acme", 1), m, "spend.usd");
        let Actor::Agent(id) = m else { unreachable!() };
        let own = h.world.grants_of(*id).next().unwrap();
        assert_eq!(own.spent, [60, 40][i]);
    }
    refused(
        &mut h,
        act("spend.usd", "vendor:acme", 1),
        &Actor::Agent(lead),
        "spend.usd",
    );
}

/// The lead may deploy with a human's approval; returns the harness, the lead and a pending
/// approval request for `deploy.run@env:prod`.
fn pending_deploy() -> (Harness, AgentId, ApprovalId) {
    let (mut h, _, lead) = team_with_lead(&["deploy.*@env:*,approval,budget=5"]);
    let envs = h.ok(act("deploy.run", "env:prod", 1), &Actor::Agent(lead));
    let Event::CallApprovalRequested {
        approval, chain, ..
    } = &envs[0].event
    else {
        panic!("expected an approval request, got {:?}", envs[0].event);
    };
    assert_eq!(
        chain,
        &[grant(&h, lead, "deploy.*@env:*,budget=5,approval")]
    );
    (h, lead, *approval)
}

fn decide_approval(approval: ApprovalId, approved: bool) -> Command {
    Command::DecideApproval {
        approval,
        approved,
        note: Some(Label::parse("reviewed the change").unwrap()),
    }
}

#[test]
fn an_approval_allows_one_use_once_decided_by_an_operator() {
    let (mut h, lead, approval) = pending_deploy();
    let agent = Actor::Agent(lead);
    let use_it = || act_with("deploy.run", "env:prod", 1, approval);

    let r = refused(&mut h, use_it(), &agent, "deploy.run");
    says(&r, &["no one has decided it yet"]);
    let r = refused(
        &mut h,
        decide_approval(approval, true),
        &agent,
        "approval.decide",
    );
    assert_eq!(*r.rejection, Rejection::OperatorOnly("decide an approval"));

    h.ok(decide_approval(approval, true), &operator());
    let ap = h.world.approval(approval).unwrap();
    assert_eq!(
        ap.decision.as_ref().map(|d| (d.approved, d.by.clone())),
        Some((true, operator()))
    );

    // Only for what was asked.
    let r = refused(
        &mut h,
        act_with("deploy.run", "env:staging", 1, approval),
        &agent,
        "deploy.run",
    );
    says(&r, &["another agent, action, resource or amount"]);

    let envs = h.ok(use_it(), &agent);
    match &envs[0].event {
        Event::ActionPerformed {
            approval: used,
            chain,
            ..
        } => {
            assert_eq!(*used, Some(approval));
            assert_eq!(h.world.grant(chain[0]).unwrap().spent, 1);
        }
        other => panic!("{other:?}"),
    }
    assert!(h.world.approval(approval).unwrap().used);
    let r = refused(&mut h, use_it(), &agent, "deploy.run");
    says(&r, &["already used", "one use"]);
    // A second decision is refused.
    let r = refused(&mut h, decide_approval(approval, false), &operator(), "");
    says(&r, &["already decided"]);
}

#[test]
fn a_refused_approval_cannot_be_used() {
    let (mut h, lead, approval) = pending_deploy();
    h.ok(decide_approval(approval, false), &operator());
    let r = refused(
        &mut h,
        act_with("deploy.run", "env:prod", 1, approval),
        &Actor::Agent(lead),
        "deploy.run",
    );
    says(&r, &["it was refused"]);
    // Asking again makes a new request; the refusal stands.
    let envs = h.ok(act("deploy.run", "env:prod", 1), &Actor::Agent(lead));
    assert!(
        matches!(&envs[0].event, Event::CallApprovalRequested { approval: a, .. } if *a != approval)
    );
}

#[test]
fn another_agent_cannot_use_an_approval() {
    let (mut h, lead, approval) = pending_deploy();
    let team = h.world.agent(lead).unwrap().team;
    let other = h.hire_as(&operator(), team, "other", &["deploy.*@env:*,approval"]);
    h.ok(decide_approval(approval, true), &operator());
    let r = refused(
        &mut h,
        act_with("deploy.run", "env:prod", 1, approval),
        &Actor::Agent(other),
        "deploy.run",
    );
    says(&r, &["another agent"]);
    assert!(!h.world.approval(approval).unwrap().used);
}

#[test]
fn an_approved_use_still_needs_the_grant_in_force() {
    let (mut h, lead, approval) = pending_deploy();
    h.ok(decide_approval(approval, true), &operator());
    let g = grant(&h, lead, "deploy.*@env:*,budget=5,approval");
    h.ok(Command::Revoke { grant: g }, &operator());
    let r = refused(
        &mut h,
        act_with("deploy.run", "env:prod", 1, approval),
        &Actor::Agent(lead),
        "deploy.run",
    );
    assert_eq!(*r.rejection, Rejection::Denied(DenyReason::Revoked(g)));
}

#[test]
fn agents_are_refused_operator_commands_and_the_refusal_is_recorded() {
    let (mut h, team, lead) = team_with_lead(&["email.*@mailbox:*"]);
    let agent = Actor::Agent(lead);
    let r = refused(
        &mut h,
        Command::CreateTeam {
            name: name("shadow"),
        },
        &agent,
        "team.create",
    );
    assert_eq!(*r.rejection, Rejection::OperatorOnly("create a team"));
    let r = refused(&mut h, hire(team, "x", vec![]), &agent, "agent.hire");
    assert!(
        matches!(*r.rejection, Rejection::Denied(DenyReason::NoGrant { .. })),
        "{r}"
    );
    let r = refused(
        &mut h,
        Command::Retire { agent: lead },
        &agent,
        "agent.retire",
    );
    says(&r, &["no grant allows agent.retire on team:research"]);
    let r = refused(
        &mut h,
        Command::Grant {
            to: lead,
            capability: cap("email.send@mailbox:alice"),
            from: None,
            key: None,
        },
        &agent,
        "grant.delegate",
    );
    says(&r, &["no grant allows grant.delegate on team:research"]);
    // The runtime does not hire or act.
    let r = refused(&mut h, hire(team, "y", vec![]), &Actor::Runtime, "");
    assert!(r.audit.is_none());
    // Every refusal above is in the log.
    let denials = h
        .log
        .iter()
        .filter(|e| matches!(e.event, Event::AccessDenied { .. }))
        .count();
    assert_eq!(denials, 4);
}

#[test]
fn probing_for_ids_is_recorded_too() {
    let (mut h, _, lead) = team_with_lead(&["email.*@mailbox:*"]);
    let agent = Actor::Agent(lead);
    // Ids from another log: they name nothing here.
    let mut other = Harness::new();
    other.entropy = roster_core::id::CountingEntropy::new(1_000_000);
    let far_team = other.team("elsewhere");
    let far_agent = other.hire_as(&operator(), far_team, "far", &["a@b"]);
    let far_grant = other.world.grants_of(far_agent).next().unwrap().id;

    let r = refused(
        &mut h,
        Command::Revoke { grant: far_grant },
        &agent,
        "grant.revoke",
    );
    assert!(
        matches!(*r.rejection, Rejection::NotFound { what: "grant", .. }),
        "{r}"
    );
    let r = refused(
        &mut h,
        Command::Retire { agent: far_agent },
        &agent,
        "agent.retire",
    );
    assert!(
        matches!(*r.rejection, Rejection::NotFound { what: "agent", .. }),
        "{r}"
    );
    let r = refused(&mut h, hire(far_team, "x", vec![]), &agent, "agent.hire");
    assert!(
        matches!(*r.rejection, Rejection::NotFound { what: "team", .. }),
        "{r}"
    );
}

#[test]
fn operator_grants_are_roots_or_derive_from_a_named_grant() {
    let (mut h, team, lead) = team_with_lead(&["email.*@mailbox:*"]);
    let mate = h.hire_as(&operator(), team, "mate", &[]);
    let email = grant(&h, lead, "email.*@mailbox:*");
    let root = |c: &str| Command::Grant {
        to: mate,
        capability: cap(c),
        from: None,
        key: None,
    };
    let envs = h.ok(root("calendar.*@**"), &operator());
    assert!(matches!(
        &envs[0].event,
        Event::GrantIssued { parent: None, .. }
    ));
    let derived = |c: &str| Command::Grant {
        to: mate,
        capability: cap(c),
        from: Some(email),
        key: None,
    };
    let envs = h.ok(derived("email.send@mailbox:bob"), &operator());
    assert!(matches!(&envs[0].event, Event::GrantIssued { parent: Some(p), .. } if *p == email));
    let r = refused(&mut h, derived("email.send@**"), &operator(), "");
    assert!(matches!(*r.rejection, Rejection::NotCovered { .. }), "{r}");
}

/// A teammate holding `agent.retire` may retire its own hires, never its hirer or a peer:
/// otherwise it could void the whole tree of grants above it.
#[test]
fn agents_retire_only_their_own_hires() {
    let (mut h, team, lead) = team_with_lead(&[
        "agent.hire@team:research,budget=5",
        "agent.retire@team:research",
    ]);
    let by = |a| Actor::Agent(a);
    let mate = h.hire_as(
        &by(lead),
        team,
        "mate",
        &[
            "agent.hire@team:research,budget=2",
            "agent.retire@team:research",
        ],
    );
    let peer = h.hire_as(&by(lead), team, "peer", &[]);
    let junior = h.hire_as(&by(mate), team, "junior", &[]);
    for target in [lead, peer] {
        let r = refused(
            &mut h,
            Command::Retire { agent: target },
            &by(mate),
            "agent.retire",
        );
        says(&r, &["was not hired by the asking agent"]);
    }
    h.ok(Command::Retire { agent: junior }, &by(mate));
    h.ok(Command::Retire { agent: mate }, &by(lead));
}

#[test]
fn only_the_runtime_records_a_container_lifecycle_and_it_drives_the_wanted_state() {
    use roster_core::command::Lifecycle;
    use roster_core::event::StopReason;
    let (mut h, team, lead) = team_with_lead(&["agent.hire@team:research,budget=1"]);
    let mate = h.hire_as(&Actor::Agent(lead), team, "mate", &[]);
    let wants = |h: &Harness| h.world.agent(mate).unwrap().wants_running();
    let life = |change| Command::Lifecycle {
        agent: mate,
        change,
    };
    assert!(wants(&h), "a new hire is wanted running");
    // An agent cannot forge its own (or a teammate's) lifecycle, and trying is recorded.
    let r = refused(
        &mut h,
        life(Lifecycle::Stopped(StopReason::Requested)),
        &Actor::Agent(mate),
        "agent.lifecycle",
    );
    says(&r, &["only the runtime"]);
    h.ok(life(Lifecycle::Started("c1".into())), &Actor::Runtime);
    assert!(wants(&h));
    for (reason, wanted) in [
        (StopReason::Exited { code: 0 }, true),
        (StopReason::Crashed { code: 139 }, true),
        (StopReason::OomKilled, true),
        (StopReason::TimedOut, false),
        (StopReason::Requested, false),
    ] {
        h.ok(life(Lifecycle::Stopped(reason)), &Actor::Runtime);
        assert_eq!(wants(&h), wanted, "after {reason:?}");
    }
    // An operator's stop is recorded as theirs.
    h.ok(life(Lifecycle::Stopped(StopReason::Requested)), &operator());
    h.ok(Command::Retire { agent: mate }, &operator());
    assert!(!wants(&h), "a retired agent is never wanted");
    let r = h
        .decide(life(Lifecycle::Started("c2".into())), &Actor::Runtime)
        .unwrap_err();
    assert!(matches!(*r.rejection, Rejection::Retired(_)), "{r}");
}

#[test]
fn an_agent_may_keep_only_so_many_approvals_waiting() {
    let (mut h, _, lead) = team_with_lead(&["deploy.*@env:*,approval"]);
    let agent = Actor::Agent(lead);
    let mut asked = Vec::new();
    for _ in 0..16 {
        let envs = h.ok(act("deploy.run", "env:prod", 1), &agent);
        let Event::CallApprovalRequested { approval, .. } = &envs[0].event else {
            panic!("expected an approval request, got {:?}", envs[0].event);
        };
        asked.push(*approval);
    }
    // One more waits for none: refused, recorded, nothing asked.
    let r = refused(
        &mut h,
        act("deploy.run", "env:prod", 1),
        &agent,
        "deploy.run",
    );
    says(
        &r,
        &["16 approvals of this agent wait for an operator already"],
    );
    // Once one is decided, it may ask again.
    h.ok(decide_approval(asked[0], false), &operator());
    h.ok(act("deploy.run", "env:prod", 1), &agent);
    // What waits is known without a walk of every approval, and agrees with one, after a fold
    // of the log too.
    let scan = |w: &World| -> Vec<ApprovalId> {
        let mut ids: Vec<_> = w
            .approvals()
            .filter(|a| a.decision.is_none())
            .map(|a| a.id)
            .collect();
        ids.sort();
        ids
    };
    let indexed = |w: &World| -> Vec<ApprovalId> {
        let mut ids: Vec<_> = w
            .waiting_approvals(Some(lead))
            .iter()
            .map(|a| a.id)
            .collect();
        ids.sort();
        ids
    };
    assert_eq!(h.world.waiting_count(lead), 16);
    assert_eq!(indexed(&h.world), scan(&h.world));
    assert!(!indexed(&h.world).contains(&asked[0]));
    let folded = World::fold(&h.log).unwrap();
    assert_eq!(indexed(&folded), scan(&h.world));
    assert_eq!(folded.waiting_approvals(None).len(), 16);
}
