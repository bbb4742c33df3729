//! Keyed calls asked again: the outcome recorded the first time, read back from the log.
//!
//! An agent that lost the answer to a keyed `act` or `delegate` asks again with the same key.
//! Inside the decision that would carry the call out — under the daemon's one decision lock,
//! so two calls with one key cannot both pass — [`replay`] looks the key up in the world: held
//! for the same call, the answer is the events recorded then, and nothing new is decided; held
//! for another call, it is left to `decide`, which refuses it and records the refusal; not
//! held, the call is decided as usual (and the decision that carries it out records the key).

use roster_core::envelope::{Envelope, Hash};
use roster_core::event::Event;
use roster_core::gateway::{ErrorCode, GatewayError};
use roster_core::id::AgentId;
use roster_core::name::CallKey;

use crate::app::App;

/// The most outcome events read back for one key (`decide` records at most two: a
/// `delegate`'s use of `grant.delegate` and its `GrantIssued`); a larger count from an imported
/// log is cut here.
const MAX_OUTCOME: usize = 8;

/// The events recorded for `agent`'s call under `key` — its `CallKeyed`, then its outcome —
/// when the world holds the key for this same call (`digest`); `None` when it does not hold
/// it, or holds it for another call (for `decide` to refuse).
pub(crate) fn replay(
    app: &App,
    agent: AgentId,
    key: &CallKey,
    digest: Hash,
) -> Result<Option<Vec<Envelope>>, GatewayError> {
    let Some(held) = app.world().keyed(agent, key) else {
        return Ok(None);
    };
    if held.digest != digest {
        return Ok(None);
    }
    let outcome = usize::try_from(held.outcome)
        .unwrap_or(MAX_OUTCOME)
        .min(MAX_OUTCOME);
    let failed = |why: String| {
        GatewayError::new(
            ErrorCode::Internal,
            format!("call key `{key}`: cannot read back its outcome: {why}"),
        )
    };
    let events = app
        .log()
        .read(held.seq, 1 + outcome)
        .map_err(|e| failed(e.to_string()))?;
    match events.first().map(|e| &e.event) {
        Some(Event::CallKeyed {
            agent: a, key: k, ..
        }) if *a == agent && k == key => {}
        _ => return Err(failed(format!("event {} is not its CallKeyed", held.seq))),
    }
    let team = events.first().map(|e| e.team);
    // The outcome is the rest of one decision: one team's, contiguous.
    let events: Vec<Envelope> = events
        .into_iter()
        .take_while(|e| Some(e.team) == team)
        .collect();
    Ok(Some(events))
}
