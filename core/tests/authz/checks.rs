//! The properties of `authz_props.rs`, as methods of a [`Run`] called at the moments they speak
//! about.

use std::collections::BTreeSet;

use proptest::prelude::*;
use roster_core::actor::Actor;
use roster_core::authz::Authorization;
use roster_core::capability::{covers, Action, Resource};
use roster_core::command::Rejected;
use roster_core::envelope::{Envelope, EnvelopeJson};
use roster_core::event::Event;
use roster_core::id::{AgentId, GrantId, TeamId};
use roster_core::time::Timestamp;
use roster_core::world::World;

use super::model::Expected;
use super::run::{amount, Check, Run};
use super::scenario::WORLD;
use crate::common::{self, HOUR};

impl Run<'_> {
    /// Concrete uses to probe: instances of the given grants' patterns, and the built-in
    /// actions on every team.
    pub fn probes(&mut self, grants: &[GrantId], per_grant: usize) -> Vec<(Action, Resource)> {
        let mut out = Vec::new();
        for g in grants {
            let spec = self.model.grants[g].spec.clone();
            for _ in 0..per_grant {
                out.push(spec.instantiate(&mut self.rng, &WORLD));
            }
        }
        for t in self.h.world.teams() {
            for a in ["agent.hire", "agent.retire", "grant.delegate"] {
                out.push((common::action(a), Resource::team(&t.name)));
            }
        }
        out
    }

    /// (e) A known agent's refusal carries one `AccessDenied` for its own team, at the team's
    /// current version, naming the agent and the reason; an operator's carries none, nor does
    /// an unknown agent's (there is no team to record it in).
    pub fn check_rejection(&mut self, r: &Rejected, actor: &Actor, shown: &str) -> Check {
        let Actor::Agent(a) = actor else {
            self.stats.operator_rejections += 1;
            prop_assert!(
                r.audit.is_none(),
                "an operator's refusal has an audit: {:?}",
                r.audit
            );
            return Ok(());
        };
        let Some(agent) = self.h.world.agent(*a) else {
            prop_assert!(
                r.audit.is_none(),
                "audit for an unknown agent: {:?}",
                r.audit
            );
            return Ok(());
        };
        self.stats.agent_rejections += 1;
        if !self.checks.audit {
            return Ok(());
        }
        let Some(audit) = &r.audit else {
            return Err(TestCaseError::fail(format!(
                "agent {a} was refused `{}` for {shown} without an AccessDenied record",
                r.rejection
            )));
        };
        prop_assert_eq!(audit.team, agent.team);
        prop_assert_eq!(
            audit.expected_version,
            self.h.world.team_version(agent.team)
        );
        prop_assert_eq!(audit.events.len(), 1);
        match &audit.events[0] {
            Event::AccessDenied {
                agent: who, reason, ..
            } => {
                prop_assert_eq!(who, a);
                prop_assert_eq!(reason, &r.rejection.to_string());
            }
            other => prop_assert!(false, "audit is not AccessDenied: {:?}", other),
        }
        Ok(())
    }

    /// (a) Right after an agent hires, whatever the new agent may do, its hirer may do too
    /// (an `Allow` for the child is an `Allow` for the hirer; approval for the child is at least
    /// approval for the hirer); and its grants derive from the hirer's.
    pub fn check_hire(&mut self, hirer: AgentId, child: AgentId, envs: &[Envelope]) -> Check {
        let mut grants = self.grant_ids_of(child);
        grants.extend(self.grant_ids_of(hirer));
        let now = self.h.now;
        for (x, r) in self.probes(&grants, 3) {
            for n in [1, 3, 60] {
                let c = self.h.world.authorize(child, &x, &r, amount(n), now);
                let h = self.h.world.authorize(hirer, &x, &r, amount(n), now);
                let shown = || format!("{x}@{r} amount {n}: child {c:?}, hirer {h:?}");
                match c {
                    Authorization::Deny { .. } => {}
                    Authorization::NeedsApproval { .. } => {
                        self.stats.hire_uses_allowed_for_child += 1;
                        prop_assert!(!matches!(h, Authorization::Deny { .. }), "{}", shown());
                    }
                    Authorization::Allow { .. } => {
                        self.stats.hire_uses_allowed_for_child += 1;
                        prop_assert!(matches!(h, Authorization::Allow { .. }), "{}", shown());
                    }
                }
            }
        }
        self.check_derived_grants(envs, hirer)
    }

    /// Every grant an agent gives derives from a grant of that agent that covers it.
    pub fn check_derived_grants(&self, envs: &[Envelope], giver: AgentId) -> Check {
        for e in envs {
            let Event::GrantIssued {
                capability, parent, ..
            } = &e.event
            else {
                continue;
            };
            let p = parent.and_then(|p| self.h.world.grant(p));
            prop_assert!(p.is_some(), "a grant given by an agent has no parent");
            let p = p.unwrap();
            prop_assert_eq!(p.holder, giver);
            prop_assert!(
                covers(&p.capability, capability),
                "{} does not cover {}",
                p.capability,
                capability
            );
        }
        Ok(())
    }

    /// (b) The grants in `affected` (one revoked, expired or of a retired holder, and all that
    /// derive from it) are inactive at `now`, and nothing is authorized through them: a use
    /// that only they match is denied.
    pub fn check_inactive(&mut self, affected: &BTreeSet<GrantId>, now: Timestamp) -> Check {
        for g in affected {
            let holder = self.model.grants[g].holder;
            prop_assert!(
                !self.h.world.is_active(*g, now),
                "grant {} is still active",
                g
            );
            prop_assert!(self.h.world.inactive_reason(*g, now).is_some());
            let listed = self
                .h
                .world
                .active_grants_of(holder, now)
                .iter()
                .any(|a| a.id == *g);
            prop_assert!(!listed, "grant {} is listed as active", g);
        }
        for g in affected.iter().copied() {
            let holder = self.model.grants[&g].holder;
            for (x, r) in self.probes(&[g], 2) {
                let auth = self.h.world.authorize(holder, &x, &r, amount(1), now);
                let other_match = self.model.holdings[&holder].iter().any(|o| {
                    !affected.contains(o)
                        && self.model.active(*o, now)
                        && self.model.grants[o].cap.matches(&x, &r)
                });
                match &auth {
                    Authorization::Allow { chain } | Authorization::NeedsApproval { chain } => {
                        prop_assert!(
                            chain.iter().all(|l| !affected.contains(l)),
                            "{}@{} authorized through a void grant: {:?}",
                            x,
                            r,
                            chain
                        );
                        prop_assert!(
                            other_match,
                            "{}@{}: only void grants match, yet {:?}",
                            x,
                            r,
                            auth
                        );
                    }
                    Authorization::Deny { .. } => {
                        if self.model.grants[&g].cap.matches(&x, &r) && !other_match {
                            self.stats.cascade_denials += 1;
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// (b) At the next expiry instants, and long after all of them, expired grants and
    /// everything derived from them authorize nothing.
    pub fn check_expiry(&mut self) -> Check {
        let now = self.h.now;
        let mut instants: BTreeSet<Timestamp> = self
            .model
            .grants
            .values()
            .filter_map(|g| g.spec.expires)
            .filter(|e| *e > now)
            .take(3)
            .collect();
        instants.insert(now);
        instants.insert(now.plus_micros(1000 * HOUR));
        for t in instants {
            let expired: BTreeSet<GrantId> = self
                .model
                .grants
                .iter()
                .filter(|(_, g)| g.spec.expires.is_some_and(|e| e <= t))
                .map(|(id, _)| *id)
                .collect();
            let has_child = |e: &GrantId| self.model.grants.values().any(|g| g.parent == Some(*e));
            if expired.iter().any(has_child) {
                self.stats.expiry_checks_with_descendants += 1;
            }
            let affected = self.model.descendants_of(&expired);
            self.check_inactive(&affected, t)?;
        }
        Ok(())
    }

    /// (c) No grant has spent more than its budget, and each has spent what the log says.
    pub fn check_budgets(&mut self) -> Check {
        for g in self.h.world.grants() {
            prop_assert_eq!(
                g.spent,
                self.model.grants[&g.id].spent,
                "spent of grant {}",
                g.id
            );
            if let Some(b) = g.capability.constraints().budget {
                if g.spent == b && b > 0 {
                    self.stats.grants_spent_to_the_cap += 1;
                }
                prop_assert!(
                    g.spent <= b,
                    "grant {} ({}) spent {} of {}",
                    g.id,
                    g.capability,
                    g.spent,
                    b
                );
            }
        }
        Ok(())
    }

    /// `is_active` and `authorize` agree with the model, for every agent, on probes from every
    /// grant, now and three hours on.
    pub fn check_model(&mut self) -> Check {
        let grants: Vec<GrantId> = self.model.grants.keys().copied().take(30).collect();
        let probes = self.probes(&grants, 1);
        let agents = self.agents();
        for t in [self.h.now, self.h.now.plus_micros(3 * HOUR)] {
            for g in self.model.grants.keys() {
                let (got, want) = (self.h.world.is_active(*g, t), self.model.active(*g, t));
                prop_assert_eq!(got, want, "is_active({}) at {}", g, t);
            }
            for a in &agents {
                for (x, r) in &probes {
                    for n in [1, 60] {
                        let got = Expected::of(&self.h.world.authorize(*a, x, r, amount(n), t));
                        let want = self.model.expect(*a, x, r, n, t);
                        prop_assert_eq!(got, want, "authorize({}, {}@{}, {}) at {}", a, x, r, n, t);
                        self.stats.model_checks += 1;
                    }
                }
            }
        }
        Ok(())
    }

    /// (d) The log folds again to the world built incrementally — as kept, as stored (postcard,
    /// reopened with its hashes) and as exported (JSON) — and `World::at(seq)` is the world that
    /// was current right after `seq`.
    pub fn check_fold(&self) -> Check {
        let log = &self.h.log;
        prop_assert_eq!(&World::fold(log).unwrap(), &self.h.world);
        let mut prev: Option<&Envelope> = None;
        let mut stored = Vec::with_capacity(log.len());
        let mut imported = Vec::with_capacity(log.len());
        for e in log {
            prop_assert!(e.follows(prev).is_ok());
            let bytes = e.body().canonical_bytes();
            let reopened = Envelope::open(e.seq, e.prev_hash(), e.hash(), &bytes);
            prop_assert_eq!(reopened.as_ref(), Ok(e));
            stored.push(reopened.unwrap());
            let json = serde_json::to_string(e).unwrap();
            let back = serde_json::from_str::<EnvelopeJson>(&json).unwrap().check();
            prop_assert_eq!(back.as_ref(), Ok(e));
            imported.push(back.unwrap());
            prev = Some(e);
        }
        prop_assert_eq!(&World::fold(&stored).unwrap(), &self.h.world);
        prop_assert_eq!(&World::fold(&imported).unwrap(), &self.h.world);
        for (seq, w) in self.h.history.iter().enumerate() {
            let seq = u64::try_from(seq).unwrap();
            prop_assert_eq!(&World::at(log, seq).unwrap(), w, "World::at({})", seq);
        }
        Ok(())
    }
}

/// (e) Teams (but for their versions), agents, grants, shares and approvals are unchanged: an
/// audit record moves the log on and changes nothing else.
pub fn same_state(before: &World, after: &World) -> Check {
    let teams = |w: &World| -> Vec<(TeamId, String)> {
        w.teams().map(|t| (t.id, t.name.to_string())).collect()
    };
    prop_assert_eq!(teams(before), teams(after));
    prop_assert!(before.agents().eq(after.agents()));
    prop_assert!(before.grants().eq(after.grants()));
    prop_assert!(before.approvals().eq(after.approvals()));
    prop_assert!(before.shares().eq(after.shares()));
    prop_assert_eq!(before.next_seq() + 1, after.next_seq());
    Ok(())
}
