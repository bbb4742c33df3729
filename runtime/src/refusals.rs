//! How often an agent's refusals are written to the log. Every refusal is answered, and every
//! refusal is accounted for, but an agent that asks for what it may not have at line rate
//! (hundreds a second) must not write the log at that rate: each agent's recorded refusals
//! draw on a budget of their own, [`BURST`] at once and [`PER_SEC`] a second after that. Past
//! it, refusals are counted, not recorded one by one; the next one recorded says how many were
//! left out and since when, or, when the agent asks nothing more, a record of its own does
//! once the budget allows ([`Refusals::due`], every few seconds, and at a clean stop), so the
//! log accounts for every one. (A daemon killed outright loses the count of its last seconds.)

use std::collections::HashMap;

use roster_core::capability::{Action, Resource};
use roster_core::command::MAX_REASON;
use roster_core::id::AgentId;
use roster_core::time::Timestamp;

/// Refusals of one agent recorded at once before the budget runs dry.
pub const BURST: f64 = 20.0;
/// Refusals of one agent recorded a second, on average, past the burst.
pub const PER_SEC: f64 = 1.0;

/// Every agent's budget (kept in memory: a restarted daemon starts them full).
#[derive(Debug, Default)]
pub struct Refusals {
    agents: HashMap<AgentId, Budget>,
}

#[derive(Debug)]
struct Budget {
    tokens: f64,
    last: Timestamp,
    /// Refusals not recorded since the last one that was, and when the first of them was.
    unrecorded: Option<(u64, Timestamp)>,
    /// What the last refusal not recorded was about: the action and resource of a record of
    /// the count alone.
    about: Option<(Action, Resource)>,
}

/// A record of refusals left out, due now: what [`Refusals::due`] asks to be recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeftOut {
    /// Whose.
    pub agent: AgentId,
    /// The last one's action.
    pub action: Action,
    /// The last one's resource.
    pub resource: Resource,
    /// How many, and since when, in words.
    pub reason: String,
}

impl Refusals {
    /// Whether `agent`'s refusal at `at` is recorded. When it is and others were left out
    /// before it, `reason` is amended to say how many, and since when.
    pub fn admit(
        &mut self,
        agent: AgentId,
        about: (&Action, &Resource),
        at: Timestamp,
        reason: &mut String,
    ) -> bool {
        let b = self.agents.entry(agent).or_insert(Budget {
            tokens: BURST,
            last: at,
            unrecorded: None,
            about: None,
        });
        b.refill(at);
        if b.tokens < 1.0 {
            let (n, since) = b.unrecorded.unwrap_or((0, at));
            b.unrecorded = Some((n + 1, since));
            b.about = Some((about.0.clone(), about.1.clone()));
            return false;
        }
        b.tokens -= 1.0;
        if let Some((n, since)) = b.unrecorded.take() {
            *reason = cut(&(left_out(n, since) + " " + reason.as_str()), MAX_REASON);
        }
        true
    }

    /// The records of refusals left out that the budgets allow at `at` (each takes one of its
    /// agent's), or, with `all` (the daemon stopping), every one.
    pub fn due(&mut self, at: Timestamp, all: bool) -> Vec<LeftOut> {
        let mut due = Vec::new();
        for (agent, b) in &mut self.agents {
            b.refill(at);
            if b.unrecorded.is_none() || (b.tokens < 1.0 && !all) {
                continue;
            }
            let (Some((n, since)), Some((action, resource))) =
                (b.unrecorded.take(), b.about.take())
            else {
                continue;
            };
            b.tokens = (b.tokens - 1.0).max(0.0);
            due.push(LeftOut {
                agent: *agent,
                action,
                resource,
                reason: left_out(n, since),
            });
        }
        due.sort_by_key(|d| d.agent);
        due
    }
}

impl Budget {
    fn refill(&mut self, at: Timestamp) {
        let elapsed = at.as_micros().saturating_sub(self.last.as_micros()).max(0);
        // (Micros as f64: exact far beyond any interval that matters here.)
        #[allow(clippy::cast_precision_loss)]
        let refill = elapsed as f64 / 1e6 * PER_SEC;
        self.tokens = (self.tokens + refill).min(BURST);
        self.last = self.last.max(at);
    }
}

/// `n` refusals since `since` left out, in words.
fn left_out(n: u64, since: Timestamp) -> String {
    format!(
        "[{n} more refusal{} of this agent since {since} not recorded one by one: over its \
         budget of {PER_SEC} a second]",
        if n == 1 { "" } else { "s" }
    )
}

/// `text` cut to at most `max` bytes on a character boundary, ending with `…` when cut.
fn cut(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max.saturating_sub('…'.len_utf8());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn about() -> (&'static Action, &'static Resource) {
        static ABOUT: std::sync::OnceLock<(Action, Resource)> = std::sync::OnceLock::new();
        let (a, r) = ABOUT.get_or_init(|| {
            (
                Action::parse("agent.hire").unwrap_or_else(|e| panic!("{e}")),
                Resource::parse("team:lab").unwrap_or_else(|e| panic!("{e}")),
            )
        });
        (a, r)
    }

    #[test]
    fn what_is_left_out_is_recorded_on_its_own_once_the_budget_allows() {
        let mut r = Refusals::default();
        let t0 = Timestamp::from_millis(1_800_000_000_000);
        let agent = AgentId::mint(t0, &mut roster_core::id::CountingEntropy::new(1));
        for _ in 0..25 {
            r.admit(agent, about(), t0, &mut String::new());
        }
        // Nothing due while the budget is dry, unless the daemon stops.
        assert!(r.due(t0, false).is_empty());
        let due = r.due(t0.plus_micros(1_000_000), false);
        assert_eq!(due.len(), 1);
        assert!(due[0]
            .reason
            .starts_with("[5 more refusals of this agent since "));
        assert_eq!((&due[0].action, &due[0].resource), about());
        // Said once.
        assert!(r.due(t0.plus_micros(9_000_000), true).is_empty());
    }

    #[test]
    fn a_burst_is_recorded_then_one_a_second_and_the_rest_is_counted() {
        let mut r = Refusals::default();
        let t0 = Timestamp::from_millis(1_800_000_000_000);
        let mut entropy = roster_core::id::CountingEntropy::new(1);
        let agent = AgentId::mint(t0, &mut entropy);
        let reason = |s: &str| s.to_owned();
        // 100 refusals in the same millisecond: the burst is recorded, the rest is not.
        let recorded = (0..100)
            .filter(|_| r.admit(agent, about(), t0, &mut reason("no grant")))
            .count();
        assert_eq!(recorded, 20);
        // A second later one is recorded again, and says what was left out.
        let mut said = reason("no grant");
        assert!(r.admit(agent, about(), t0.plus_micros(1_000_000), &mut said));
        assert!(
            said.starts_with("[80 more refusals of this agent since ")
                && said.ends_with("no grant"),
            "{said}"
        );
        // The count starts over; another agent has its own budget.
        let mut next = reason("no grant");
        assert!(!r.admit(agent, about(), t0.plus_micros(1_000_000), &mut next));
        let other = AgentId::mint(t0, &mut entropy);
        assert!(r.admit(other, about(), t0, &mut reason("no grant")));
    }

    #[test]
    fn an_amended_reason_stays_within_the_longest_recorded() {
        let long = "é".repeat(MAX_REASON);
        let cut = cut(&long, MAX_REASON);
        assert!(cut.len() <= MAX_REASON && cut.ends_with('…'));
    }
}
