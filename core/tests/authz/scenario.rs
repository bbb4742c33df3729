//! Generated scenarios: two teams with operator-hired leads, then commands that name agents,
//! grants and approvals by index into whatever exists when they run — so most of them refer to
//! something real, and many are allowed.

use proptest::prelude::*;

use crate::common::{arb_cap, Alphabet, CapSpec};

/// Segments of the generated worlds' capabilities.
pub static WORLD: Alphabet = Alphabet {
    action: &["email", "send", "spend", "usd"],
    kinds: &["mailbox", "k"],
    resource: &["alice", "bob", "x"],
};

/// Team names: the first two are created by the prelude, so creating any of them may collide.
pub const TEAM_NAMES: &[&str] = &["t0", "t1", "t2"];
/// Agent names: few, so that names collide now and then.
pub const AGENT_NAMES: &[&str] = &["a0", "a1", "a2", "a3", "a4", "a5"];

/// Who issues a command.
#[derive(Debug, Clone)]
pub enum Who {
    /// The operator.
    Operator,
    /// The agent at this index (modulo the number of agents), retired ones included.
    Agent(usize),
}

/// A capability asked for.
#[derive(Debug, Clone)]
pub enum Req {
    /// Narrowed from the asker's grant at this index: usually covered.
    Narrow { grant: usize, seed: u64 },
    /// Anything: usually refused.
    Any(CapSpec),
}

/// One command of a scenario. `targeted` choices pick among the things for which the command
/// can succeed (an agent allowed to hire, a pending approval, …); the others pick among all.
#[derive(Debug, Clone)]
pub enum Op {
    CreateTeam {
        name: usize,
    },
    OperatorHire {
        team: usize,
        name: usize,
        grants: Vec<CapSpec>,
    },
    AgentHire {
        hirer: usize,
        targeted: bool,
        /// `None`: the hirer's own team.
        team: Option<usize>,
        name: usize,
        grants: Vec<Req>,
    },
    /// An agent gives a grant (to a teammate when targeted); `name_parent` passes `from`.
    Delegate {
        by: usize,
        targeted: bool,
        to: usize,
        req: Req,
        name_parent: bool,
    },
    OperatorGrant {
        to: usize,
        cap: CapSpec,
    },
    /// Targeted: a grant something derives from (an agent: one derived from its own).
    Revoke {
        by: Who,
        grant: usize,
        targeted: bool,
    },
    /// Targeted: an agent allowed to retire, retiring one of its own hires.
    Retire {
        by: Who,
        targeted: bool,
        target: usize,
    },
    /// Act on a use drawn from one of the agent's grants (targeted: an agent in service).
    Act {
        agent: usize,
        targeted: bool,
        grant: usize,
        seed: u64,
        amount: u64,
    },
    /// Replay an approval's request with its id, as its agent or (`thief`) another one.
    /// Targeted: a granted, unused approval.
    UseApproval {
        approval: usize,
        targeted: bool,
        thief: Option<usize>,
    },
    /// Targeted: an undecided approval.
    Decide {
        by: Who,
        approval: usize,
        targeted: bool,
        approved: bool,
    },
    /// The runtime records a container starting or stopping (retired agents included: a late
    /// lifecycle event must not bring one back).
    Lifecycle {
        agent: usize,
        start: bool,
    },
    /// A command from an agent id that does not exist.
    Ghost {
        seed: u64,
    },
    Tick {
        half_hours: u8,
    },
}

/// The root grants the operator gives a team's lead: `agent.hire@team:T[,budget=N]`,
/// `grant.delegate@team:T`, maybe `agent.retire@team:T`, maybe `spend.*@**,budget=N`, maybe
/// `*@**[,budget=N]`, and random ones.
#[derive(Debug, Clone)]
pub struct Lead {
    pub hire_budget: Option<u64>,
    pub retire: bool,
    pub spend: Option<u64>,
    pub wide: Option<Option<u64>>,
    pub roots: Vec<CapSpec>,
}

/// A generated case.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub leads: Vec<Lead>,
    pub ops: Vec<Op>,
}

/// What a scenario is mostly made of.
#[derive(Debug, Clone, Copy)]
pub enum Profile {
    /// Every kind of command.
    Mixed,
    /// Mostly hires, actions and approvals: spends by teammates through shared ancestors.
    Spending,
}

/// A capability for a generated world: budgets big enough for a few uses of 1–3, and fewer of
/// them need approval than in the algebra's tests, so that actions often happen.
pub fn world_cap() -> impl Strategy<Value = CapSpec> {
    (arb_cap(&WORLD), prop::bool::weighted(0.5)).prop_map(|(mut c, keep_approval)| {
        c.budget = c.budget.map(|b| 4 + b % 20);
        c.approval &= keep_approval;
        c
    })
}

fn arb_who(operator_weight: u32) -> impl Strategy<Value = Who> {
    prop_oneof![
        operator_weight => Just(Who::Operator),
        2 => any::<usize>().prop_map(Who::Agent),
    ]
}

fn arb_req() -> impl Strategy<Value = Req> {
    prop_oneof![
        8 => (any::<usize>(), any::<u64>()).prop_map(|(grant, seed)| Req::Narrow { grant, seed }),
        1 => world_cap().prop_map(Req::Any),
    ]
}

fn arb_amount() -> impl Strategy<Value = u64> {
    prop_oneof![4 => 1u64..=3, 1 => Just(60u64)]
}

fn mostly() -> impl Strategy<Value = bool> {
    prop::bool::weighted(0.8)
}

fn arb_op(profile: Profile) -> impl Strategy<Value = Op> {
    // Weights: hire, revoke, retire, act, approvals.
    let (hire, revoke, retire, act, approvals) = match profile {
        Profile::Mixed => (6, 3, 2, 10, 4),
        Profile::Spending => (6, 1, 1, 24, 6),
    };
    prop_oneof![
        1 => (0..TEAM_NAMES.len()).prop_map(|name| Op::CreateTeam { name }),
        1 => (any::<usize>(), 0..AGENT_NAMES.len(), prop::collection::vec(world_cap(), 0..=2))
            .prop_map(|(team, name, grants)| Op::OperatorHire { team, name, grants }),
        hire => (
            any::<usize>(),
            mostly(),
            prop::option::weighted(0.2, any::<usize>()),
            0..AGENT_NAMES.len(),
            prop::collection::vec(arb_req(), 1..=3),
        )
            .prop_map(|(hirer, targeted, team, name, grants)| Op::AgentHire {
                hirer,
                targeted,
                team,
                name,
                grants,
            }),
        2 => (any::<usize>(), mostly(), any::<usize>(), arb_req(), any::<bool>()).prop_map(
            |(by, targeted, to, req, name_parent)| Op::Delegate {
                by,
                targeted,
                to,
                req,
                name_parent,
            }
        ),
        1 => (any::<usize>(), world_cap()).prop_map(|(to, cap)| Op::OperatorGrant { to, cap }),
        revoke => (arb_who(2), any::<usize>(), mostly())
            .prop_map(|(by, grant, targeted)| Op::Revoke { by, grant, targeted }),
        retire => (arb_who(1), mostly(), any::<usize>())
            .prop_map(|(by, targeted, target)| Op::Retire { by, targeted, target }),
        act => (any::<usize>(), prop::bool::weighted(0.9), any::<usize>(), any::<u64>(), arb_amount())
            .prop_map(|(agent, targeted, grant, seed, amount)| Op::Act {
                agent,
                targeted,
                grant,
                seed,
                amount,
            }),
        approvals => (any::<usize>(), mostly(), prop::option::weighted(0.2, any::<usize>()))
            .prop_map(|(approval, targeted, thief)| Op::UseApproval {
                approval,
                targeted,
                thief,
            }),
        approvals => (arb_who(8), any::<usize>(), mostly(), prop::bool::weighted(0.7)).prop_map(
            |(by, approval, targeted, approved)| Op::Decide {
                by,
                approval,
                targeted,
                approved,
            }
        ),
        1 => (any::<usize>(), any::<bool>()).prop_map(|(agent, start)| Op::Lifecycle { agent, start }),
        1 => any::<u64>().prop_map(|seed| Op::Ghost { seed }),
        1 => (1u8..=4).prop_map(|half_hours| Op::Tick { half_hours }),
    ]
}

fn arb_lead(profile: Profile) -> impl Strategy<Value = Lead> {
    // Spending: nearly always a budgeted `spend.*@**`, and few other roots to dilute it.
    let (spend_odds, roots) = match profile {
        Profile::Mixed => (0.5, 1..=4),
        Profile::Spending => (0.95, 0..=2),
    };
    (
        prop::option::weighted(0.8, 2u64..=6),
        prop::bool::weighted(0.7),
        prop::option::weighted(spend_odds, 5u64..=30),
        prop::option::weighted(0.15, prop::option::of(1u64..=20)),
        prop::collection::vec(world_cap(), roots),
    )
        .prop_map(|(hire_budget, retire, spend, wide, roots)| Lead {
            hire_budget,
            retire,
            spend,
            wide,
            roots,
        })
}

/// Two leads, then `10..=max_ops` commands.
pub fn arb_scenario(profile: Profile, max_ops: usize) -> impl Strategy<Value = Scenario> {
    (
        prop::collection::vec(arb_lead(profile), 2),
        prop::collection::vec(arb_op(profile), 10..=max_ops),
    )
        .prop_map(|(leads, ops)| Scenario { leads, ops })
}
