//! How often an agent's refusals are written to the log. Every refusal is answered, and every
//! refusal is accounted for, but an agent that asks for what it may not have at line rate
//! (hundreds a second) must not write the log at that rate: each agent's recorded refusals
//! draw on a budget of their own, [`BURST`] at once and [`PER_SEC`] a second after that. Past
//! it, refusals are counted, not recorded one by one; the next one recorded says how many were
//! left out and since when, so the log still accounts for every one.

use std::collections::HashMap;

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
}

impl Refusals {
    /// Whether `agent`'s refusal at `at` is recorded. When it is and others were left out
    /// before it, `reason` is amended to say how many, and since when.
    pub fn admit(&mut self, agent: AgentId, at: Timestamp, reason: &mut String) -> bool {
        let b = self.agents.entry(agent).or_insert(Budget {
            tokens: BURST,
            last: at,
            unrecorded: None,
        });
        let elapsed = at.as_micros().saturating_sub(b.last.as_micros()).max(0);
        // (Micros as f64: exact far beyond any interval that matters here.)
        #[allow(clippy::cast_precision_loss)]
        let refill = elapsed as f64 / 1e6 * PER_SEC;
        b.tokens = (b.tokens + refill).min(BURST);
        b.last = b.last.max(at);
        if b.tokens < 1.0 {
            let (n, since) = b.unrecorded.unwrap_or((0, at));
            b.unrecorded = Some((n + 1, since));
            return false;
        }
        b.tokens -= 1.0;
        if let Some((n, since)) = b.unrecorded.take() {
            let note = format!(
                "[{n} more refusal{} of this agent since {since} not recorded one by one: over \
                 its budget of {PER_SEC} a second] ",
                if n == 1 { "" } else { "s" }
            );
            *reason = cut(&(note + reason.as_str()), MAX_REASON);
        }
        true
    }
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

    #[test]
    fn a_burst_is_recorded_then_one_a_second_and_the_rest_is_counted() {
        let mut r = Refusals::default();
        let t0 = Timestamp::from_millis(1_800_000_000_000);
        let mut entropy = roster_core::id::CountingEntropy::new(1);
        let agent = AgentId::mint(t0, &mut entropy);
        let reason = |s: &str| s.to_owned();
        // 100 refusals in the same millisecond: the burst is recorded, the rest is not.
        let recorded = (0..100)
            .filter(|_| r.admit(agent, t0, &mut reason("no grant")))
            .count();
        assert_eq!(recorded, 20);
        // A second later one is recorded again, and says what was left out.
        let mut said = reason("no grant");
        assert!(r.admit(agent, t0.plus_micros(1_000_000), &mut said));
        assert!(
            said.starts_with("[80 more refusals of this agent since ")
                && said.ends_with("no grant"),
            "{said}"
        );
        // The count starts over; another agent has its own budget.
        let mut next = reason("no grant");
        assert!(!r.admit(agent, t0.plus_micros(1_000_000), &mut next));
        let other = AgentId::mint(t0, &mut entropy);
        assert!(r.admit(other, t0, &mut reason("no grant")));
    }

    #[test]
    fn an_amended_reason_stays_within_the_longest_recorded() {
        let long = "é".repeat(MAX_REASON);
        let cut = cut(&long, MAX_REASON);
        assert!(cut.len() <= MAX_REASON && cut.ends_with('…'));
    }
}
