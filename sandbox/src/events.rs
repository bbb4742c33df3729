//! The engine's event stream, narrowed to this namespace's agents: how the runtime learns that an
//! agent's process died (and whether the kernel killed it for memory) without polling.
//!
//! The engine reports an OOM kill as an `oom` event followed by `die`; the `die` event alone does
//! not say it. An `oom` of the same container counts only if it came right before the death
//! ([`oom_made_death`]): the engine's own flag, and an older `oom`, are sticky — a process
//! `exec`'d into the container and OOM-killed long before would make any later death look like
//! one. What the exit means for the log is decided by the pure [`stop_reason`].

use std::collections::{HashMap, VecDeque};
use std::time::{SystemTime, UNIX_EPOCH};

use bollard::models::EventMessage;
use bollard::system::EventsOptions;
use futures_util::{stream, Stream, StreamExt};
use roster_core::event::StopReason;
use roster_core::id::AgentId;
use roster_core::time::Timestamp;

use crate::engine::Engine;
use crate::error::SandboxError;
use crate::plan::labels;
use crate::state::agent_of;

/// Something that happened to one of this namespace's agent containers.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EngineEvent {
    /// The agent's container started.
    Started {
        /// The agent.
        agent: AgentId,
        /// The engine's id of the container.
        container: String,
    },
    /// The agent's container process ended.
    Died {
        /// The agent.
        agent: AgentId,
        /// The engine's id of the container (an agent's containers come and go: a late death
        /// of an old one must not be taken for its successor's).
        container: String,
        /// Its exit code (128 + the signal when a signal ended it).
        exit_code: i64,
        /// Whether the kernel's OOM killer acted in the container.
        oom_killed: bool,
    },
}

/// Why an agent's container stopped, for its `AgentStopped` event.
///
/// The runtime's own reasons come first: when it stopped the container (`requested`) or stopped
/// it for running past its timeout (`timed_out`), the exit code is only the signal it sent. Then
/// an OOM kill with a failing exit is [`StopReason::OomKilled`]; a process that ended by a signal
/// (128 + 1..=64) or with a negative code crashed; any other code is the process's own exit.
pub fn stop_reason(
    exit_code: i64,
    oom_killed: bool,
    requested: bool,
    timed_out: bool,
) -> StopReason {
    if timed_out {
        StopReason::TimedOut
    } else if requested {
        StopReason::Requested
    } else if oom_killed && exit_code != 0 {
        StopReason::OomKilled
    } else if exit_code < 0 || (129..=192).contains(&exit_code) {
        StopReason::Crashed { code: exit_code }
    } else {
        StopReason::Exited { code: exit_code }
    }
}

/// A Unix time as the engine's `since` parameter wants it.
fn engine_time(micros: i64) -> String {
    format!(
        "{}.{:09}",
        micros.div_euclid(1_000_000),
        micros.rem_euclid(1_000_000) * 1000
    )
}

/// The state carried between two events of the stream.
struct Feed {
    raw: std::pin::Pin<Box<dyn Stream<Item = RawEvent> + Send>>,
    engine: Engine,
    /// Each container's last `oom` event, at the engine's time in nanoseconds (`None`: the
    /// engine gave no time, so it cannot be placed right before a death).
    oom: HashMap<String, Option<i64>>,
    /// Messages read ahead while waiting for a late `oom` (see [`OOM_GRACE`]).
    pending: VecDeque<RawEvent>,
}

/// One message of the engine's stream.
type RawEvent = Result<EventMessage, bollard::errors::Error>;

/// How long a SIGKILL death without an OOM mark waits for the engine's `oom` event: the engine
/// handles a container's OOM and its exit on separate paths, and its `oom` may come after `die`
/// (seen: an OOM kill reported as a plain exit 137 now and then).
const OOM_GRACE: std::time::Duration = std::time::Duration::from_millis(500);

impl Engine {
    /// This namespace's container starts and deaths from now on. Events are asked for from the
    /// moment of this call, so nothing is missed between the call and the first poll. The stream
    /// ends after an error (the engine went away); call again to resume.
    pub fn events(&self) -> impl Stream<Item = Result<EngineEvent, SandboxError>> + Send + 'static {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        self.events_since(Timestamp::from_micros(now))
    }

    /// Like [`Engine::events`], replaying from `since`, so that a runtime that lost its stream
    /// resumes without missing a death.
    pub fn events_since(
        &self,
        since: Timestamp,
    ) -> impl Stream<Item = Result<EngineEvent, SandboxError>> + Send + 'static {
        let filters = HashMap::from([
            ("type".to_string(), vec!["container".to_string()]),
            (
                "label".to_string(),
                vec![format!("{}={}", labels::NS, self.ns)],
            ),
            (
                "event".to_string(),
                vec!["start".to_string(), "die".to_string(), "oom".to_string()],
            ),
        ]);
        let options = EventsOptions {
            since: Some(engine_time(since.as_micros())),
            until: None,
            filters,
        };
        let feed = Feed {
            raw: Box::pin(self.docker.events(Some(options))),
            engine: self.clone(),
            oom: HashMap::new(),
            pending: VecDeque::new(),
        };
        stream::unfold(Some(feed), |feed| async move {
            let mut feed = feed?;
            loop {
                let next = match feed.pending.pop_front() {
                    Some(m) => m,
                    None => feed.raw.next().await?,
                };
                match next {
                    Err(e) => {
                        let e = SandboxError::engine("reading the engine's events", e);
                        return Some((Err(e), None));
                    }
                    Ok(m) => {
                        if let Some(ev) = feed.interpret(m).await {
                            return Some((Ok(ev), Some(feed)));
                        }
                    }
                }
            }
        })
    }
}

/// How close before a death an `oom` event of the container must be to count as its cause.
pub const OOM_WINDOW: std::time::Duration = std::time::Duration::from_secs(1);

/// Whether an `oom` at `oom_ns` explains a death at `died_ns` (engine times, nanoseconds): it
/// came at most [`OOM_WINDOW`] before it (or, clocks being what they are, just after).
pub fn oom_made_death(oom_ns: i64, died_ns: i64) -> bool {
    let window = i64::try_from(OOM_WINDOW.as_nanos()).unwrap_or(i64::MAX);
    let gap = died_ns.saturating_sub(oom_ns);
    (-window..=window).contains(&gap)
}

impl Feed {
    /// Reads ahead for up to [`OOM_GRACE`] for an `oom` of container `id`, keeping whatever
    /// else arrives meanwhile for later, in order.
    async fn late_oom(&mut self, id: &str) -> bool {
        let deadline = tokio::time::Instant::now() + OOM_GRACE;
        loop {
            match tokio::time::timeout_at(deadline, self.raw.next()).await {
                Ok(Some(Ok(m))) => {
                    let is_oom = m.action.as_deref() == Some("oom")
                        && m.actor.as_ref().and_then(|a| a.id.as_deref()) == Some(id);
                    if is_oom {
                        return true;
                    }
                    self.pending.push_back(Ok(m));
                }
                Ok(Some(Err(e))) => {
                    self.pending.push_back(Err(e));
                    return false;
                }
                Ok(None) | Err(_) => return false,
            }
        }
    }

    /// The agent event an engine message means, if any.
    async fn interpret(&mut self, m: EventMessage) -> Option<EngineEvent> {
        let at = m.time_nano;
        let actor = m.actor.unwrap_or_default();
        let id = actor.id.unwrap_or_default();
        let attrs = actor.attributes.unwrap_or_default();
        let action = m.action.unwrap_or_default();
        if action == "oom" {
            self.oom.insert(id, at);
            return None;
        }
        let agent = match agent_of(Some(&attrs)) {
            Ok(a) => a,
            Err(e) => {
                tracing::debug!(container = %id, "ignoring {action} of a container: {e}");
                return None;
            }
        };
        match action.as_str() {
            "start" => {
                self.oom.remove(&id);
                Some(EngineEvent::Started {
                    agent,
                    container: id,
                })
            }
            "die" => {
                // Only an OOM kill right before the death is the death's: the engine's flag
                // (and an older `oom`) may be a process `exec`'d into it, long before.
                let seen = match (self.oom.remove(&id).flatten(), at) {
                    (Some(oom), Some(died)) => oom_made_death(oom, died),
                    _ => false,
                };
                let exit_code = match attrs.get("exitCode").and_then(|c| c.parse().ok()) {
                    Some(code) => code,
                    None => {
                        let inspected = self.engine.docker.inspect_container(&id, None).await.ok();
                        let state = inspected.and_then(|c| c.state).unwrap_or_default();
                        state.exit_code.unwrap_or(-1)
                    }
                };
                let mut oom_killed = seen;
                if !oom_killed && exit_code == 137 {
                    oom_killed = self.late_oom(&id).await;
                }
                Some(EngineEvent::Died {
                    agent,
                    container: id,
                    exit_code,
                    oom_killed,
                })
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_oom_right_before_a_death_caused_it() {
        let s = 1_000_000_000;
        assert!(oom_made_death(10 * s, 10 * s));
        assert!(oom_made_death(10 * s, 10 * s + s / 2));
        assert!(
            oom_made_death(10 * s + s / 10, 10 * s),
            "an `oom` reported just after"
        );
        assert!(
            !oom_made_death(10 * s, 12 * s),
            "an exec'd process killed two seconds before"
        );
        assert!(!oom_made_death(10 * s, 600 * s));
    }

    #[test]
    fn the_runtime_reasons_come_first() {
        assert_eq!(stop_reason(137, true, false, true), StopReason::TimedOut);
        assert_eq!(stop_reason(143, false, true, false), StopReason::Requested);
        assert_eq!(stop_reason(137, false, true, false), StopReason::Requested);
        assert_eq!(stop_reason(137, true, true, false), StopReason::Requested);
    }

    #[test]
    fn oom_kills_crashes_and_exits_are_told_apart() {
        assert_eq!(stop_reason(137, true, false, false), StopReason::OomKilled);
        assert_eq!(stop_reason(1, true, false, false), StopReason::OomKilled);
        assert_eq!(
            stop_reason(0, true, false, false),
            StopReason::Exited { code: 0 },
            "a child was killed but the agent exited cleanly"
        );
        assert_eq!(
            stop_reason(137, false, false, false),
            StopReason::Crashed { code: 137 }
        );
        assert_eq!(
            stop_reason(139, false, false, false),
            StopReason::Crashed { code: 139 }
        );
        assert_eq!(
            stop_reason(-1, false, false, false),
            StopReason::Crashed { code: -1 }
        );
        assert_eq!(
            stop_reason(0, false, false, false),
            StopReason::Exited { code: 0 }
        );
        assert_eq!(
            stop_reason(3, false, false, false),
            StopReason::Exited { code: 3 }
        );
        assert_eq!(
            stop_reason(128, false, false, false),
            StopReason::Exited { code: 128 }
        );
        assert_eq!(
            stop_reason(255, false, false, false),
            StopReason::Exited { code: 255 }
        );
    }

    #[test]
    fn since_is_seconds_and_nanoseconds() {
        assert_eq!(engine_time(1_700_000_000_123_456), "1700000000.123456000");
        assert_eq!(engine_time(0), "0.000000000");
    }
}
