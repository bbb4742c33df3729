//! Properties of authorization over worlds built the only way worlds are built: by deciding
//! commands and folding the accepted decisions' events, sealed into a hash-chained log.
//!
//! Every case starts from two teams, each with a lead hired by the operator with root grants,
//! then plays a random sequence of commands (see `authz/scenario.rs`): hires by the operator
//! and by agents (asking for grants narrowed from their own, or random ones), delegations,
//! revocations, retirements, actions with amounts, approval requests, decisions and uses, an
//! unknown agent id, the clock moving on. Each property below plays its own cases and checks its
//! claim at the moments it speaks about (`authz/checks.rs`); `generated_worlds_exercise_every_
//! property` counts how often each claim's premise actually held, and fails if generators drift
//! into checking nothing.

// Test code, helpers included: a failed unwrap or a panic is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod authz;
mod common;

use authz::run::{drive, Checks, Stats};
use authz::scenario::{arb_scenario, Profile};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;

/// Cases per property; the whole core suite stays well under 30 s in a debug build on 2 cores.
const CASES: u32 = 128;
/// Scenarios per profile in `generated_worlds_exercise_every_property`.
const SAMPLE: u32 = 48;

fn config() -> ProptestConfig {
    // PROPTEST_CASES overrides the count for a longer soak.
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(CASES);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn only(f: impl FnOnce(&mut Checks)) -> Checks {
    let mut c = Checks::default();
    f(&mut c);
    c
}

proptest! {
    #![proptest_config(config())]

    /// (a) A child never ends up with an effective capability its hirer lacked: right after an
    /// agent hires, whatever the new agent may do (probed on instances of both agents' grants
    /// and the built-ins of every team, amounts 1, 3 and 60), the hirer may do too; and every
    /// grant an agent gives, by hire or delegation, derives from one of its own that covers it.
    #[test]
    fn a_hire_never_widens(s in arb_scenario(Profile::Mixed, 40)) {
        drive(&s, only(|c| c.hire = true), &mut Stats::default())?;
    }

    /// (b) After a revocation, a retirement, or an expiry (checked at each next expiry instant
    /// and far past all of them), the grant and every grant derived from it are inactive and
    /// authorize nothing: a use only they match is denied.
    #[test]
    fn revocation_retirement_and_expiry_cascade(s in arb_scenario(Profile::Mixed, 40)) {
        drive(&s, only(|c| c.cascade = true), &mut Stats::default())?;
    }

    /// (c) After every command, no grant has spent more than its budget — whoever spent through
    /// it, teammates sharing an ancestor included.
    #[test]
    fn spending_never_exceeds_any_budget(s in arb_scenario(Profile::Spending, 60)) {
        drive(&s, only(|c| c.budget = true), &mut Stats::default())?;
    }

    /// (d) Folding the log again (as kept, as stored, as exported to JSON) gives the world that
    /// was built incrementally, and `World::at(seq)` the world right after `seq`.
    #[test]
    fn folding_the_log_again_gives_the_same_world(s in arb_scenario(Profile::Mixed, 40)) {
        drive(&s, only(|c| c.fold = true), &mut Stats::default())?;
    }

    /// (e) Every refusal of a known agent carries an AccessDenied record for its own team, at
    /// the team's current version, naming the agent and the reason; an operator's carries none;
    /// deciding never changes the world, and recording the audit changes nothing but the log.
    #[test]
    fn refusals_are_audited_and_change_nothing(s in arb_scenario(Profile::Mixed, 40)) {
        drive(&s, only(|c| c.audit = true), &mut Stats::default())?;
    }

    /// `authorize` and `is_active` agree with an independent model fed the same events.
    #[test]
    fn authorize_agrees_with_the_model(s in arb_scenario(Profile::Mixed, 40)) {
        let mut stats = Stats::default();
        drive(&s, only(|c| c.model = true), &mut stats)?;
        prop_assert!(stats.model_checks > 0);
    }
}

/// Plays `SAMPLE` scenarios of `profile` from a fixed seed with every fast check on.
fn sample_stats(profile: Profile, max_ops: usize) -> Stats {
    let mut runner = TestRunner::deterministic();
    let strategy = arb_scenario(profile, max_ops);
    let mut stats = Stats::default();
    for _ in 0..SAMPLE {
        let s = strategy.new_tree(&mut runner).unwrap().current();
        drive(&s, Checks::FAST, &mut stats).unwrap();
    }
    println!("{profile:?}: {stats:#?}");
    stats
}

fn at_least(stats: &Stats, what: &str, n: usize, min: usize) {
    assert!(n >= min, "{what}: {n} < {min}\n{stats:#?}");
}

/// The properties are only as good as their premises: over a fixed sample of the scenarios
/// they play, each kind of moment they check must have come up many times.
#[test]
fn generated_worlds_exercise_every_property() {
    // Thresholds are about 60% of what the fixed sample produces today.
    let s = sample_stats(Profile::Mixed, 40);
    at_least(&s, "hires by agents", s.agent_hires, 80);
    at_least(
        &s,
        "uses allowed to a child at hire",
        s.hire_uses_allowed_for_child,
        1000,
    );
    at_least(
        &s,
        "revocations with descendants",
        s.revokes_with_descendants,
        15,
    );
    at_least(&s, "retirements of holders", s.retires_with_grants, 15);
    at_least(&s, "uses denied by a cascade", s.cascade_denials, 500);
    at_least(
        &s,
        "expiry checks with descendants",
        s.expiry_checks_with_descendants,
        30,
    );
    at_least(&s, "agent refusals", s.agent_rejections, 200);
    at_least(&s, "operator refusals", s.operator_rejections, 25);
    at_least(&s, "events committed", s.events, 1000);

    let s = sample_stats(Profile::Spending, 60);
    at_least(&s, "actions performed", s.acts_allowed, 250);
    at_least(
        &s,
        "spends against an ancestor's budget",
        s.acts_charging_an_ancestor_budget,
        50,
    );
    at_least(
        &s,
        "spends through a shared ancestor",
        s.acts_charging_a_shared_ancestor,
        5,
    );
    at_least(&s, "budget denials", s.budget_denials, 80);
    at_least(
        &s,
        "grants spent to the cap",
        s.grants_spent_to_the_cap,
        200,
    );
    at_least(&s, "approvals requested", s.approvals_requested, 15);
    at_least(&s, "approvals used", s.approvals_used, 2);
}
