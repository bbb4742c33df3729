//! Plays a scenario: decides each command on the current world, commits what is accepted (and
//! the audit record of what is refused) through sealed envelopes, feeds the model, and calls the
//! checks a run was asked for at the moments they speak about.

use std::collections::{BTreeMap, BTreeSet};
use std::num::NonZeroU64;

use proptest::prelude::*;
use roster_core::actor::Actor;
use roster_core::authz::Authorization;
use roster_core::capability::{Amount, Capability, Resource};
use roster_core::command::{Command, Lifecycle};
use roster_core::envelope::Envelope;
use roster_core::event::{Event, StopReason};
use roster_core::id::{AgentId, ApprovalId, CountingEntropy, GrantId, TeamId};
use roster_core::name::Label;

use super::model::{Expected, Model};
use super::scenario::{Lead, Op, Req, Scenario, Who, AGENT_NAMES, TEAM_NAMES, WORLD};
use crate::common::{self, operator, CapSpec, Harness, Rng, HOUR};

/// The result of a check.
pub type Check = Result<(), TestCaseError>;

/// Which properties a run checks.
#[derive(Debug, Default, Clone, Copy)]
pub struct Checks {
    /// (a) hires and delegations never widen.
    pub hire: bool,
    /// (b) revocation, retirement and expiry cascade.
    pub cascade: bool,
    /// (c) spends stay within every budget.
    pub budget: bool,
    /// (d) the log folds again to the same worlds.
    pub fold: bool,
    /// (e) refusals are audited and change nothing.
    pub audit: bool,
    /// `authorize` agrees with the model.
    pub model: bool,
}

impl Checks {
    /// Every check but the slow ones (fold, model).
    pub const FAST: Checks = Checks {
        hire: true,
        cascade: true,
        budget: true,
        fold: false,
        audit: true,
        model: false,
    };
}

/// How often each property's premise held.
#[derive(Debug, Default, Clone)]
pub struct Stats {
    pub agent_hires: usize,
    pub hire_uses_allowed_for_child: usize,
    pub revokes_with_descendants: usize,
    pub retires_with_grants: usize,
    pub cascade_denials: usize,
    pub expiry_checks_with_descendants: usize,
    pub acts_allowed: usize,
    pub acts_charging_an_ancestor_budget: usize,
    pub acts_charging_a_shared_ancestor: usize,
    pub budget_denials: usize,
    pub grants_spent_to_the_cap: usize,
    pub approvals_requested: usize,
    pub approvals_used: usize,
    pub agent_rejections: usize,
    pub operator_rejections: usize,
    pub model_checks: usize,
    pub events: usize,
    /// Refusals by command and cause.
    pub refusals: BTreeMap<String, usize>,
}

/// One scenario being played.
#[derive(Debug)]
pub struct Run<'a> {
    pub h: Harness,
    pub model: Model,
    pub checks: Checks,
    pub stats: &'a mut Stats,
    /// For probes.
    pub rng: Rng,
}

/// A non-zero amount.
pub fn amount(n: u64) -> Amount {
    NonZeroU64::new(n).unwrap()
}

/// Plays `scenario` with `checks`, counting into `stats`.
pub fn drive(scenario: &Scenario, checks: Checks, stats: &mut Stats) -> Check {
    let mut run = Run {
        h: Harness::new(),
        model: Model::default(),
        checks,
        stats,
        rng: Rng::new(7),
    };
    run.lead_prelude(&scenario.leads)?;
    for (i, op) in scenario.ops.iter().enumerate() {
        run.step(op)?;
        if checks.model && i % 8 == 7 {
            run.check_model()?;
        }
    }
    if checks.model {
        run.check_model()?;
    }
    if checks.cascade {
        run.check_expiry()?;
    }
    if checks.budget {
        run.check_budgets()?;
    }
    if checks.fold {
        run.check_fold()?;
    }
    Ok(())
}

impl Run<'_> {
    pub fn agents(&self) -> Vec<AgentId> {
        self.h.world.agents().map(|a| a.id).collect()
    }

    fn nth_agent(&self, i: usize) -> Option<AgentId> {
        let agents = self.agents();
        (!agents.is_empty()).then(|| agents[i % agents.len()])
    }

    /// Agents that may do the built-in `action` on their own team now.
    fn able(&self, action: &str) -> Vec<AgentId> {
        let x = common::action(action);
        let w = &self.h.world;
        w.agents()
            .filter(|a| {
                let team = Resource::team(&w.team(a.team).unwrap().name);
                let auth = w.authorize(a.id, &x, &team, amount(1), self.h.now);
                matches!(auth, Authorization::Allow { .. })
            })
            .map(|a| a.id)
            .collect()
    }

    /// The agent at index `i`, among those able to do `action` when `targeted` — among those
    /// hired by agents every other time, when some are able, so that chains grow deep.
    fn pick_agent(&self, i: usize, targeted: bool, action: &str) -> Option<AgentId> {
        if targeted {
            let able = self.able(action);
            let deep: Vec<AgentId> = able
                .iter()
                .copied()
                .filter(|a| self.h.world.agent(*a).is_some_and(|a| a.parent.is_some()))
                .collect();
            if i % 2 == 0 && !deep.is_empty() {
                return Some(deep[i / 2 % deep.len()]);
            }
            if !able.is_empty() {
                return Some(able[i % able.len()]);
            }
        }
        self.nth_agent(i)
    }

    /// The agents of `agent`'s team (itself included) that are in service.
    fn mates(&self, agent: AgentId) -> Vec<AgentId> {
        let team = self.h.world.agent(agent).unwrap().team;
        self.h
            .world
            .agents()
            .filter(|m| m.team == team && !m.is_retired())
            .map(|m| m.id)
            .collect()
    }

    fn teams(&self) -> Vec<TeamId> {
        self.h.world.teams().map(|t| t.id).collect()
    }

    pub fn grant_ids_of(&self, agent: AgentId) -> Vec<GrantId> {
        self.h.world.grants_of(agent).map(|g| g.id).collect()
    }

    /// The capability a request asks for, as `asker`: narrowed from one of its grants (an
    /// active one, mostly), with that grant as the parent to name.
    fn resolve(&self, asker: AgentId, req: &Req) -> (Capability, Option<GrantId>) {
        match req {
            Req::Any(spec) => (spec.cap(), None),
            Req::Narrow { grant, seed } => {
                let active: Vec<GrantId> = self
                    .h
                    .world
                    .active_grants_of(asker, self.h.now)
                    .iter()
                    .map(|g| g.id)
                    .collect();
                let grants = if active.is_empty() || seed % 8 == 0 {
                    self.grant_ids_of(asker)
                } else {
                    active
                };
                let mut rng = Rng::new(*seed);
                match grants.get(grant % grants.len().max(1)) {
                    Some(g) => (
                        self.model.grants[g].spec.attenuate(&mut rng, &WORLD).cap(),
                        Some(*g),
                    ),
                    None => (
                        CapSpec::of(&common::cap("email.send@mailbox:alice"))
                            .attenuate(&mut rng, &WORLD)
                            .cap(),
                        None,
                    ),
                }
            }
        }
    }

    /// Decides and commits (a refusal's audit record included), feeding the model and checking
    /// refusals (e). Returns the committed envelopes of an accepted command.
    pub fn run(
        &mut self,
        command: Command,
        actor: &Actor,
    ) -> Result<Option<Vec<Envelope>>, TestCaseError> {
        let before = self.h.world.clone();
        let shown = format!("{command:?}");
        match self.h.decide(command, actor) {
            Ok(d) => {
                let envs = self.h.commit(&d, actor);
                for e in &envs {
                    self.model.observe(e);
                }
                self.stats.events += envs.len();
                Ok(Some(envs))
            }
            Err(r) => {
                let cause = format!("{:?}", r.rejection);
                let key = format!(
                    "{} {}",
                    shown.split([' ', '{']).next().unwrap_or(""),
                    cause.split([' ', '(', '{']).next().unwrap_or("")
                );
                *self.stats.refusals.entry(key).or_default() += 1;
                prop_assert_eq!(&self.h.world, &before, "deciding changed the world");
                self.check_rejection(&r, actor, &shown)?;
                if let Some(audit) = &r.audit {
                    let envs = self.h.commit(audit, actor);
                    for e in &envs {
                        self.model.observe(e);
                    }
                    if self.checks.audit {
                        super::checks::same_state(&before, &self.h.world)?;
                    }
                }
                Ok(None)
            }
        }
    }

    fn lead_prelude(&mut self, leads: &[Lead]) -> Check {
        for (i, lead) in leads.iter().enumerate() {
            let t = TEAM_NAMES[i];
            let team = self.h.team(t);
            let with_budget = |text: String, b: Option<u64>| match b {
                Some(b) => common::cap(&format!("{text},budget={b}")),
                None => common::cap(&text),
            };
            let mut grants = vec![
                with_budget(format!("agent.hire@team:{t}"), lead.hire_budget),
                common::cap(&format!("grant.delegate@team:{t}")),
            ];
            if lead.retire {
                grants.push(common::cap(&format!("agent.retire@team:{t}")));
            }
            if let Some(b) = lead.spend {
                grants.push(with_budget("spend.*@**".into(), Some(b)));
            }
            if let Some(b) = lead.wide {
                grants.push(with_budget("*@**".into(), b));
            }
            grants.extend(lead.roots.iter().map(CapSpec::cap));
            let hired = self.run(common::hire(team, "lead", grants), &operator())?;
            prop_assert!(hired.is_some(), "the operator could not hire a lead");
        }
        Ok(())
    }

    /// Plays one command and checks what it speaks to.
    pub fn step(&mut self, op: &Op) -> Check {
        let ops = operator();
        match op {
            Op::CreateTeam { name } => {
                let name = common::name(TEAM_NAMES[*name]);
                self.run(Command::CreateTeam { name }, &ops)?;
            }
            Op::OperatorHire { team, name, grants } => {
                let teams = self.teams();
                let grants = grants.iter().map(CapSpec::cap).collect();
                let cmd = common::hire(teams[team % teams.len()], AGENT_NAMES[*name], grants);
                self.run(cmd, &ops)?;
            }
            Op::AgentHire {
                hirer,
                targeted,
                team,
                name,
                grants,
            } => {
                let Some(hirer) = self.pick_agent(*hirer, *targeted, "agent.hire") else {
                    return Ok(());
                };
                let teams = self.teams();
                let team = match team {
                    Some(t) => teams[t % teams.len()],
                    None => self.h.world.agent(hirer).unwrap().team,
                };
                let caps = grants.iter().map(|r| self.resolve(hirer, r).0).collect();
                let cmd = common::hire(team, AGENT_NAMES[*name], caps);
                if let Some(envs) = self.run(cmd, &Actor::Agent(hirer))? {
                    self.stats.agent_hires += 1;
                    if self.checks.hire {
                        let child = common::hired_agent(&envs).unwrap();
                        self.check_hire(hirer, child, &envs)?;
                    }
                }
            }
            Op::Delegate {
                by,
                targeted,
                to,
                req,
                name_parent,
            } => {
                let Some(by) = self.pick_agent(*by, *targeted, "grant.delegate") else {
                    return Ok(());
                };
                let mates = self.mates(by);
                let to = match (targeted, mates.is_empty()) {
                    (true, false) => mates[to % mates.len()],
                    _ => self.nth_agent(*to).unwrap(),
                };
                let (capability, from) = self.resolve(by, req);
                let from = from.filter(|_| *name_parent);
                let cmd = Command::Grant {
                    to,
                    capability,
                    from,
                    key: None,
                };
                if let Some(envs) = self.run(cmd, &Actor::Agent(by))? {
                    if self.checks.hire {
                        self.check_derived_grants(&envs, by)?;
                    }
                }
            }
            Op::OperatorGrant { to, cap } => {
                let Some(to) = self.nth_agent(*to) else {
                    return Ok(());
                };
                let cmd = Command::Grant {
                    to,
                    capability: cap.cap(),
                    from: None,
                    key: None,
                };
                self.run(cmd, &ops)?;
            }
            Op::Revoke {
                by,
                grant,
                targeted,
            } => self.revoke(by, *grant, *targeted)?,
            Op::Retire {
                by,
                targeted,
                target,
            } => self.retire(by, *targeted, *target)?,
            Op::Act {
                agent,
                targeted,
                grant,
                seed,
                amount: n,
            } => self.act(*agent, *targeted, *grant, *seed, *n)?,
            Op::UseApproval {
                approval,
                targeted,
                thief,
            } => self.use_approval(*approval, *targeted, *thief)?,
            Op::Decide {
                by,
                approval,
                targeted,
                approved,
            } => {
                let all: Vec<ApprovalId> = self.h.world.approvals().map(|a| a.id).collect();
                let pending: Vec<ApprovalId> = self
                    .h
                    .world
                    .approvals()
                    .filter(|a| a.decision.is_none())
                    .map(|a| a.id)
                    .collect();
                let pool = if *targeted && !pending.is_empty() {
                    pending
                } else {
                    all
                };
                if pool.is_empty() {
                    return Ok(());
                }
                let actor = match by {
                    Who::Operator => ops,
                    Who::Agent(i) => Actor::Agent(self.nth_agent(*i).unwrap()),
                };
                let cmd = Command::DecideApproval {
                    approval: pool[approval % pool.len()],
                    approved: *approved,
                    note: Some(Label::parse("looked at it").unwrap()),
                };
                if self.run(cmd, &actor)?.is_some() {
                    prop_assert!(
                        matches!(actor, Actor::Operator(_)),
                        "an agent decided an approval"
                    );
                }
            }
            Op::Lifecycle { agent, start } => {
                let Some(agent) = self.nth_agent(*agent) else {
                    return Ok(());
                };
                let was_retired = self.h.world.agent(agent).unwrap().is_retired();
                let change = if *start {
                    Lifecycle::Started(format!("c-{}", self.h.log.len()))
                } else {
                    Lifecycle::Stopped(StopReason::Crashed { code: 137 })
                };
                let recorded = self
                    .run(Command::Lifecycle { agent, change }, &Actor::Runtime)?
                    .is_some();
                prop_assert_eq!(
                    recorded,
                    !was_retired,
                    "a lifecycle is recorded exactly for agents not retired"
                );
                let now_retired = self.h.world.agent(agent).unwrap().is_retired();
                prop_assert_eq!(
                    now_retired,
                    was_retired,
                    "a lifecycle event changed retirement"
                );
            }
            Op::Ghost { seed } => {
                // Minted from a counter far from the harness's: no agent has this id.
                let mut entropy = CountingEntropy::new(u64::MAX - seed % 1000);
                let ghost = AgentId::mint(self.h.now, &mut entropy);
                let cmd = Command::Act {
                    action: common::action("email.send"),
                    resource: common::resource("mailbox:alice"),
                    amount: amount(1),
                    args: Default::default(),
                    approval: None,
                    key: None,
                };
                let done = self.run(cmd, &Actor::Agent(ghost))?;
                prop_assert!(done.is_none(), "an unknown agent acted");
            }
            Op::Tick { half_hours } => {
                self.h.now = self.h.now.plus_micros(i64::from(*half_hours) * HOUR / 2);
                if self.checks.cascade {
                    self.check_expiry()?;
                }
            }
        }
        if self.checks.budget {
            self.check_budgets()?;
        }
        Ok(())
    }

    fn revoke(&mut self, by: &Who, grant: usize, targeted: bool) -> Check {
        let all: Vec<GrantId> = self.h.world.grants().map(|g| g.id).collect();
        if all.is_empty() {
            return Ok(());
        }
        let actor = match by {
            Who::Operator => operator(),
            Who::Agent(i) => Actor::Agent(self.nth_agent(*i).unwrap()),
        };
        let line: Vec<GrantId> = match (&actor, targeted) {
            (Actor::Agent(a), true) => {
                let own: BTreeSet<GrantId> = self.grant_ids_of(*a).into_iter().collect();
                let derived = self.model.descendants_of(&own);
                derived.difference(&own).copied().collect()
            }
            (_, true) => self
                .model
                .grants
                .values()
                .filter(|g| !g.revoked)
                .filter_map(|g| g.parent)
                .collect(),
            (_, false) => Vec::new(),
        };
        let pool = if line.is_empty() { all } else { line };
        let target = pool[grant % pool.len()];
        if self
            .run(Command::Revoke { grant: target }, &actor)?
            .is_some()
        {
            let affected = self.model.descendants_of(&BTreeSet::from([target]));
            if affected.len() > 1 {
                self.stats.revokes_with_descendants += 1;
            }
            if self.checks.cascade {
                let now = self.h.now;
                self.check_inactive(&affected, now)?;
            }
        }
        Ok(())
    }

    fn retire(&mut self, by: &Who, targeted: bool, target: usize) -> Check {
        let actor = match by {
            Who::Operator => operator(),
            Who::Agent(i) => Actor::Agent(self.pick_agent(*i, targeted, "agent.retire").unwrap()),
        };
        let target = match &actor {
            Actor::Agent(a) if targeted => {
                // Agents may retire only their own hires (transitively): target those.
                let mut mates = self.mates(*a);
                let below: Vec<AgentId> = mates
                    .iter()
                    .copied()
                    .filter(|m| self.h.world.hired_below(*a, *m))
                    .collect();
                if !below.is_empty() {
                    mates = below;
                }
                mates
                    .get(target % mates.len().max(1))
                    .copied()
                    .unwrap_or(*a)
            }
            _ => self.nth_agent(target).unwrap(),
        };
        if self
            .run(Command::Retire { agent: target }, &actor)?
            .is_some()
        {
            let held: BTreeSet<GrantId> = self.grant_ids_of(target).into_iter().collect();
            if !held.is_empty() {
                self.stats.retires_with_grants += 1;
            }
            if self.checks.cascade {
                let affected = self.model.descendants_of(&held);
                let now = self.h.now;
                self.check_inactive(&affected, now)?;
                let (x, r) = (common::action("email.send"), common::resource("x"));
                let auth = self.h.world.authorize(target, &x, &r, amount(1), now);
                prop_assert!(
                    matches!(auth, Authorization::Deny { .. }),
                    "a retired agent is authorized: {:?}",
                    auth
                );
            }
        }
        Ok(())
    }

    fn act(&mut self, agent: usize, targeted: bool, grant: usize, seed: u64, n: u64) -> Check {
        // Agents in service; mostly those hired by agents when there are some, as their spends
        // run through their hirers' budgets.
        let live: Vec<AgentId> = self
            .h
            .world
            .agents()
            .filter(|a| !a.is_retired())
            .map(|a| a.id)
            .collect();
        let hired: Vec<AgentId> = live
            .iter()
            .copied()
            .filter(|a| self.h.world.agent(*a).unwrap().parent.is_some())
            .collect();
        let agent = match (
            targeted,
            seed % 4 != 0 && !hired.is_empty(),
            live.is_empty(),
        ) {
            (true, true, _) => hired[agent % hired.len()],
            (true, false, false) => live[agent % live.len()],
            _ => match self.nth_agent(agent) {
                Some(a) => a,
                None => return Ok(()),
            },
        };
        // Mostly a grant that spends against an ancestor's budget, when the agent has one.
        let all = self.grant_ids_of(agent);
        let budgeted: Vec<GrantId> = all
            .iter()
            .copied()
            .filter(|g| {
                self.model.chain(*g)[1..]
                    .iter()
                    .any(|a| self.model.grants[a].spec.budget.is_some())
            })
            .collect();
        let grants = if seed % 3 != 0 && !budgeted.is_empty() {
            budgeted
        } else {
            all
        };
        let mut rng = Rng::new(seed);
        let (x, r) = match grants.get(grant % grants.len().max(1)) {
            Some(g) => self.model.grants[g].spec.instantiate(&mut rng, &WORLD),
            None => CapSpec::of(&common::cap("email.*@**")).instantiate(&mut rng, &WORLD),
        };
        let cmd = Command::Act {
            action: x.clone(),
            resource: r.clone(),
            amount: amount(n),
            args: Default::default(),
            approval: None,
            key: None,
        };
        let expected = self.model.expect(agent, &x, &r, n, self.h.now);
        match self.run(cmd, &Actor::Agent(agent))? {
            Some(envs) => match &envs[0].event {
                Event::CallApprovalRequested { .. } => self.stats.approvals_requested += 1,
                Event::ActionPerformed { chain, .. } => {
                    self.stats.acts_allowed += 1;
                    let budgeted: Vec<GrantId> = chain[1..]
                        .iter()
                        .copied()
                        .filter(|g| self.model.grants[g].spec.budget.is_some())
                        .collect();
                    if !budgeted.is_empty() {
                        self.stats.acts_charging_an_ancestor_budget += 1;
                    }
                    // An ancestor with a budget that two or more grants derive from.
                    if budgeted.iter().any(|g| {
                        self.model
                            .grants
                            .values()
                            .filter(|c| c.parent == Some(*g))
                            .count()
                            >= 2
                    }) {
                        self.stats.acts_charging_a_shared_ancestor += 1;
                    }
                }
                _ => {}
            },
            None => {
                let unlimited = self.model.expect(agent, &x, &r, 0, self.h.now);
                if expected == Expected::Deny && unlimited != Expected::Deny {
                    self.stats.budget_denials += 1;
                }
            }
        }
        Ok(())
    }

    fn use_approval(&mut self, approval: usize, targeted: bool, thief: Option<usize>) -> Check {
        let all: Vec<_> = self.h.world.approvals().cloned().collect();
        let ready: Vec<_> = all
            .iter()
            .filter(|a| a.decision.as_ref().is_some_and(|d| d.approved) && !a.used)
            .cloned()
            .collect();
        let pool = if targeted && !ready.is_empty() {
            ready
        } else {
            all
        };
        if pool.is_empty() {
            return Ok(());
        }
        let ap = &pool[approval % pool.len()];
        let agent = match thief {
            Some(t) => self.nth_agent(t).unwrap(),
            None => ap.agent,
        };
        let cmd = Command::Act {
            action: ap.action.clone(),
            resource: ap.resource.clone(),
            amount: ap.amount,
            args: Default::default(),
            approval: Some(ap.id),
            key: None,
        };
        let usable = ap.decision.as_ref().is_some_and(|d| d.approved) && !ap.used;
        if self.run(cmd, &Actor::Agent(agent))?.is_some() {
            self.stats.approvals_used += 1;
            prop_assert!(usable, "approval {} used while {:?}", ap.id, ap);
            prop_assert_eq!(agent, ap.agent, "an approval was used by another agent");
        }
        Ok(())
    }
}
