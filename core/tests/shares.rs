//! Shares between teams, told as stories and then checked against a model: a share opens only
//! with both teams' consent, each step taken for a team by an operator or by that team's own
//! agent holding the step's grant; context crosses only through an open share whose pattern
//! matches; every refusal of an agent leaves exactly one `AccessDenied`. Every accepted decision
//! is folded with `apply_checked` (the harness does), so `decide`'s output obeys the log's rules.

// Test code, helpers included: a failed unwrap or a panic is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{action, name, operator, resource, Harness};
use proptest::prelude::*;
use roster_core::actor::Actor;
use roster_core::authz::DenyReason;
use roster_core::command::{Command, Rejected, Rejection, MAX_REASON};
use roster_core::envelope::{Envelope, Hash};
use roster_core::event::Event;
use roster_core::id::{AgentId, ShareId, TeamId};
use roster_core::topic::{Topic, TopicPattern};
use roster_core::world::ShareState;

fn topic(s: &str) -> Topic {
    Topic::parse(s).unwrap()
}

fn propose(from: TeamId, to: TeamId, pattern: &str) -> Command {
    Command::ProposeShare {
        from,
        to,
        topics: TopicPattern::parse(pattern).unwrap(),
    }
}

fn send(to: TeamId, t: &str) -> Command {
    Command::ShareContext {
        to,
        topic: topic(t),
        digest: Hash::of(t.as_bytes()),
        size: 42,
    }
}

fn denial(agent: AgentId, reason: String) -> Command {
    Command::RecordDenial {
        agent,
        action: action("context.share"),
        resource: resource("team:product"),
        reason,
    }
}

fn by(a: AgentId) -> Actor {
    Actor::Agent(a)
}

/// Runs a command that must be refused. Checks it changed nothing and, for an agent, that the
/// refusal carries exactly one `AccessDenied` — the agent's own, in its own team, naming
/// `tried` on `on` with the refusal's sentence — and folds it; for anyone else, that nothing is
/// recorded.
fn refused(h: &mut Harness, command: Command, actor: &Actor, tried: &str, on: &str) -> Rejected {
    let before = h.world.clone();
    let log_len = h.log.len();
    let shown = format!("{command:?}");
    let r = match h.run(command, actor) {
        Ok(envs) => panic!("{shown} by {actor} was accepted: {envs:?}"),
        Err(r) => r,
    };
    match actor {
        Actor::Agent(a) => {
            let team = before.agent(*a).unwrap().team;
            assert_eq!(h.log.len(), log_len + 1, "one record of the refusal");
            let env = h.log.last().unwrap();
            assert_eq!(env.team, team, "recorded in the agent's own team");
            match &env.event {
                Event::AccessDenied {
                    agent,
                    action,
                    resource,
                    reason,
                } => {
                    assert_eq!(agent, a);
                    assert_eq!((action.as_str(), resource.as_str()), (tried, on));
                    assert_eq!(reason, &r.rejection.to_string());
                }
                other => panic!("the record is not an AccessDenied: {other:?}"),
            }
            assert_eq!(
                h.world.shares().collect::<Vec<_>>(),
                before.shares().collect::<Vec<_>>()
            );
        }
        _ => {
            assert!(r.audit.is_none(), "{actor}'s refusal is audited");
            assert_eq!(h.world, before, "a refusal changed the world");
        }
    }
    r
}

fn says(r: &Rejected, words: &str) {
    let text = r.to_string();
    assert!(text.contains(words), "`{text}` does not say `{words}`");
}

/// The share a `ShareProposed` among `envs` created.
fn proposed(envs: &[Envelope]) -> ShareId {
    envs.iter()
        .find_map(|e| match e.event {
            Event::ShareProposed { share, .. } => Some(share),
            _ => None,
        })
        .unwrap()
}

/// Three teams: `research` exports, `product` imports, `legal` stands by. Each has a
/// lead holding the share grants of its own team, and `research` a scout holding none.
struct Teams {
    h: Harness,
    research: TeamId,
    product: TeamId,
    legal: TeamId,
    rlead: AgentId,
    scout: AgentId,
    plead: AgentId,
    llead: AgentId,
}

fn teams() -> Teams {
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
    let plead = h.hire_as(
        &operator(),
        product,
        "lead",
        &["share.accept@team:product", "share.close@team:product"],
    );
    let llead = h.hire_as(&operator(), legal, "lead", &["share.*@team:*"]);
    Teams {
        h,
        research,
        product,
        legal,
        rlead,
        scout,
        plead,
        llead,
    }
}

impl Teams {
    /// A share `research → product` on `pattern`, proposed by research's lead and, if `open`,
    /// accepted by product's.
    fn share(&mut self, pattern: &str, open: bool) -> ShareId {
        let envs = self.h.ok(
            propose(self.research, self.product, pattern),
            &by(self.rlead),
        );
        let share = proposed(&envs);
        if open {
            self.h.ok(Command::AcceptShare { share }, &by(self.plead));
        }
        share
    }
}

#[test]
fn a_share_opens_with_both_teams_consent_and_carries_matching_topics() {
    let mut t = teams();
    let envs =
        t.h.ok(propose(t.research, t.product, "findings/**"), &by(t.rlead));
    // The use of the lead's grant, then the offer, both in the exporting team.
    assert!(envs.iter().all(|e| e.team == t.research));
    match (&envs[0].event, &envs[1].event) {
        (
            Event::ActionPerformed {
                action, resource, ..
            },
            Event::ShareProposed { to, topics, .. },
        ) => {
            assert_eq!(
                (action.as_str(), resource.as_str()),
                ("share.propose", "team:research")
            );
            assert_eq!((*to, topics.as_str()), (t.product, "findings/**"));
        }
        other => panic!("{other:?}"),
    }
    let share = proposed(&envs);
    assert_eq!(t.h.world.share(share).unwrap().state, ShareState::Proposed);

    let envs = t.h.ok(Command::AcceptShare { share }, &by(t.plead));
    assert!(
        envs.iter().all(|e| e.team == t.product),
        "accepted in the importing team"
    );
    assert!(matches!(envs.last().unwrap().event, Event::ShareAccepted { share: s } if s == share));
    assert_eq!(t.h.world.share(share).unwrap().state, ShareState::Open);

    // Any agent of the exporting team sends; no grant of its own is needed.
    let envs = t.h.ok(send(t.product, "findings/daily"), &by(t.scout));
    assert_eq!(envs.len(), 1);
    assert_eq!(
        envs[0].team, t.research,
        "the crossing is recorded where it leaves"
    );
    assert_eq!(
        envs[0].event,
        Event::ContextShared {
            share,
            sender: t.scout,
            topic: topic("findings/daily"),
            digest: Hash::of(b"findings/daily"),
            size: 42,
        }
    );
    assert_eq!(t.h.world.share(share).unwrap().crossings, 1);
    assert_eq!(
        t.h.world
            .crossing_allowed(share, t.research, t.product, &topic("findings/a/b")),
        Ok(())
    );
    let mine: Vec<ShareId> = t.h.world.shares_of(t.product).map(|s| s.id).collect();
    assert_eq!(mine, [share]);
    assert_eq!(t.h.world.shares_of(t.legal).count(), 0);
}

#[test]
fn operators_propose_accept_and_close_without_grants() {
    let mut t = teams();
    let envs = t.h.ok(propose(t.product, t.legal, "notes/*"), &operator());
    assert_eq!(envs.len(), 1, "an operator's step records no use");
    let share = proposed(&envs);
    let envs = t.h.ok(Command::AcceptShare { share }, &operator());
    assert_eq!(envs[0].team, t.legal);
    let envs = t.h.ok(Command::CloseShare { share }, &operator());
    assert_eq!(
        envs[0].team, t.product,
        "an operator's close goes to the exporting team"
    );
    assert_eq!(t.h.world.share(share).unwrap().state, ShareState::Closed);
    let r = refused(&mut t.h, Command::CloseShare { share }, &operator(), "", "");
    assert_eq!(
        *r.rejection,
        Rejection::Share {
            id: share,
            why: "it is already closed"
        }
    );
    // The runtime takes no step for a team.
    let r = refused(
        &mut t.h,
        propose(t.product, t.legal, "a"),
        &Actor::Runtime,
        "",
        "",
    );
    assert!(matches!(*r.rejection, Rejection::OperatorOnly(_)), "{r}");
    let share = t.share("a/**", false);
    for command in [
        Command::AcceptShare { share },
        Command::CloseShare { share },
    ] {
        refused(&mut t.h, command, &Actor::Runtime, "", "");
    }
}

#[test]
fn proposing_needs_the_grant_and_membership_of_the_exporting_team() {
    let mut t = teams();
    // Legal's lead holds `share.*@team:*`, yet it speaks for its own team only.
    let r = refused(
        &mut t.h,
        propose(t.research, t.product, "findings/**"),
        &by(t.llead),
        "share.propose",
        "team:research",
    );
    assert_eq!(
        *r.rejection,
        Rejection::NotInTeam {
            agent: t.llead,
            team: name("research"),
            what: "propose its shares"
        }
    );
    says(
        &r,
        "is not in team research; only that team's agents may propose its shares",
    );
    // Product's lead cannot make research export to it either.
    refused(
        &mut t.h,
        propose(t.research, t.product, "**"),
        &by(t.plead),
        "share.propose",
        "team:research",
    );
    // A member without the grant.
    let r = refused(
        &mut t.h,
        propose(t.research, t.product, "findings/**"),
        &by(t.scout),
        "share.propose",
        "team:research",
    );
    assert!(
        matches!(*r.rejection, Rejection::Denied(DenyReason::NoGrant { .. })),
        "{r}"
    );
    says(&r, "no grant allows share.propose on team:research");
    // A team never shares with itself.
    let r = refused(
        &mut t.h,
        propose(t.research, t.research, "findings/**"),
        &by(t.rlead),
        "share.propose",
        "team:research",
    );
    assert_eq!(*r.rejection, Rejection::SameTeam(name("research")));
    refused(
        &mut t.h,
        propose(t.legal, t.legal, "a"),
        &operator(),
        "",
        "",
    );
    // Teams that do not exist.
    let mut far = Harness::new();
    far.entropy = roster_core::id::CountingEntropy::new(1_000_000);
    let nowhere = far.team("nowhere");
    let r = refused(
        &mut t.h,
        propose(t.research, nowhere, "a"),
        &by(t.rlead),
        "share.propose",
        "team:research",
    );
    assert!(
        matches!(*r.rejection, Rejection::NotFound { what: "team", .. }),
        "{r}"
    );
    refused(
        &mut t.h,
        propose(nowhere, t.product, "a"),
        &by(t.rlead),
        "share.propose",
        &format!("team:{nowhere}"),
    );
    assert_eq!(t.h.world.shares().count(), 0);
}

#[test]
fn a_share_grant_with_approval_or_a_retired_proposer_is_refused() {
    let mut t = teams();
    let careful = t.h.hire_as(
        &operator(),
        t.research,
        "careful",
        &["share.propose@team:research,approval"],
    );
    let r = refused(
        &mut t.h,
        propose(t.research, t.product, "a"),
        &by(careful),
        "share.propose",
        "team:research",
    );
    assert_eq!(*r.rejection, Rejection::NeedsApproval("share.propose"));
    // A budget caps proposals.
    let once = t.h.hire_as(
        &operator(),
        t.research,
        "once",
        &["share.propose@team:research,budget=1"],
    );
    t.h.ok(propose(t.research, t.product, "a"), &by(once));
    let r = refused(
        &mut t.h,
        propose(t.research, t.product, "b"),
        &by(once),
        "share.propose",
        "team:research",
    );
    says(&r, "budget exhausted");
    t.h.ok(Command::Retire { agent: t.rlead }, &operator());
    let r = refused(
        &mut t.h,
        propose(t.research, t.product, "a"),
        &by(t.rlead),
        "share.propose",
        "team:research",
    );
    assert_eq!(*r.rejection, Rejection::Retired(t.rlead));
}

#[test]
fn only_the_importing_team_accepts_and_only_a_proposed_share() {
    let mut t = teams();
    let share = t.share("findings/**", false);
    // The exporter cannot consent for the importer, even holding `share.accept` everywhere.
    let eager =
        t.h.hire_as(&operator(), t.research, "eager", &["share.accept@team:*"]);
    let r = refused(
        &mut t.h,
        Command::AcceptShare { share },
        &by(eager),
        "share.accept",
        "team:product",
    );
    says(
        &r,
        "is not in team product; only that team's agents may accept the shares offered to it",
    );
    // A bystander team neither.
    refused(
        &mut t.h,
        Command::AcceptShare { share },
        &by(t.llead),
        "share.accept",
        "team:product",
    );
    // An importer without the grant.
    let intern = t.h.hire_as(&operator(), t.product, "intern", &[]);
    let r = refused(
        &mut t.h,
        Command::AcceptShare { share },
        &by(intern),
        "share.accept",
        "team:product",
    );
    says(&r, "no grant allows share.accept on team:product");
    assert_eq!(t.h.world.share(share).unwrap().state, ShareState::Proposed);

    t.h.ok(Command::AcceptShare { share }, &by(t.plead));
    let r = refused(
        &mut t.h,
        Command::AcceptShare { share },
        &by(t.plead),
        "share.accept",
        "team:product",
    );
    says(&r, "it is already open");
    t.h.ok(Command::CloseShare { share }, &by(t.plead));
    let r = refused(
        &mut t.h,
        Command::AcceptShare { share },
        &operator(),
        "",
        "",
    );
    says(&r, "it is closed");
    // A share id from nowhere.
    let ghost = ShareId::mint(
        t.h.now,
        &mut roster_core::id::CountingEntropy::new(9_999_999),
    );
    let r = refused(
        &mut t.h,
        Command::AcceptShare { share: ghost },
        &by(t.plead),
        "share.accept",
        &format!("share:{ghost}"),
    );
    assert!(
        matches!(*r.rejection, Rejection::NotFound { what: "share", .. }),
        "{r}"
    );
}

#[test]
fn either_side_closes_once_and_nothing_flows_after() {
    let mut t = teams();
    // A proposal withdrawn by its exporter, another declined by its importer.
    let withdrawn = t.share("a/**", false);
    let envs =
        t.h.ok(Command::CloseShare { share: withdrawn }, &by(t.rlead));
    assert!(
        envs.iter().all(|e| e.team == t.research),
        "closed in the closer's team"
    );
    let declined = t.share("b/**", false);
    let envs =
        t.h.ok(Command::CloseShare { share: declined }, &by(t.plead));
    assert!(
        envs.iter().all(|e| e.team == t.product),
        "closed in the closer's team"
    );
    let r = refused(
        &mut t.h,
        Command::AcceptShare { share: declined },
        &by(t.plead),
        "share.accept",
        "team:product",
    );
    says(&r, "it is closed");

    let open = t.share("findings/**", true);
    t.h.ok(send(t.product, "findings/x"), &by(t.scout));
    // Not a side: legal's lead holds `share.*@team:*` and still may not close it.
    let r = refused(
        &mut t.h,
        Command::CloseShare { share: open },
        &by(t.llead),
        "share.close",
        "team:legal",
    );
    says(&r, "the asking agent's team is on neither side of it");
    // A side without the grant.
    let r = refused(
        &mut t.h,
        Command::CloseShare { share: open },
        &by(t.scout),
        "share.close",
        "team:research",
    );
    says(&r, "no grant allows share.close on team:research");
    t.h.ok(Command::CloseShare { share: open }, &by(t.plead));
    let r = refused(
        &mut t.h,
        Command::CloseShare { share: open },
        &by(t.rlead),
        "share.close",
        "team:research",
    );
    says(&r, "it is already closed");
    let r = refused(
        &mut t.h,
        send(t.product, "findings/x"),
        &by(t.scout),
        "context.share",
        "team:product",
    );
    says(
        &r,
        "no open share from team research to team product covers topic `findings/x`",
    );
    assert_eq!(t.h.world.share(open).unwrap().crossings, 1);
    assert_eq!(
        t.h.world
            .crossing_allowed(open, t.research, t.product, &topic("findings/x")),
        Err(format!("share {open} is closed"))
    );
}

#[test]
fn context_crosses_only_through_an_open_share_whose_pattern_matches() {
    let mut t = teams();
    let pending = t.share("drafts/**", false);
    let open = t.share("findings/**", true);
    let sentence = |from: &str, to: &str, topic: &str| {
        format!("no open share from team {from} to team {to} covers topic `{topic}`")
    };
    let cases = [
        // (sender, to, topic, the refusal's sentence)
        (
            t.scout,
            t.product,
            "drafts/x",
            sentence("research", "product", "drafts/x"),
        ),
        (
            t.scout,
            t.product,
            "findingsx/a",
            sentence("research", "product", "findingsx/a"),
        ),
        (
            t.scout,
            t.product,
            "findings",
            sentence("research", "product", "findings"),
        ),
        (
            t.scout,
            t.product,
            "other/findings/a",
            sentence("research", "product", "other/findings/a"),
        ),
        // A share goes one way: the importer cannot send back through it.
        (
            t.plead,
            t.research,
            "findings/a",
            sentence("product", "research", "findings/a"),
        ),
        // Nor can a third team use it.
        (
            t.llead,
            t.product,
            "findings/a",
            sentence("legal", "product", "findings/a"),
        ),
    ];
    for (sender, to, tpc, why) in cases {
        let to_name = t.h.world.team(to).unwrap().name.clone();
        let r = refused(
            &mut t.h,
            send(to, tpc),
            &by(sender),
            "context.share",
            &format!("team:{to_name}"),
        );
        assert_eq!(r.rejection.to_string(), why);
        assert!(matches!(*r.rejection, Rejection::NoOpenShare { .. }), "{r}");
    }
    // To its own team: not a crossing at all.
    let r = refused(
        &mut t.h,
        send(t.research, "findings/a"),
        &by(t.scout),
        "context.share",
        "team:research",
    );
    assert_eq!(*r.rejection, Rejection::SameTeam(name("research")));
    // What the pattern matches does cross, at any depth below `findings`.
    for tpc in ["findings/a", "findings/a/b/c"] {
        let envs = t.h.ok(send(t.product, tpc), &by(t.rlead));
        assert!(matches!(envs[0].event, Event::ContextShared { share, .. } if share == open));
    }
    assert_eq!(t.h.world.share(pending).unwrap().crossings, 0);
    // The arrival check says why not.
    let w = &t.h.world;
    let f = |s, from, to, tp: &str| w.crossing_allowed(s, from, to, &topic(tp));
    assert_eq!(
        f(pending, t.research, t.product, "drafts/x"),
        Err(format!("share {pending} was never accepted"))
    );
    assert_eq!(
        f(open, t.research, t.product, "findingsx/a"),
        Err(format!(
            "share {open} covers topics `findings/**`, not `findingsx/a`"
        ))
    );
    assert_eq!(
        f(open, t.product, t.research, "findings/a"),
        Err(format!(
            "share {open} goes from team research to team product, not from team product to team research"
        ))
    );
    let ghost = ShareId::mint(
        t.h.now,
        &mut roster_core::id::CountingEntropy::new(9_999_999),
    );
    assert_eq!(
        f(ghost, t.research, t.product, "findings/a"),
        Err(format!("share {ghost} does not exist"))
    );
}

#[test]
fn operators_and_the_runtime_do_not_send_and_retired_agents_cannot() {
    let mut t = teams();
    t.share("findings/**", true);
    for actor in [operator(), Actor::Runtime] {
        let r = refused(&mut t.h, send(t.product, "findings/a"), &actor, "", "");
        assert_eq!(
            *r.rejection,
            Rejection::AgentOnly("send context to another team")
        );
    }
    t.h.ok(Command::Retire { agent: t.scout }, &operator());
    let r = refused(
        &mut t.h,
        send(t.product, "findings/a"),
        &by(t.scout),
        "context.share",
        "team:product",
    );
    assert_eq!(*r.rejection, Rejection::Retired(t.scout));
}

#[test]
fn the_oldest_matching_open_share_carries_a_message() {
    let mut t = teams();
    let narrow = t.share("findings/*", true);
    let wide = t.share("**", true);
    let via = |h: &mut Harness, tpc: &str, sender| match h.ok(send(t.product, tpc), &by(sender))[0]
        .event
    {
        Event::ContextShared { share, .. } => share,
        ref other => panic!("{other:?}"),
    };
    assert_eq!(via(&mut t.h, "findings/a", t.scout), narrow);
    assert_eq!(via(&mut t.h, "findings/a/b", t.scout), wide);
    t.h.ok(Command::CloseShare { share: narrow }, &operator());
    assert_eq!(via(&mut t.h, "findings/a", t.scout), wide);
}

#[test]
fn only_the_runtime_records_a_denial() {
    let mut t = teams();
    let r = refused(
        &mut t.h,
        denial(t.plead, "forged".into()),
        &by(t.scout),
        "audit.record",
        "team:product",
    );
    assert!(matches!(*r.rejection, Rejection::RuntimeOnly(_)), "{r}");
    refused(
        &mut t.h,
        denial(t.scout, "mine".into()),
        &operator(),
        "",
        "",
    );

    let envs = t.h.ok(
        denial(t.scout, "share closed in flight".into()),
        &Actor::Runtime,
    );
    assert_eq!(
        (envs[0].team, &envs[0].actor),
        (t.research, &Actor::Runtime)
    );
    assert!(matches!(
        &envs[0].event,
        Event::AccessDenied { agent, reason, .. } if *agent == t.scout && reason == "share closed in flight"
    ));
    // A long reason is cut on a character boundary and says so.
    let long = "é".repeat(MAX_REASON);
    let envs = t.h.ok(denial(t.scout, long), &Actor::Runtime);
    let Event::AccessDenied { reason, .. } = &envs[0].event else {
        panic!()
    };
    assert!(
        reason.len() <= MAX_REASON && reason.len() > MAX_REASON - 8,
        "{}",
        reason.len()
    );
    assert!(reason.ends_with('…') && reason.starts_with("éé"));
    let exact = "x".repeat(MAX_REASON);
    let envs = t.h.ok(denial(t.scout, exact.clone()), &Actor::Runtime);
    assert!(matches!(&envs[0].event, Event::AccessDenied { reason, .. } if *reason == exact));
    // A retired agent's late message is still recorded; an unknown agent is not.
    t.h.ok(Command::Retire { agent: t.scout }, &operator());
    t.h.ok(denial(t.scout, "late".into()), &Actor::Runtime);
    let mut far = Harness::new();
    far.entropy = roster_core::id::CountingEntropy::new(1_000_000);
    let far_team = far.team("far");
    let stranger = far.hire_as(&operator(), far_team, "x", &[]);
    let r = refused(
        &mut t.h,
        denial(stranger, "?".into()),
        &Actor::Runtime,
        "",
        "",
    );
    assert!(
        matches!(*r.rejection, Rejection::NotFound { what: "agent", .. }),
        "{r}"
    );
}

// ---- The model ----------------------------------------------------------------------------

const PATTERNS: &[&str] = &["f/**", "f/*", "f", "g/**", "*/x", "**"];
const TOPICS: &[&str] = &["f", "f/x", "f/x/y", "fx/x", "g/x", "g"];

/// A pattern matcher written plainly, apart from the crate's.
fn model_matches(pattern: &str, topic: &str) -> bool {
    fn go(p: &[&str], t: &[&str]) -> bool {
        match (p.split_first(), t.split_first()) {
            (None, None) => true,
            (Some((&"**", _)), Some(_)) => true,
            (Some((&"*", p)), Some((_, t))) => go(p, t),
            (Some((a, p)), Some((b, t))) => a == b && go(p, t),
            _ => false,
        }
    }
    let p: Vec<&str> = pattern.split('/').collect();
    let t: Vec<&str> = topic.split('/').collect();
    go(&p, &t)
}

#[derive(Debug, Clone)]
enum Op {
    Propose {
        actor: usize,
        from: usize,
        to: usize,
        pattern: usize,
    },
    /// With `aim`, the actor is an agent of the share's importing team.
    Accept {
        actor: usize,
        share: prop::sample::Index,
        aim: bool,
    },
    /// With `aim`, the actor is an agent of one of the share's teams.
    Close {
        actor: usize,
        share: prop::sample::Index,
        aim: bool,
    },
    /// With `aim`, a message from an agent of a known share's exporting team to its importing
    /// team (so that sends that may succeed are frequent).
    Send {
        actor: usize,
        to: usize,
        topic: usize,
        aim: Option<prop::sample::Index>,
    },
}

/// The indices (in the test's actor table) of each team's agents.
const MEMBERS: [[usize; 2]; 3] = [[2, 3], [4, 4], [5, 5]];

fn arb_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => (0..6usize, 0..3usize, 0..3usize, 0..PATTERNS.len())
            .prop_map(|(actor, from, to, pattern)| Op::Propose { actor, from, to, pattern }),
        2 => (0..6usize, any::<prop::sample::Index>(), any::<bool>())
            .prop_map(|(actor, share, aim)| Op::Accept { actor, share, aim }),
        1 => (0..6usize, any::<prop::sample::Index>(), any::<bool>())
            .prop_map(|(actor, share, aim)| Op::Close { actor, share, aim }),
        4 => (
            0..6usize,
            0..3usize,
            0..TOPICS.len(),
            prop::option::weighted(0.7, any::<prop::sample::Index>()),
        )
            .prop_map(|(actor, to, topic, aim)| Op::Send { actor, to, topic, aim }),
    ]
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    Operator,
    Runtime,
    /// An agent: its team, and whether it holds the share grants for it.
    Agent(usize, bool),
}

struct ModelShare {
    id: ShareId,
    from: usize,
    to: usize,
    pattern: &'static str,
    state: ShareState,
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Whatever is asked in whatever order: each outcome is the model's; a refusal of an agent
    /// adds exactly its `AccessDenied` and a refusal of anyone else adds nothing; and the log
    /// `decide` wrote passes `apply_checked` (the harness folds every event with it).
    #[test]
    fn shares_follow_the_model(ops in prop::collection::vec(arb_op(), 1..60)) {
        let mut h = Harness::new();
        let teams: Vec<TeamId> = ["a", "b", "c"].iter().map(|n| h.team(n)).collect();
        let a1 = h.hire_as(&operator(), teams[0], "a1", &["share.*@team:a"]);
        let a2 = h.hire_as(&operator(), teams[0], "a2", &[]);
        let b1 = h.hire_as(&operator(), teams[1], "b1", &["share.*@team:b"]);
        // A grant for every team, but an agent of `c` only: membership still binds.
        let c1 = h.hire_as(&operator(), teams[2], "c1", &["share.*@team:*"]);
        let actors = [
            (operator(), Who::Operator),
            (Actor::Runtime, Who::Runtime),
            (by(a1), Who::Agent(0, true)),
            (by(a2), Who::Agent(0, false)),
            (by(b1), Who::Agent(1, true)),
            (by(c1), Who::Agent(2, true)),
        ];
        let may = |who: Who, team: usize| match who {
            Who::Operator => true,
            Who::Runtime => false,
            Who::Agent(t, grants) => t == team && grants,
        };
        let mut shares: Vec<ModelShare> = Vec::new();
        let ghost = ShareId::mint(h.now, &mut roster_core::id::CountingEntropy::new(u64::MAX / 2));
        for op in ops {
            let log_len = h.log.len();
            let (command, actor, who, expect) = match op {
                Op::Propose { actor, from, to, pattern } => {
                    let (actor, who) = actors[actor].clone();
                    let ok = from != to && may(who, from);
                    (propose(teams[from], teams[to], PATTERNS[pattern]), actor, who, ok)
                }
                Op::Accept { actor, share, aim } | Op::Close { actor, share, aim } => {
                    // Mostly a known share, now and then one that does not exist.
                    let s = shares.get(share.index(shares.len() * 4 + 1) / 4);
                    let actor = match s {
                        Some(s) if aim => {
                            let side = if matches!(op, Op::Close { .. }) && actor % 2 == 0 {
                                s.from
                            } else {
                                s.to
                            };
                            MEMBERS[side][actor % 2]
                        }
                        _ => actor,
                    };
                    let (actor, who) = actors[actor].clone();
                    let id = s.map_or(ghost, |s| s.id);
                    match op {
                        Op::Accept { .. } => {
                            let ok = s.is_some_and(|s| s.state == ShareState::Proposed && may(who, s.to));
                            (Command::AcceptShare { share: id }, actor, who, ok)
                        }
                        _ => {
                            let ok = s.is_some_and(|s| {
                                s.state != ShareState::Closed
                                    && match who {
                                        Who::Agent(t, _) => (t == s.from || t == s.to) && may(who, t),
                                        _ => may(who, s.from),
                                    }
                            });
                            (Command::CloseShare { share: id }, actor, who, ok)
                        }
                    }
                }
                Op::Send { actor, to, topic: tp, aim } => {
                    let (actor, to) = match aim {
                        Some(i) if !shares.is_empty() => {
                            let s = &shares[i.index(shares.len())];
                            (MEMBERS[s.from][actor % 2], s.to)
                        }
                        _ => (actor, to),
                    };
                    let (actor, who) = actors[actor].clone();
                    let ok = match who {
                        Who::Agent(t, _) => shares.iter().any(|s| {
                            s.state == ShareState::Open && s.from == t && s.to == to && t != to
                                && model_matches(s.pattern, TOPICS[tp])
                        }),
                        _ => false,
                    };
                    (send(teams[to], TOPICS[tp]), actor, who, ok)
                }
            };
            let shown = format!("{command:?} by {actor}");
            match (h.run(command.clone(), &actor), expect) {
                (Ok(envs), true) => match command {
                    Command::ProposeShare { topics, .. } => {
                        let Op::Propose { from, to, .. } = op else { unreachable!() };
                        let pattern = PATTERNS.iter().find(|p| **p == topics.as_str()).unwrap();
                        shares.push(ModelShare { id: proposed(&envs), from, to, pattern, state: ShareState::Proposed });
                    }
                    Command::AcceptShare { share } => {
                        shares.iter_mut().find(|s| s.id == share).unwrap().state = ShareState::Open;
                    }
                    Command::CloseShare { share } => {
                        shares.iter_mut().find(|s| s.id == share).unwrap().state = ShareState::Closed;
                    }
                    Command::ShareContext { to, topic: tp, .. } => {
                        let Who::Agent(t, _) = who else { unreachable!() };
                        // The oldest open share that matches.
                        let first = shares.iter().find(|s| {
                            s.state == ShareState::Open && s.from == t && teams[s.to] == to
                                && model_matches(s.pattern, tp.as_str())
                        }).unwrap();
                        let used = envs.iter().find_map(|e| match e.event {
                            Event::ContextShared { share, .. } => Some(share),
                            _ => None,
                        });
                        prop_assert_eq!(used, Some(first.id), "{}", shown);
                    }
                    _ => unreachable!(),
                },
                (Err(r), false) => {
                    let added = &h.log[log_len..];
                    match who {
                        Who::Agent(..) => {
                            prop_assert_eq!(added.len(), 1, "{}: {}", shown, r);
                            let is_denial = matches!(
                                &added[0].event,
                                Event::AccessDenied { agent, .. } if actor == Actor::Agent(*agent)
                            );
                            prop_assert!(is_denial, "{}: {:?}", shown, added[0].event);
                        }
                        _ => prop_assert!(added.is_empty(), "{}: {}", shown, r),
                    }
                }
                (Ok(envs), false) => prop_assert!(false, "{} was accepted: {:?}", shown, envs),
                (Err(r), true) => prop_assert!(false, "{} was refused: {}", shown, r),
            }
            for s in &shares {
                prop_assert_eq!(h.world.share(s.id).map(|w| w.state), Some(s.state));
            }
        }
    }
}
