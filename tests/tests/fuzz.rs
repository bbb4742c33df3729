//! Bad input, fuzzed (the reliability suite's part on input): the gateway's line framing and
//! request decoder, the text types parsed at the edge, and the store's record decoder on
//! corrupted records. None may panic, hang, or change state; each property below can fail.
//!
//! Cases per target: `ROSTER_FUZZ_CASES`, else 1,000,000 in the long form (`ROSTER_LONG=1`),
//! else a short run for CI. The gateway through a real socket is fuzzed in `roster-runtime`
//! (`runtime/src/gateway/fuzz.rs`), where its server is.
// Helpers of a test crate panic on failure like the tests themselves.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fmt::{Debug, Display};
use std::str::FromStr;
use std::sync::Arc;

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence};
use roster_core::actor::Actor;
use roster_core::capability::Amount;
use roster_core::capability::{Action, Capability, Resource};
use roster_core::command::Command;
use roster_core::envelope::{chain_hash, ChainError, Envelope, Hash};
use roster_core::event::{AgentSpec, Event};
use roster_core::gateway::frame::{Frame, Framer};
use roster_core::gateway::{decode_request, encode_response, Call, ErrorCode, MAX_LINE, METHODS};
use roster_core::id::CountingEntropy;
use roster_core::id::{AgentId, ApprovalId, EventId, GrantId, ShareId, TeamId};
use roster_core::ledger::{ExecuteError, Ledger};
use roster_core::name::{ImageRef, Label, Name};
use roster_core::port::{LogError, LogRead};
use roster_core::time::Timestamp;
use roster_core::topic::{Topic, TopicPattern};
use roster_store::{baseline, record, MemLog, SledLog};
use roster_tests::fuzz::{cases, config, reference_lines};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};

// ---------------------------------------------------------------------------------------------
// 1. Line framing.

/// Feeds `stream` to framers as a reader would, in chunks of the given sizes (cycled), one
/// buffer reused like the gateway's; checks each step's bounds on the way.
fn framed_lines(stream: &[u8], chunks: &[usize], cap: usize) -> Vec<(Frame, Vec<u8>)> {
    let mut out = Vec::new();
    let mut rest = stream;
    let mut sizes = chunks.iter().cycle();
    let mut line = Vec::new();
    // The reader's buffer: a chunk is what it holds; what a feed does not consume stays in it.
    let mut held: &[u8] = &[];
    loop {
        line.clear();
        let mut framer = Framer::new(cap);
        let frame = loop {
            if held.is_empty() {
                let n = (*sizes.next().unwrap()).min(rest.len());
                (held, rest) = rest.split_at(n);
            }
            if held.is_empty() {
                break framer.end(&line);
            }
            let (used, done) = framer.feed(held, &mut line);
            assert!(
                used > 0 && used <= held.len(),
                "fed {}, used {used}",
                held.len()
            );
            assert!(
                line.len() <= cap && line.capacity() <= cap,
                "{line:?} over {cap}"
            );
            held = &held[used..];
            if let Some(frame) = done {
                break frame;
            }
        };
        if frame == Frame::Eof {
            assert!(held.is_empty() && rest.is_empty());
            return out;
        }
        out.push((frame, line.clone()));
    }
}

/// Bytes rich in newlines and carriage returns, in lines up to a few times the cap.
fn stream() -> impl Strategy<Value = Vec<u8>> {
    let byte = prop_oneof![
        4 => Just(b'\n'),
        2 => Just(b'\r'),
        6 => Just(b'a'),
        2 => any::<u8>(),
    ];
    vec(byte, 0..160)
}

proptest! {
    #![proptest_config(config(3000))]

    #[test]
    fn framing_cuts_any_stream_at_any_boundaries_like_the_reference(
        bytes in stream(),
        chunks in vec(1usize..40, 1..8),
        cap in 0usize..24,
    ) {
        prop_assert_eq!(framed_lines(&bytes, &chunks, cap), reference_lines(&bytes, cap));
    }
}

// ---------------------------------------------------------------------------------------------
// 2. The request decoder.

/// What the documented order of checks says about a line before its parameters are looked at:
/// the id to answer with and the code, or `None` (with the id) when the line gets that far.
fn top_level(line: &[u8]) -> Result<u64, (Option<u64>, ErrorCode)> {
    if line.len() > MAX_LINE {
        return Err((None, ErrorCode::LineTooLong));
    }
    let Ok(Value::Object(o)) = serde_json::from_slice::<Value>(line) else {
        return Err((None, ErrorCode::InvalidJson));
    };
    let Some(id) = o.get("id").and_then(Value::as_u64) else {
        return Err((None, ErrorCode::MissingId));
    };
    let Some(method) = o.get("method").and_then(Value::as_str) else {
        return Err((Some(id), ErrorCode::BadParams));
    };
    if !METHODS.contains(&method) {
        return Err((Some(id), ErrorCode::UnknownMethod));
    }
    if o.keys()
        .any(|k| !["id", "method", "params"].contains(&k.as_str()))
    {
        return Err((Some(id), ErrorCode::BadParams));
    }
    Ok(id)
}

/// Every property of [`decode_request`] on one line.
fn check_decode(line: &[u8]) {
    let got = decode_request(line);
    match (top_level(line), &got) {
        (Err((id, code)), Err((got_id, e))) => {
            assert_eq!((*got_id, e.code), (id, code), "{}", e.message)
        }
        (Ok(id), Ok(r)) => assert_eq!(r.id, id),
        (Ok(id), Err((got_id, e))) => {
            assert_eq!(
                (*got_id, e.code),
                (Some(id), ErrorCode::BadParams),
                "{}",
                e.message
            )
        }
        (Err(want), Ok(r)) => panic!("accepted {r:?}; wanted {want:?}"),
    }
    match got {
        Err((id, e)) => {
            assert!(!e.message.is_empty());
            // No amplification: a message may quote the line, not more.
            assert!(e.message.len() <= 2 * line.len() + 1024, "{}", e.message);
            let answer = encode_response(id, &Err::<Value, _>(e.clone()));
            assert!(!answer.contains('\n'), "{answer}");
            let back: Value = serde_json::from_str(&answer).unwrap();
            assert_eq!(back["id"], json!(id));
            assert_eq!(back["error"]["code"], serde_json::to_value(e.code).unwrap());
        }
        Ok(request) => {
            // The method's own limits held.
            match &request.call {
                Call::Act(p) => {
                    assert!(p.timeout_secs.unwrap_or(0) <= roster_core::gateway::MAX_ACT_WAIT_SECS);
                    assert!(p
                        .args
                        .values()
                        .all(|v| v.len() <= roster_core::gateway::MAX_ARG));
                }
                Call::Publish(p) => assert!(p.message.len() <= roster_core::gateway::MAX_MESSAGE),
                _ => {}
            }
            // What was accepted says the same thing written out again.
            let mut again = serde_json::to_value(&request.call).unwrap();
            again["id"] = json!(request.id);
            let again = serde_json::to_vec(&again).unwrap();
            assert_eq!(
                decode_request(&again),
                Ok(request),
                "{}",
                String::from_utf8_lossy(&again)
            );
        }
    }
}

/// Valid texts of each kind a parameter can be, to build near-valid requests from.
const SAMPLES: &[&str] = &[
    "scout",
    "research",
    "a",
    "finds things",
    "roster/agent-base:1",
    "runc",
    "runsc",
    "email.send",
    "spend.usd",
    "mailbox:alice",
    "vendor:acme/x.y",
    "email.send@mailbox:*,budget=10",
    "spend.*@vendor:**,approval,expires=2027-01-01T00:00:00Z",
    "findings/daily",
    "findings/**",
    "*/x",
    "**",
    "agt_0192f0c0000070008000000000000001",
    "grt_0192f0c0000070008000000000000001",
    "apr_0192f0c0000070008000000000000001",
    "shr_0192f0c0000070008000000000000001",
    "team_0192f0c0000070008000000000000001",
    "2026-11-23T11:10:36.095449Z",
];

/// Characters that sit on the edge of some rule.
const EDGE_CHARS: &[char] = &[
    'a',
    'z',
    'A',
    '0',
    '9',
    '-',
    '_',
    '.',
    ':',
    '/',
    '@',
    '*',
    '~',
    '+',
    ',',
    '=',
    ' ',
    'T',
    'Z',
    '\n',
    '\r',
    '\t',
    '\0',
    '"',
    '\\',
    'é',
    '\u{202E}',
    '\u{2028}',
    '\u{FEFF}',
    '\u{1F600}',
];

fn edge_char() -> impl Strategy<Value = char> {
    prop_oneof![4 => proptest::sample::select(EDGE_CHARS), 1 => any::<char>()]
}

/// A valid text with a few characters inserted, removed or replaced.
fn near_valid_text() -> impl Strategy<Value = String> {
    let edit = (any::<prop::sample::Index>(), 0u8..3, edge_char());
    (proptest::sample::select(SAMPLES), vec(edit, 0..4)).prop_map(|(s, edits)| {
        let mut chars: Vec<char> = s.chars().collect();
        for (at, op, c) in edits {
            let i = at.index(chars.len() + 1);
            match op {
                0 => chars.insert(i, c),
                1 if i < chars.len() => {
                    chars.remove(i);
                }
                _ if i < chars.len() => chars[i] = c,
                _ => chars.push(c),
            }
        }
        chars.into_iter().collect()
    })
}

/// Any text: near-valid, arbitrary, or long (around the size limits).
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => near_valid_text(),
        4 => proptest::string::string_regex("(?s).{0,24}").unwrap(),
        1 => (proptest::sample::select(&[63usize, 64, 200, 201, 1024, 1025, 65_536, 65_537][..]), edge_char())
            .prop_map(|(n, c)| std::iter::repeat_n(c, n).collect()),
    ]
}

const EDGE_NUMBERS: &[u64] = &[
    0,
    1,
    2,
    3600,
    3601,
    1000,
    1001,
    u32::MAX as u64,
    u32::MAX as u64 + 1,
    u64::MAX,
];

/// Numbers at the edges of every integer type a request holds, and some that are no integer.
fn number() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => proptest::sample::select(EDGE_NUMBERS).prop_map(Value::from),
        2 => any::<u64>().prop_map(Value::from),
        1 => any::<i64>().prop_map(Value::from),
        1 => any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
    ]
}

/// Any JSON value, nested a little.
fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        number(),
        text().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 24, 5, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..5).prop_map(Value::Array),
            vec((key(), inner), 0..5).prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// Every parameter name of the protocol, and a few that are not.
const KEYS: &[&str] = &[
    "id",
    "method",
    "params",
    "from",
    "limit",
    "name",
    "role",
    "image",
    "runtime",
    "grants",
    "agent",
    "to",
    "capability",
    "action",
    "resource",
    "amount",
    "args",
    "timeout_secs",
    "approval",
    "approved",
    "note",
    "topic",
    "message",
    "team",
    "topics",
    "share",
    "as",
    "privileged",
    "",
];

fn key() -> impl Strategy<Value = String> {
    prop_oneof![6 => proptest::sample::select(KEYS).prop_map(str::to_owned), 1 => text()]
}

/// A parameter value: mostly of a plausible type, sometimes anything.
fn param() -> impl Strategy<Value = Value> {
    prop_oneof![
        6 => near_valid_text().prop_map(Value::String),
        3 => number(),
        1 => any::<bool>().prop_map(Value::Bool),
        2 => vec(near_valid_text().prop_map(Value::String), 0..4).prop_map(Value::Array),
        1 => vec((proptest::sample::select(&["memo", "k", "Bad", ""][..]), text()), 0..3)
            .prop_map(|kv| Value::Object(kv.into_iter().map(|(k, v)| (k.to_owned(), Value::String(v))).collect())),
        2 => json(),
    ]
}

/// A request that is nearly right: a known method (mostly), parameters by the protocol's names
/// with plausible values, an odd id now and then, a stray key now and then.
fn near_valid_request() -> impl Strategy<Value = Value> {
    let method = prop_oneof![
        10 => proptest::sample::select(METHODS).prop_map(|m| Value::from(m.to_owned())),
        1 => near_valid_text().prop_map(Value::String),
        1 => json(),
    ];
    let id = prop_oneof![
        8 => any::<u64>().prop_map(Value::from),
        2 => number(),
        1 => json(),
    ];
    let params = prop_oneof![
        8 => vec((proptest::sample::select(KEYS), param()), 0..6)
            .prop_map(|kv| Value::Object(kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())),
        1 => Just(Value::Null),
        1 => json(),
    ];
    let extra = vec((key(), json()), 0..2);
    (
        prop::option::weighted(0.95, id),
        prop::option::weighted(0.95, method),
        prop::option::weighted(0.8, params),
        prop::option::weighted(0.05, extra),
    )
        .prop_map(|(id, method, params, extra)| {
            let mut o = serde_json::Map::new();
            for (k, v) in [("id", id), ("method", method), ("params", params)] {
                if let Some(v) = v {
                    o.insert(k.into(), v);
                }
            }
            o.extend(extra.unwrap_or_default());
            Value::Object(o)
        })
}

/// Damage done to a line's text after it was written.
#[derive(Debug, Clone)]
enum Damage {
    None,
    Truncate(prop::sample::Index),
    Insert(prop::sample::Index, u8),
    /// Wraps the params in this many arrays (serde_json stops at 128).
    Nest(usize),
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        12 => Just(Damage::None),
        1 => any::<prop::sample::Index>().prop_map(Damage::Truncate),
        1 => (any::<prop::sample::Index>(), prop_oneof![Just(0u8), Just(b'"'), Just(b'}'), Just(b'\n'), Just(0xff), any::<u8>()]).prop_map(|(i, b)| Damage::Insert(i, b)),
        1 => (100usize..3000).prop_map(Damage::Nest),
    ]
}

fn damaged(request: &Value, d: &Damage) -> Vec<u8> {
    let mut line = serde_json::to_vec(request).unwrap();
    match d {
        Damage::None => {}
        Damage::Truncate(i) => line.truncate(i.index(line.len() + 1)),
        Damage::Insert(i, b) => line.insert(i.index(line.len() + 1), *b),
        Damage::Nest(depth) => {
            let id = request.get("id").cloned().unwrap_or(Value::Null);
            line = format!(
                r#"{{"id":{id},"method":"history","params":{}{}}}"#,
                "[".repeat(*depth),
                "]".repeat(*depth)
            )
            .into_bytes();
        }
    }
    line
}

proptest! {
    #![proptest_config(config(3000))]

    #[test]
    fn arbitrary_bytes_are_refused_with_the_right_code(bytes in vec(any::<u8>(), 0..200)) {
        check_decode(&bytes);
    }

    #[test]
    fn arbitrary_json_is_answered_by_the_documented_order_of_checks(v in json(), d in damage()) {
        check_decode(&damaged(&v, &d));
    }

    #[test]
    fn near_valid_requests_decode_consistently(v in near_valid_request(), d in damage()) {
        check_decode(&damaged(&v, &d));
    }
}

#[test]
fn lines_at_the_cap_and_past_it_nested_and_huge_are_answered() {
    let pad = |n: usize| {
        format!(
            r#"{{"id":1,"method":"whoami","params":null,"x":"{}"}}"#,
            "a".repeat(n)
        )
    };
    let at_cap = pad(MAX_LINE - pad(0).len());
    assert_eq!(at_cap.len(), MAX_LINE);
    check_decode(at_cap.as_bytes());
    check_decode(pad(MAX_LINE).as_bytes());
    for depth in [127, 128, 129, 100_000, MAX_LINE / 2 - 64] {
        check_decode(
            format!(
                r#"{{"id":1,"method":"act","params":{}{}}}"#,
                "[".repeat(depth),
                "]".repeat(depth)
            )
            .as_bytes(),
        );
        check_decode(
            format!(
                r#"{{"id":1,"method":"hire","params":{}"#,
                r#"{"a":"#.repeat(depth / 5)
            )
            .as_bytes(),
        );
    }
    for n in [
        "1e400",
        "-0",
        "18446744073709551616",
        "1.0",
        "1e2",
        "0x10",
        "00",
    ] {
        check_decode(format!(r#"{{"id":{n},"method":"whoami"}}"#).as_bytes());
        check_decode(
            format!(r#"{{"id":1,"method":"history","params":{{"from":{n}}}}}"#).as_bytes(),
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 3. Texts parsed at the edge.

/// `parse` never panics; what it accepts prints to a text that parses back to it (and prints
/// the same again), and serde reads a JSON string exactly as `parse` reads the text.
fn check_text<T>(s: &str)
where
    T: FromStr + Display + Debug + PartialEq + Serialize + DeserializeOwned,
    T::Err: Display,
{
    let parsed = s.parse::<T>();
    let via_serde = serde_json::from_value::<T>(Value::String(s.to_owned()));
    match (&parsed, &via_serde) {
        (Ok(a), Ok(b)) => assert_eq!(a, b),
        (Err(_), Err(_)) => {}
        _ => panic!(
            "{s:?}: parse says {}, serde {}",
            parsed.is_ok(),
            via_serde.is_ok()
        ),
    }
    match parsed {
        Ok(x) => {
            let shown = x.to_string();
            let again: T = shown
                .parse()
                .unwrap_or_else(|e| panic!("{s:?} printed as {shown:?}: {e}"));
            assert_eq!(again.to_string(), shown);
            assert_eq!(again, x);
            assert_eq!(serde_json::to_value(&x).unwrap(), Value::String(shown));
        }
        Err(e) => {
            let why = e.to_string();
            assert!(!why.is_empty());
            assert!(why.len() <= 4 * s.len() + 1024, "{why}");
        }
    }
}

fn check_every_text_type(s: &str) {
    check_text::<Name>(s);
    check_text::<Label>(s);
    check_text::<ImageRef>(s);
    check_text::<Topic>(s);
    check_text::<TopicPattern>(s);
    check_text::<Action>(s);
    check_text::<Resource>(s);
    check_text::<Capability>(s);
    check_text::<AgentId>(s);
    check_text::<GrantId>(s);
    check_text::<ApprovalId>(s);
    check_text::<ShareId>(s);
    check_text::<TeamId>(s);
    check_text::<EventId>(s);
    check_text::<Timestamp>(s);
    if let Ok(label) = Label::parse(s) {
        // One line, nothing hidden: no control, line or paragraph separator, or invisible
        // formatting character (bidi marks, tag characters).
        let hidden = |c: char| {
            c.is_control()
                || matches!(c, '\u{2028}' | '\u{2029}' | '\u{061C}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{206F}' | '\u{FEFF}' | '\u{E0000}'..='\u{E007F}')
        };
        assert!(!label.as_str().chars().any(hidden), "{label:?}");
    }
}

/// A capability's parts, each valid or nearly, joined as capability text.
fn capability_text() -> impl Strategy<Value = String> {
    let part = prop_oneof![
        proptest::sample::select(
            &[
                "budget=0",
                "budget=1",
                "budget=007",
                "budget=+5",
                "budget=18446744073709551616",
                "approval",
                "approval=1",
                "expires=2027-01-01T00Z",
                "expires=2027-01-01T00:00:00.000001Z",
                "expires=9999-12-31T23:59:59.999999Z",
                "expires=0000-01-01T00:00:00Z",
                "expires=2027-01-01T00:00:00+01:00",
                "",
                "x=1"
            ][..]
        )
        .prop_map(str::to_owned),
        near_valid_text(),
    ];
    (near_valid_text(), near_valid_text(), vec(part, 0..4)).prop_map(|(a, r, parts)| {
        let mut s = format!("{a}@{r}");
        for p in parts {
            s.push(',');
            s.push_str(&p);
        }
        s
    })
}

proptest! {
    #![proptest_config(config(3000))]

    #[test]
    fn texts_never_panic_and_print_as_they_parse(s in text()) {
        check_every_text_type(&s);
    }

    #[test]
    fn capability_texts_never_panic_and_print_as_they_parse(s in capability_text()) {
        check_text::<Capability>(&s);
    }
}

// ---------------------------------------------------------------------------------------------
// 4. The store's records, corrupted.

/// A small log made the real way (`decide`, append, fold): two teams, hires with grants, a
/// spend, a refusal, a revocation, a retirement, an approval asked for.
/// One command through the ledger, as [`sample_log`] runs it.
type Exec<'a> = dyn FnMut(&mut Ledger<MemLog>, Command, &Actor) -> Vec<Envelope> + 'a;

fn sample_log() -> Vec<Envelope> {
    let log = Arc::new(MemLog::new());
    let mut ledger = Ledger::open(Arc::clone(&log)).unwrap();
    let mut entropy = CountingEntropy::new(7);
    let op = Actor::Operator(Name::parse("op").unwrap());
    let mut at = Timestamp::from_millis(1_790_000_000_000);
    // Each command a millisecond after the last; a refused agent's command leaves its audit.
    let mut exec = |ledger: &mut Ledger<MemLog>, cmd: Command, actor: &Actor| -> Vec<Envelope> {
        at = Timestamp::from_millis(at.as_millis() + 1);
        let before = ledger.log().len();
        match ledger.execute(cmd, actor, at, &mut entropy) {
            Ok(envelopes) => envelopes,
            Err(ExecuteError::Refused(_)) => ledger.log().read(before, 100).unwrap(),
            Err(e) => panic!("{e}"),
        }
    };
    let team = |w: &mut Ledger<MemLog>, exec: &mut Exec<'_>, n: &str| {
        exec(
            w,
            Command::CreateTeam {
                name: Name::parse(n).unwrap(),
            },
            &op,
        )[0]
        .team
    };
    let research = team(&mut ledger, &mut exec, "research");
    let ops = team(&mut ledger, &mut exec, "ops");
    let mut hire = |w: &mut Ledger<MemLog>, team, n: &str, by: &Actor, grants: &[&str]| {
        let cmd = Command::Hire {
            team,
            name: Name::parse(n).unwrap(),
            role: Label::parse("finds things, « quoted »").unwrap(),
            spec: AgentSpec::base(),
            disk: roster_core::limits::DiskMib::default(),
            grants: grants
                .iter()
                .map(|c| Capability::parse(c).unwrap())
                .collect(),
        };
        exec(w, cmd, by)
            .iter()
            .find_map(|e| match &e.event {
                Event::AgentHired { agent, .. } => Some(*agent),
                _ => None,
            })
            .unwrap()
    };
    let lead = hire(
        &mut ledger,
        research,
        "lead",
        &op,
        &[
            "agent.hire@team:research",
            "email.send@mailbox:*,budget=10",
            "spend.usd@vendor:*,approval,expires=2099-01-01T00:00:00Z",
        ],
    );
    let scout = hire(
        &mut ledger,
        research,
        "scout",
        &Actor::Agent(lead),
        &["email.send@mailbox:team,budget=5"],
    );
    hire(&mut ledger, ops, "other", &op, &["email.send@mailbox:*"]);
    let act = |action: &str, resource: &str, n| Command::Act {
        action: Action::parse(action).unwrap(),
        resource: Resource::parse(resource).unwrap(),
        amount: Amount::new(n).unwrap(),
        args: Default::default(),
        approval: None,
        key: None,
    };
    exec(
        &mut ledger,
        act("email.send", "mailbox:team", 3),
        &Actor::Agent(scout),
    );
    exec(
        &mut ledger,
        act("fly.plane", "sky:north", 1),
        &Actor::Agent(scout),
    );
    exec(
        &mut ledger,
        act("spend.usd", "vendor:acme", 2),
        &Actor::Agent(lead),
    );
    let grant = ledger.world().grants_of(scout).next().unwrap().id;
    exec(&mut ledger, Command::Revoke { grant }, &op);
    exec(&mut ledger, Command::Retire { agent: scout }, &op);
    let all = log.read(0, 1000).unwrap();
    assert!(all.len() >= 12, "{}", all.len());
    all
}

/// One way to damage a record's bytes.
#[derive(Debug, Clone)]
enum Corruption {
    /// Flips these bits (byte index, bit).
    Flip(Vec<(prop::sample::Index, u8)>),
    /// Keeps only a prefix.
    Truncate(prop::sample::Index),
    /// Appends bytes.
    Extend(Vec<u8>),
    /// Overwrites a run of the body with bytes (`0xff`s make huge lengths), then re-hashes the
    /// record so that it passes its own hash check: only the chain can tell.
    Forge(prop::sample::Index, Vec<u8>),
    /// Puts another position's record here.
    Swap(prop::sample::Index),
}

fn corruption() -> impl Strategy<Value = Corruption> {
    let run = prop_oneof![
        vec(any::<u8>(), 1..12),
        (1usize..12).prop_map(|n| vec![0xff; n]),
        Just(vec![
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01
        ]),
    ];
    prop_oneof![
        3 => vec((any::<prop::sample::Index>(), 0u8..8), 1..4).prop_map(Corruption::Flip),
        1 => any::<prop::sample::Index>().prop_map(Corruption::Truncate),
        1 => vec(any::<u8>(), 1..16).prop_map(Corruption::Extend),
        4 => (any::<prop::sample::Index>(), run).prop_map(|(i, r)| Corruption::Forge(i, r)),
        1 => any::<prop::sample::Index>().prop_map(Corruption::Swap),
    ]
}

fn corrupt(records: &[Vec<u8>], at: usize, how: &Corruption) -> Vec<u8> {
    let mut b = records[at].clone();
    match how {
        Corruption::Flip(bits) => {
            for (i, bit) in bits {
                let i = i.index(b.len());
                b[i] ^= 1 << bit;
            }
        }
        Corruption::Truncate(i) => b.truncate(i.index(b.len())),
        Corruption::Extend(more) => b.extend_from_slice(more),
        Corruption::Forge(i, run) => {
            let start = record::HEADER_LEN + i.index(b.len() - record::HEADER_LEN);
            for (k, byte) in run.iter().enumerate() {
                match b.get_mut(start + k) {
                    Some(x) => *x = *byte,
                    None => b.push(*byte),
                }
            }
            let forged = chain_hash(
                &Hash(b[1..33].try_into().unwrap()),
                &b[record::HEADER_LEN..],
            );
            b[33..65].copy_from_slice(&forged.0);
        }
        Corruption::Swap(i) => b = records[i.index(records.len())].clone(),
    }
    b
}

/// The position a corrupt-log error names.
fn position(e: &LogError) -> Option<u64> {
    match e {
        LogError::Corrupt(
            ChainError::HashMismatch { seq }
            | ChainError::BrokenLink { seq }
            | ChainError::Undecodable { seq, .. },
        ) => Some(*seq),
        LogError::Corrupt(ChainError::Gap { expected, .. }) => Some(*expected),
        _ => None,
    }
}

proptest! {
    #![proptest_config(config(3000))]

    /// A damaged record decodes to an error naming its position, or — forged to pass its own
    /// hash — to an envelope the chain then refuses: at this position (its link) or the next
    /// (the next one's link to it). Never a panic, never a huge allocation (it would abort).
    #[test]
    fn a_damaged_record_never_decodes_into_the_chain(at in any::<prop::sample::Index>(), how in corruption()) {
        let log = sample_log_cached();
        let records: Vec<Vec<u8>> = log.iter().map(record::encode).collect();
        let seq = at.index(log.len());
        let bytes = corrupt(&records, seq, &how);
        let mut chain = log.to_vec();
        match record::decode(seq as u64, &bytes) {
            Err(e) => {
                prop_assert!(bytes != records[seq]);
                prop_assert_eq!(position(&LogError::Corrupt(e)), Some(seq as u64));
                return Ok(());
            }
            Ok(env) if bytes == records[seq] => {
                prop_assert_eq!(&env, &log[seq]);
                return Ok(());
            }
            Ok(env) => chain[seq] = env,
        }
        // Decoded although damaged: the chain check must refuse it, unless it is the last
        // record (nothing links to it; the hash chain cannot tell without an anchor).
        let broken = chain.iter().enumerate().find_map(|(i, e)| {
            e.follows(i.checked_sub(1).map(|p| &chain[p])).err().map(|err| (i, err))
        });
        match broken {
            Some((i, _)) => prop_assert!(i == seq || i == seq + 1, "broken at {}, damaged {}", i, seq),
            None => prop_assert_eq!(seq, log.len() - 1, "a damaged record passed the chain"),
        }
    }
}

fn sample_log_cached() -> &'static [Envelope] {
    static LOG: std::sync::OnceLock<Vec<Envelope>> = std::sync::OnceLock::new();
    LOG.get_or_init(sample_log)
}

/// A store whose record was damaged on disk (written into sled under its key) does not open:
/// the error names the damaged position (or the next, whose link to it broke), and opening
/// changes nothing — a second open fails the same way. Put back, the record opens and verifies
/// as before. Each case opens sled twice, so this runs far fewer cases than the decoder's
/// property.
#[test]
fn a_store_with_a_damaged_record_on_disk_does_not_open_and_is_left_as_it_was() {
    let log = sample_log_cached();
    let records: Vec<Vec<u8>> = log.iter().map(record::encode).collect();
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("log");
    SledLog::open(&store)
        .unwrap()
        .append_sealed(log.to_vec())
        .unwrap();
    let mut runner = proptest::test_runner::TestRunner::new(Config {
        cases: cases(24, 5000),
        failure_persistence: Some(Box::new(FileFailurePersistence::Off)),
        ..Config::default()
    });
    // The last record forged passes (nothing links to it), so it is not damaged here.
    let strategy = (0..log.len() - 1, corruption());
    runner
        .run(&strategy, |(seq, how)| {
            // A failed case left its damage (this is for shrinking): put every record back.
            baseline::insert_and_flush(&store, &records, 64).unwrap();
            let bytes = corrupt(&records, seq, &how);
            if bytes == records[seq] {
                return Ok(());
            }
            let mut damaged = records[..=seq].to_vec();
            damaged[seq] = bytes;
            baseline::insert_and_flush(&store, &damaged, 64).unwrap();
            let e = SledLog::open(&store).expect_err("a damaged store opened");
            // Opened again, it is refused the same way: the failed open repaired or moved
            // nothing (sled's own files are no measure: it rewrites them on any open).
            let again = SledLog::open(&store).expect_err("a damaged store opened the second time");
            prop_assert_eq!(again.to_string(), e.to_string());
            let at = position(&e);
            prop_assert!(
                at == Some(seq as u64) || at == Some(seq as u64 + 1),
                "{} for position {}",
                e,
                seq
            );
            prop_assert!(
                e.to_string().contains(&format!("position {}", at.unwrap())),
                "{}",
                e
            );
            baseline::insert_and_flush(&store, &records[..=seq], 64).unwrap();
            Ok(())
        })
        .unwrap();
    let reopened = SledLog::open(&store).unwrap();
    assert_eq!(reopened.verify().unwrap(), log.len() as u64);
    assert_eq!(reopened.read(0, 1000).unwrap(), log);
}
