//! Backward compatibility: a small log written by format version 1, committed under
//! `tests/fixtures/v1/`, must decode forever — as raw records (`records.bin`) and as an export
//! (`log.jsonl`). It uses every event variant. The test verifies its chain, folds it into a
//! `World` and checks concrete facts, and checks that this build encodes the decoded events to
//! the very same bytes.
//!
//! The fixture is made by [`fixture`] below, deterministically (counting entropy, fixed times).
//! `ROSTER_BLESS=1 cargo test -p roster-store --test golden` rewrites it; do that only for a
//! new fixture version directory (`v2/`), never to make `v1` pass.
//!
//! `records.bin` is the records one after the other, each preceded by its length (u32 BE).
// Helpers of a test crate panic on failure like the tests themselves.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeSet, HashMap};
use std::num::NonZeroU64;
use std::path::PathBuf;

use roster_core::actor::Actor;
use roster_core::capability::{Action, Capability, Resource};
use roster_core::envelope::{Body, Envelope, EnvelopeJson, Hash};
use roster_core::event::{AgentSpec, Event, Resources, RuntimeKind, StopReason};
use roster_core::id::{AgentId, ApprovalId, CountingEntropy, EventId, GrantId, ShareId, TeamId};
use roster_core::name::{Label, Name};
use roster_core::port::LogRead;
use roster_core::time::Timestamp;
use roster_core::topic::{Topic, TopicPattern};
use roster_core::world::{AgentStatus, ShareState, World};
use roster_store::{export_jsonl, import_jsonl, record, MemLog, SledLog};

/// Every event variant of schema version 1; the fixture must contain each.
const V1_KINDS: [&str; 15] = [
    "TeamCreated",
    "AgentHired",
    "AgentStarted",
    "AgentStopped",
    "AgentRetired",
    "GrantIssued",
    "GrantRevoked",
    "ShareProposed",
    "ShareAccepted",
    "ShareClosed",
    "ContextShared",
    "AccessDenied",
    "ApprovalRequested",
    "ApprovalDecided",
    "ActionPerformed",
];

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v1")
}

/// 2027-01-01T00:00:00Z.
const T0: i64 = 1_798_761_600_000_000;

struct Builder {
    entropy: CountingEntropy,
    envelopes: Vec<Envelope>,
    versions: HashMap<TeamId, u64>,
    world: World,
}

impl Builder {
    fn id<T>(&mut self, mint: fn(Timestamp, &mut dyn roster_core::id::Entropy) -> T) -> T {
        mint(Timestamp::from_micros(T0), &mut self.entropy)
    }

    fn push(&mut self, team: TeamId, actor: Actor, event: Event) {
        let seq = self.envelopes.len() as u64;
        let at = Timestamp::from_micros(T0 + 1_000 * seq as i64);
        let version = self.versions.get(&team).copied().unwrap_or(0) + 1;
        self.versions.insert(team, version);
        let body = Body {
            seq,
            id: EventId::mint(at, &mut self.entropy),
            team,
            version,
            at,
            actor,
            causation: self.envelopes.last().map(|e| e.id),
            // The version that wrote the fixture, whatever this build writes.
            schema: 1,
            event,
        };
        let prev = self.envelopes.last().map_or(Hash::ZERO, Envelope::hash);
        let env = Envelope::seal(body, prev);
        self.world
            .apply(&env)
            .unwrap_or_else(|e| panic!("fixture event {seq} does not fold: {e}"));
        self.envelopes.push(env);
    }
}

fn name(s: &str) -> Name {
    Name::parse(s).unwrap()
}

/// The version-1 fixture log: two teams, two agents, four grants, a share, an approval.
fn fixture() -> Vec<Envelope> {
    let mut b = Builder {
        entropy: CountingEntropy::new(0),
        envelopes: Vec::new(),
        versions: HashMap::new(),
        world: World::new(),
    };
    let op = Actor::Operator(name("root"));
    let (research, ops) = (b.id(TeamId::mint), b.id(TeamId::mint));
    let (alice, bob) = (b.id(AgentId::mint), b.id(AgentId::mint));
    let [g1, g2, g3, g4] = [(); 4].map(|()| b.id(GrantId::mint));
    let share = b.id(ShareId::mint);
    let approval = b.id(ApprovalId::mint);
    let cap = |s: &str| Capability::parse(s).unwrap();
    let action = |s: &str| Action::parse(s).unwrap();
    let resource = |s: &str| Resource::parse(s).unwrap();
    let amount = |n: u64| NonZeroU64::new(n).unwrap();

    b.push(
        research,
        op.clone(),
        Event::TeamCreated {
            name: name("research"),
        },
    );
    b.push(ops, op.clone(), Event::TeamCreated { name: name("ops") });
    b.push(
        research,
        op.clone(),
        Event::AgentHired {
            agent: alice,
            name: name("alice"),
            role: Label::parse("lead researcher").unwrap(),
            parent: None,
            spec: AgentSpec::base(),
        },
    );
    for (grant, text) in [
        (g1, "spend.usd@*,budget=100"),
        (g2, "agent.hire@team:research,budget=3"),
    ] {
        b.push(
            research,
            op.clone(),
            Event::GrantIssued {
                grant,
                holder: alice,
                capability: cap(text),
                parent: None,
            },
        );
    }
    b.push(
        research,
        Actor::Agent(alice),
        Event::AgentHired {
            agent: bob,
            name: name("bob"),
            role: Label::parse("finds prices").unwrap(),
            parent: Some(alice),
            spec: AgentSpec {
                runtime: RuntimeKind::Runsc,
                resources: Resources {
                    timeout_secs: Some(600),
                    ..Resources::default()
                },
                ..AgentSpec::base()
            },
        },
    );
    b.push(
        research,
        Actor::Agent(alice),
        Event::ActionPerformed {
            agent: alice,
            action: action("agent.hire"),
            resource: resource("team:research"),
            amount: amount(1),
            chain: vec![g2],
            approval: None,
        },
    );
    b.push(
        research,
        Actor::Agent(alice),
        Event::GrantIssued {
            grant: g3,
            holder: bob,
            capability: cap("spend.usd@*,budget=40"),
            parent: Some(g1),
        },
    );
    b.push(
        research,
        Actor::Runtime,
        Event::AgentStarted {
            agent: alice,
            container: "c0ffee01".into(),
        },
    );
    b.push(
        research,
        Actor::Agent(bob),
        Event::ActionPerformed {
            agent: bob,
            action: action("spend.usd"),
            resource: resource("vendor:acme"),
            amount: amount(25),
            chain: vec![g3, g1],
            approval: None,
        },
    );
    b.push(
        research,
        Actor::Agent(bob),
        Event::AccessDenied {
            agent: bob,
            action: action("email.send"),
            resource: resource("mailbox:ceo"),
            reason: "no active grant covers email.send@mailbox:ceo".into(),
        },
    );
    b.push(
        research,
        op.clone(),
        Event::GrantIssued {
            grant: g4,
            holder: alice,
            capability: cap("email.send@mailbox:alice,approval"),
            parent: None,
        },
    );
    b.push(
        research,
        Actor::Agent(alice),
        Event::ApprovalRequested {
            approval,
            agent: alice,
            action: action("email.send"),
            resource: resource("mailbox:alice"),
            amount: amount(1),
            chain: vec![g4],
        },
    );
    b.push(
        research,
        op.clone(),
        Event::ApprovalDecided {
            approval,
            approved: true,
            note: Some(Label::parse("fine, once").unwrap()),
        },
    );
    b.push(
        research,
        Actor::Agent(alice),
        Event::ActionPerformed {
            agent: alice,
            action: action("email.send"),
            resource: resource("mailbox:alice"),
            amount: amount(1),
            chain: vec![g4],
            approval: Some(approval),
        },
    );
    b.push(
        research,
        op.clone(),
        Event::ShareProposed {
            share,
            to: ops,
            topics: TopicPattern::parse("findings/**").unwrap(),
        },
    );
    b.push(ops, op.clone(), Event::ShareAccepted { share });
    b.push(
        research,
        Actor::Agent(alice),
        Event::ContextShared {
            share,
            sender: alice,
            topic: Topic::parse("findings/daily").unwrap(),
            digest: Hash::of(b"prices went up"),
            size: 14,
        },
    );
    b.push(ops, op.clone(), Event::ShareClosed { share });
    b.push(research, op.clone(), Event::GrantRevoked { grant: g3 });
    for reason in [
        StopReason::Requested,
        StopReason::Exited { code: 0 },
        StopReason::Crashed { code: 137 },
        StopReason::OomKilled,
        StopReason::TimedOut,
    ] {
        b.push(
            research,
            Actor::Runtime,
            Event::AgentStopped {
                agent: alice,
                reason,
            },
        );
    }
    b.push(research, op, Event::AgentRetired { agent: bob });
    b.envelopes
}

fn bless() {
    let envelopes = fixture();
    std::fs::create_dir_all(dir()).unwrap();
    let mut records = Vec::new();
    for env in &envelopes {
        let r = record::encode(env);
        records.extend_from_slice(&u32::try_from(r.len()).unwrap().to_be_bytes());
        records.extend_from_slice(&r);
    }
    std::fs::write(dir().join("records.bin"), records).unwrap();
    let log = MemLog::new();
    log.append_sealed(envelopes).unwrap();
    let mut jsonl = Vec::new();
    export_jsonl(&log, &mut jsonl).unwrap();
    std::fs::write(dir().join("log.jsonl"), jsonl).unwrap();
}

/// The raw records of `records.bin`.
fn raw_records() -> Vec<Vec<u8>> {
    let bytes = std::fs::read(dir().join("records.bin")).unwrap();
    let mut rest = bytes.as_slice();
    let mut out = Vec::new();
    while !rest.is_empty() {
        let (len, tail) = rest.split_at(4);
        let len = u32::from_be_bytes(len.try_into().unwrap()) as usize;
        let (r, tail) = tail.split_at(len);
        out.push(r.to_vec());
        rest = tail;
    }
    out
}

#[test]
fn version_1_log_still_decodes_and_means_the_same() {
    if std::env::var("ROSTER_BLESS").as_deref() == Ok("1") {
        bless();
    }

    // Raw records: decode (hash re-computed), chain, and re-encode to the same bytes.
    let raw = raw_records();
    let mut envelopes: Vec<Envelope> = Vec::new();
    for (seq, bytes) in raw.iter().enumerate() {
        let env = record::decode(seq as u64, bytes).unwrap();
        env.follows(envelopes.last()).unwrap();
        assert_eq!(
            &record::encode(&env),
            bytes,
            "record {seq} re-encodes differently"
        );
        assert_eq!(
            env.body().canonical_bytes(),
            bytes[record::HEADER_LEN..],
            "body {seq} re-encodes differently"
        );
        envelopes.push(env);
    }
    assert_eq!(envelopes.len(), 26);

    // The export: every line checks, equals the record, and is written the same way today.
    let text = std::fs::read_to_string(dir().join("log.jsonl")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), envelopes.len());
    for (line, env) in lines.iter().zip(&envelopes) {
        let json: EnvelopeJson = serde_json::from_str(line).unwrap();
        assert_eq!(&json.check().unwrap(), env);
        assert_eq!(&serde_json::to_string(env).unwrap(), line);
    }

    // Every kind of event is in it.
    let kinds: BTreeSet<&str> = envelopes.iter().map(|e| e.event.kind()).collect();
    assert_eq!(kinds, V1_KINDS.into_iter().collect());

    // What it means.
    let world = World::fold(&envelopes).unwrap();
    let names: Vec<&str> = world.teams().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["research", "ops"]);
    let research = world.team_named(&name("research")).unwrap();
    assert_eq!(research.version, 23);
    assert_eq!(world.agents().count(), 2);
    let alice = world.agent_named(research.id, &name("alice")).unwrap();
    let bob = world.agent_named(research.id, &name("bob")).unwrap();
    assert_eq!(bob.parent, Some(alice.id));
    assert_eq!(bob.spec.runtime, RuntimeKind::Runsc);
    assert_eq!(bob.status, AgentStatus::Retired);
    assert_eq!(
        alice.status,
        AgentStatus::Stopped {
            reason: StopReason::TimedOut
        }
    );
    let spent: Vec<(String, u64, bool)> = world
        .grants()
        .map(|g| (g.capability.to_string(), g.spent, g.revoked_at.is_some()))
        .collect();
    assert_eq!(
        spent,
        [
            ("spend.usd@*,budget=100".to_owned(), 25, false),
            ("agent.hire@team:research,budget=3".to_owned(), 1, false),
            ("spend.usd@*,budget=40".to_owned(), 25, true),
            ("email.send@mailbox:alice,approval".to_owned(), 1, false),
        ]
    );
    let share = world.shares().next().unwrap();
    assert_eq!((share.state, share.crossings), (ShareState::Closed, 1));
    let approval = world.approvals().next().unwrap();
    assert!(approval.used && approval.decision.as_ref().unwrap().approved);
    assert_eq!(envelopes[0].hash(), envelopes[1].prev_hash());

    // And it imports into a store of today, unchanged.
    let store = tempfile::tempdir().unwrap();
    let log = SledLog::open(store.path()).unwrap();
    assert_eq!(import_jsonl(&log, &mut text.as_bytes()).unwrap(), 26);
    assert_eq!(log.read(0, 100).unwrap(), envelopes);
    assert_eq!(log.verify().unwrap(), 26);
}

#[test]
fn the_generator_still_makes_the_fixture() {
    // Not a compatibility check (the files are), but a guard that the generator documents them.
    if std::env::var("ROSTER_BLESS").as_deref() == Ok("1") {
        return; // the other test is rewriting the files right now
    }
    let raw = raw_records();
    let made: Vec<Vec<u8>> = fixture().iter().map(record::encode).collect();
    assert_eq!(made, raw);
}
