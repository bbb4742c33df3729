//! Properties of the permission algebra: `covers`, matching, the text form and the parser.
//!
//! The generators draw from a tiny alphabet (`a`, `b`; kinds `k`, `j`; segments `x`, `y`) so that
//! patterns overlap often, and they build related pairs on purpose (a child narrowed from its
//! parent, a parent widened from its child, a use made by filling in a pattern's wildcards), so
//! that the premise of each implication is true in a large share of the cases; the
//! `*_premise_is_often_true` tests measure that share and fail if a change to the generators
//! makes a property vacuous.

// Test code, helpers included: a failed unwrap or a panic is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{arb_cap, CapSpec, Pat, Rng, SMALL, T0};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;
use roster_core::capability::{
    covers, why_not_covered, Action, Capability, Resource, MAX_CAPABILITY_LEN,
};

/// Cases per property (each case is cheap: pure functions over small patterns).
const CASES: u32 = 1024;

fn config() -> ProptestConfig {
    // PROPTEST_CASES overrides the count for a longer soak.
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(CASES);
    ProptestConfig {
        cases,
        // Failures print their minimal input; regressions worth keeping become named tests.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// A concrete use over the small alphabet, with or without a kind.
fn arb_use() -> impl Strategy<Value = (Action, Resource)> {
    (
        prop::collection::vec(prop::sample::select(SMALL.action), 1..=4),
        prop::option::of(prop::sample::select(SMALL.kinds)),
        prop::collection::vec(prop::sample::select(SMALL.resource), 1..=4),
    )
        .prop_map(|(a, k, r)| {
            let res = match k {
                Some(k) => format!("{k}:{}", r.join("/")),
                None => r.join("/"),
            };
            (
                Action::parse(&a.join(".")).unwrap(),
                Resource::parse(&res).unwrap(),
            )
        })
}

/// How a (parent, child) pair was made.
#[derive(Debug, Clone, Copy)]
enum Relation {
    /// The child narrowed from the parent: covered by construction.
    Narrowed,
    /// The parent widened from the child: covered by construction.
    Widened,
    /// The child narrowed from the parent, then one thing widened or loosened: mostly not
    /// covered, by a little.
    NearMiss,
    /// Drawn independently: covered now and then.
    Independent,
}

#[derive(Debug, Clone)]
struct Pair {
    parent: CapSpec,
    child: CapSpec,
    relation: Relation,
    /// A use the child matches (made by filling in its wildcards) or a random one.
    used: (Action, Resource),
    used_is_instance: bool,
}

fn arb_pair() -> impl Strategy<Value = Pair> {
    (
        arb_cap(&SMALL),
        arb_cap(&SMALL),
        prop_oneof![
            2 => Just(Relation::Narrowed),
            2 => Just(Relation::Widened),
            2 => Just(Relation::NearMiss),
            1 => Just(Relation::Independent),
        ],
        any::<u64>(),
        prop::bool::weighted(0.8),
        arb_use(),
    )
        .prop_map(|(a, b, relation, seed, instance, random_use)| {
            let mut rng = Rng::new(seed);
            let (parent, child) = match relation {
                Relation::Narrowed => {
                    let c = a.attenuate(&mut rng, &SMALL);
                    (a, c)
                }
                Relation::Widened => (a.generalize(&mut rng), a),
                Relation::NearMiss => {
                    let c = a.attenuate(&mut rng, &SMALL).near_miss(&mut rng, &SMALL);
                    (a, c)
                }
                Relation::Independent => (a, b),
            };
            let used = if instance {
                child.instantiate(&mut rng, &SMALL)
            } else {
                random_use
            };
            Pair {
                parent,
                child,
                relation,
                used,
                used_is_instance: instance,
            }
        })
}

/// Draws `n` values of `strategy` with a fixed seed.
fn sample<S: Strategy>(strategy: S, n: usize) -> Vec<S::Value> {
    let mut runner = TestRunner::deterministic();
    (0..n)
        .map(|_| strategy.new_tree(&mut runner).unwrap().current())
        .collect()
}

proptest! {
    #![proptest_config(config())]

    /// (a) Whatever the child matches, the parent matches.
    #[test]
    fn covers_is_sound(pair in arb_pair()) {
        let (p, c) = (pair.parent.cap(), pair.child.cap());
        let (action, resource) = &pair.used;
        if pair.used_is_instance {
            prop_assert!(c.matches(action, resource), "{c} must match its own instance {action}@{resource}");
        }
        if matches!(pair.relation, Relation::Narrowed | Relation::Widened) {
            prop_assert!(covers(&p, &c), "{p} must cover {c}, made from it by {:?}", pair.relation);
        }
        if covers(&p, &c) && c.matches(action, resource) {
            prop_assert!(p.matches(action, resource), "{p} covers {c}, which matches {action}@{resource}, but {p} does not");
        }
    }

    /// (a'') `covers` is exactly the design's rule: the child's patterns match a subset of the
    /// parent's — decided here by trying every use over the literals both name plus a fresh
    /// one, up to one segment longer than either — and the constraint rule holds. Catches a
    /// `covers` that is unsound (too wide) and one that refuses what it should allow.
    #[test]
    fn covers_is_exactly_inclusion_and_the_rule(pair in arb_pair()) {
        let (p, c) = (&pair.parent, &pair.child);
        let want = p.pattern_includes(c) && rule(p, c);
        prop_assert_eq!(covers(&p.cap(), &c.cap()), want, "covers({}, {})", p.text(), c.text());
    }

    /// `matches` agrees with a plainly written matcher, on instances and on random uses.
    #[test]
    fn matches_agrees_with_a_plain_matcher(pair in arb_pair()) {
        for spec in [&pair.parent, &pair.child] {
            let (action, resource) = &pair.used;
            let a: Vec<&str> = action.as_str().split('.').collect();
            let (kind, path) = match resource.as_str().split_once(':') {
                Some((k, p)) => (Some(k), p),
                None => (None, resource.as_str()),
            };
            let path: Vec<&str> = path.split('/').collect();
            prop_assert_eq!(
                spec.cap().matches(action, resource),
                spec.matches_use(&a, kind, &path),
                "{} on {}@{}", spec.text(), action, resource
            );
        }
    }

    /// (a') Against a concrete capability, `covers` is exactly matching: a pattern covers
    /// `ACTION@RESOURCE` if and only if it matches that use.
    #[test]
    fn covering_a_concrete_capability_is_matching(p in arb_cap(&SMALL), used in arb_use()) {
        let (action, resource) = &used;
        let p = Capability::parse(&p.pattern_text()).unwrap();
        let concrete = common::cap(&format!("{action}@{resource}"));
        prop_assert!(concrete.matches(action, resource));
        prop_assert_eq!(covers(&p, &concrete), p.matches(action, resource), "{} vs {}@{}", p, action, resource);
    }

    /// (b) Every capability covers itself.
    #[test]
    fn covers_is_reflexive(c in arb_cap(&SMALL)) {
        let c = c.cap();
        prop_assert!(covers(&c, &c), "{c} does not cover itself");
        prop_assert_eq!(why_not_covered(&c, &c), None);
    }

    /// (b) If p covers q and q covers r, p covers r.
    #[test]
    fn covers_is_transitive(triple in arb_triple()) {
        let (p, q, r) = (triple.0.cap(), triple.1.cap(), triple.2.cap());
        if covers(&p, &q) && covers(&q, &r) {
            prop_assert!(covers(&p, &r), "{p} covers {q} covers {r}, but not {p} → {r}");
        }
    }

    /// (c) The text form round-trips, is canonical, and is what serde writes.
    #[test]
    fn display_round_trips_and_is_canonical(spec in arb_cap(&SMALL), other in arb_cap(&SMALL), seed in any::<u64>()) {
        let text = spec.text();
        let c = Capability::parse(&text).unwrap();
        prop_assert_eq!(c.to_string(), text.clone());
        prop_assert_eq!(Capability::parse(&c.to_string()).unwrap(), c.clone());
        prop_assert_eq!(c.pattern_text(), spec.pattern_text());
        prop_assert_eq!(CapSpec::of(&c), spec.clone());
        // Constraints in any order: the same value, printed the one canonical way. A budget
        // has one spelling: with leading zeros it is refused.
        let mut rng = Rng::new(seed);
        let mut constraints = spec.constraint_texts();
        for i in (1..constraints.len()).rev() {
            constraints.swap(i, rng.below(i + 1));
        }
        let shuffled: Vec<String> = constraints
            .into_iter()
            .collect();
        if let Some(b) = spec.constraint_texts().iter().find_map(|c| c.strip_prefix("budget=")) {
            let padded = format!("{},budget=00{b}", spec.pattern_text());
            prop_assert!(Capability::parse(&padded).is_err(), "{} was accepted", padded);
        }
        let mut noncanonical = spec.pattern_text();
        for c in &shuffled {
            noncanonical.push(',');
            noncanonical.push_str(c);
        }
        let d = Capability::parse(&noncanonical).unwrap();
        prop_assert_eq!(&d, &c, "{} and {} differ", noncanonical, text);
        prop_assert_eq!(d.to_string(), text.clone());
        // Equal values print equally, and only equal values do.
        let o = other.cap();
        prop_assert_eq!(o == c, o.to_string() == c.to_string());
        // serde is the text, both ways.
        let json = serde_json::to_string(&c).unwrap();
        prop_assert_eq!(json.clone(), serde_json::to_string(&text).unwrap());
        prop_assert_eq!(serde_json::from_str::<Capability>(&json).unwrap(), c);
    }

    /// (d) The parser never panics, and whatever it accepts prints canonically and re-parses to
    /// the same value.
    #[test]
    fn parser_accepts_only_what_round_trips(input in arb_text()) {
        check_parse(&input)?;
    }

    /// (d) Near the length limit, with every time format the parser accepts: the printed form of
    /// an accepted capability must itself be accepted (the log stores the printed form; a
    /// capability that does not re-parse would make the log undecodable).
    #[test]
    fn texts_near_the_length_limit_round_trip(pad in 900usize..=1030, form in 0usize..EXPIRY_FORMS.len(), budget in any::<bool>()) {
        let tail = format!(
            "{},expires={}",
            if budget { ",budget=+0042" } else { "" },
            EXPIRY_FORMS[form]
        );
        let head = "a@k:";
        let room = pad.saturating_sub(head.len() + tail.len()).max(1);
        // Segments of at most 255 bytes.
        let segs: Vec<String> = (0..room.div_ceil(200))
            .map(|i| "x".repeat((room - i * 200).min(200)))
            .filter(|s| !s.is_empty())
            .collect();
        let input = format!("{head}{}{tail}", segs.join("/"));
        check_parse(&input)?;
    }

    /// (e) `why_not_covered` explains exactly the refusals of `covers`.
    #[test]
    fn why_not_covered_agrees_with_covers(pair in arb_pair()) {
        let (p, c) = (pair.parent.cap(), pair.child.cap());
        let why = why_not_covered(&p, &c);
        prop_assert_eq!(why.is_none(), covers(&p, &c), "{} / {}: {:?}", p, c, why);
        if let Some(why) = why {
            prop_assert!(!why.is_empty());
        }
    }

    /// (f) With equal patterns, covering is exactly the constraint rule: a budget no higher, an
    /// approval kept, an expiry no later; and any covering pair obeys that rule.
    #[test]
    fn constraints_are_kept_exactly_as_covers_says(pair in arb_pair(), limits in arb_limits(), limits2 in arb_limits()) {
        // Same patterns, independent limits.
        let mut p = pair.parent.clone();
        let mut c = pair.parent.clone();
        (p.budget, p.approval, p.expires) = limits;
        (c.budget, c.approval, c.expires) = limits2;
        prop_assert_eq!(covers(&p.cap(), &c.cap()), rule(&p, &c), "{} / {}", p.text(), c.text());
        // Any pair: covering implies the rule.
        if covers(&pair.parent.cap(), &pair.child.cap()) {
            prop_assert!(rule(&pair.parent, &pair.child), "{} covers {} against the rule", pair.parent.text(), pair.child.text());
        }
    }

    /// Concrete actions and resources: the parser never panics, and accepted text is kept as is
    /// and matched by the capability spelled the same way.
    #[test]
    fn concrete_uses_parse_or_refuse(a in arb_text(), r in arb_text()) {
        let action = Action::parse(&a);
        let resource = Resource::parse(&r);
        if let Ok(action) = &action {
            prop_assert_eq!(action.as_str(), a.as_str());
            prop_assert!(!a.contains('*'));
        }
        if let Ok(resource) = &resource {
            prop_assert_eq!(resource.as_str(), r.as_str());
            prop_assert!(!r.contains('*'));
        }
        if let (Ok(action), Ok(resource)) = (action, resource) {
            if let Ok(c) = Capability::parse(&format!("{action}@{resource}")) {
                prop_assert!(c.matches(&action, &resource), "{c} vs {action}@{resource}");
            }
        }
    }
}

/// Budget, approval, expiry.
fn arb_limits() -> impl Strategy<Value = (Option<u64>, bool, Option<roster_core::time::Timestamp>)>
{
    (
        prop::option::of(0u64..=4),
        any::<bool>(),
        prop::option::of((1i64..=3).prop_map(|h| T0.plus_micros(h * common::HOUR))),
    )
}

/// The design's constraint rule, written out.
fn rule(p: &CapSpec, c: &CapSpec) -> bool {
    let budget = match (p.budget, c.budget) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(pb), Some(cb)) => cb <= pb,
    };
    let expires = match (p.expires, c.expires) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(pe), Some(ce)) => ce <= pe,
    };
    budget && expires && (!p.approval || c.approval)
}

fn arb_triple() -> impl Strategy<Value = (CapSpec, CapSpec, CapSpec)> {
    (
        arb_cap(&SMALL),
        arb_cap(&SMALL),
        arb_cap(&SMALL),
        any::<u64>(),
        0u8..4,
    )
        .prop_map(|(p, q0, r0, seed, mode)| {
            let mut rng = Rng::new(seed);
            let q = if mode & 1 == 0 {
                p.attenuate(&mut rng, &SMALL)
            } else {
                q0
            };
            let r = if mode & 2 == 0 {
                q.attenuate(&mut rng, &SMALL)
            } else {
                r0
            };
            (p, q, r)
        })
}

/// Time formats the parser takes for `expires=`: RFC 3339 only (all the same instant or close
/// to it). Compact forms and annotations are refused (see `time.rs`'s unit tests).
const EXPIRY_FORMS: &[&str] = &[
    "2030-01-01T00:00:00Z",
    "2030-01-01t00:00:00z",
    "2030-01-01T01:00:00+01:00",
    "2030-01-01T00:00:00.5Z",
    "2030-01-01T00:00:00.000001Z",
];

/// Strings to feed the parser: arbitrary Unicode, strings over the capability alphabet, and
/// valid capabilities with a few random edits.
fn arb_text() -> impl Strategy<Value = String> {
    prop_oneof![
        1 => any::<String>(),
        3 => "[a-z.*@:/,=0-9]{0,40}",
        3 => (arb_cap(&SMALL), prop::collection::vec((any::<prop::sample::Index>(), 0u8..3, prop::sample::select(&b"ab.*@:/,=0-9xk"[..])), 0..4))
            .prop_map(|(spec, edits)| {
                let mut bytes = spec.text().into_bytes();
                for (at, op, ch) in edits {
                    let i = at.index(bytes.len() + 1);
                    match op {
                        0 => bytes.insert(i, ch),
                        1 if i < bytes.len() => { bytes.remove(i); }
                        _ => bytes.truncate(i),
                    }
                }
                String::from_utf8(bytes).unwrap()
            }),
    ]
}

fn check_parse(input: &str) -> Result<(), TestCaseError> {
    let Ok(c) = Capability::parse(input) else {
        return Ok(());
    };
    let printed = c.to_string();
    prop_assert!(
        printed.len() <= MAX_CAPABILITY_LEN,
        "accepted `{input}` ({} bytes) prints as {} bytes, over the limit",
        input.len(),
        printed.len()
    );
    let again = Capability::parse(&printed);
    prop_assert_eq!(
        again.as_ref(),
        Ok(&c),
        "`{}` printed as `{}`",
        input,
        printed
    );
    prop_assert_eq!(again.unwrap().to_string(), printed.clone());
    // The log stores capabilities through serde (postcard); they must come back.
    let bytes = postcard::to_allocvec(&c).unwrap();
    prop_assert_eq!(postcard::from_bytes::<Capability>(&bytes).ok(), Some(c));
    Ok(())
}

#[test]
fn covers_premise_is_often_true() {
    let pairs = sample(arb_pair(), 2000);
    let premise = pairs
        .iter()
        .filter(|p| {
            let (c, used) = (p.child.cap(), &p.used);
            covers(&p.parent.cap(), &c) && c.matches(&used.0, &used.1)
        })
        .count();
    // Near misses land on both sides of the line, which is where a wrong `covers` shows.
    let near: Vec<&Pair> = pairs
        .iter()
        .filter(|p| matches!(p.relation, Relation::NearMiss))
        .collect();
    let near_covered = near
        .iter()
        .filter(|p| covers(&p.parent.cap(), &p.child.cap()))
        .count();
    assert!(
        near_covered * 10 >= near.len() && (near.len() - near_covered) * 10 >= near.len(),
        "near misses covered {near_covered} of {}",
        near.len()
    );
    let refused = pairs
        .iter()
        .filter(|p| !covers(&p.parent.cap(), &p.child.cap()))
        .count();
    assert!(
        premise * 2 >= pairs.len(),
        "covers && matches held in only {premise} of {} cases",
        pairs.len()
    );
    assert!(
        refused * 10 >= pairs.len(),
        "only {refused} refusals: why_not_covered is barely exercised"
    );
}

#[test]
fn transitivity_premise_is_often_true() {
    let triples = sample(arb_triple(), 2000);
    let premise = triples
        .iter()
        .filter(|(p, q, r)| covers(&p.cap(), &q.cap()) && covers(&q.cap(), &r.cap()))
        .count();
    assert!(
        premise * 4 >= triples.len(),
        "p ⊒ q ⊒ r held in only {premise} of {} cases",
        triples.len()
    );
}

#[test]
fn the_generators_make_every_kind_of_pattern() {
    let specs = sample(arb_cap(&SMALL), 500);
    let has = |f: &dyn Fn(&CapSpec) -> bool| specs.iter().filter(|s| f(s)).count() >= 20;
    assert!(has(
        &|s| s.action.last() == Some(&Pat::Rest) && s.action.len() > 1
    ));
    assert!(has(&|s| s.action == [Pat::Rest]));
    assert!(has(&|s| s.kind.is_some()));
    assert!(has(&|s| s.kind.is_none()));
    assert!(has(&|s| s.resource.contains(&Pat::One)));
    assert!(has(&|s| s.resource.last() == Some(&Pat::Rest)));
    assert!(has(&|s| s.budget.is_some()));
    assert!(has(&|s| s.approval));
    assert!(has(&|s| s.expires.is_some()));
    let texts = sample(arb_text(), 2000);
    let accepted = texts
        .iter()
        .filter(|t| Capability::parse(t).is_ok())
        .count();
    assert!(
        accepted >= 200,
        "only {accepted} of 2000 fuzzed texts parse"
    );
}
