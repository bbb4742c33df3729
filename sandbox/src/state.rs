//! What the engine says about a container, in roster's types.
//!
//! The engine's answers are full of optional strings; these types are what the runtime needs to
//! decide (is it running, why did it stop, whose is it) with the engine's vocabulary kept inside
//! this crate.

use std::collections::HashMap;
use std::fmt;

use bollard::models::ContainerStateStatusEnum;
use roster_core::id::AgentId;
use roster_core::time::Timestamp;

use crate::plan::labels;

/// The engine's lifecycle state of a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ContainerStatus {
    /// Created, never started.
    Created,
    /// Its process runs.
    Running,
    /// Frozen by the engine.
    Paused,
    /// The engine is restarting it (roster never asks for that).
    Restarting,
    /// Being removed.
    Removing,
    /// Its process ended.
    Exited,
    /// The engine failed to stop or remove it.
    Dead,
    /// A state this engine version reports that roster does not know.
    Unknown,
}

impl ContainerStatus {
    pub(crate) fn from_engine(s: Option<ContainerStateStatusEnum>) -> Self {
        use ContainerStateStatusEnum as E;
        match s {
            Some(E::CREATED) => Self::Created,
            Some(E::RUNNING) => Self::Running,
            Some(E::PAUSED) => Self::Paused,
            Some(E::RESTARTING) => Self::Restarting,
            Some(E::REMOVING) => Self::Removing,
            Some(E::EXITED) => Self::Exited,
            Some(E::DEAD) => Self::Dead,
            _ => Self::Unknown,
        }
    }

    pub(crate) fn from_text(s: &str) -> Self {
        match s {
            "created" => Self::Created,
            "running" => Self::Running,
            "paused" => Self::Paused,
            "restarting" => Self::Restarting,
            "removing" => Self::Removing,
            "exited" => Self::Exited,
            "dead" => Self::Dead,
            _ => Self::Unknown,
        }
    }
}

impl fmt::Display for ContainerStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Created => "created",
            Self::Running => "running",
            Self::Paused => "paused",
            Self::Restarting => "restarting",
            Self::Removing => "removing",
            Self::Exited => "exited",
            Self::Dead => "dead",
            Self::Unknown => "unknown",
        })
    }
}

/// One agent container's state, for `roster agents` (state, runtime, uptime) and for deciding
/// why it stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerState {
    /// The engine's id of the container.
    pub id: String,
    /// Whether its process runs.
    pub running: bool,
    /// The engine's lifecycle state.
    pub status: ContainerStatus,
    /// When it last started, if ever.
    pub started_at: Option<Timestamp>,
    /// When it last stopped, if ever.
    pub finished_at: Option<Timestamp>,
    /// The exit code of its last run, if it ran.
    pub exit_code: Option<i64>,
    /// Whether the kernel's OOM killer acted in it during its last run.
    pub oom_killed: bool,
    /// Its OCI runtime (`runc`, `runsc`).
    pub runtime: String,
    /// The image reference it was created from.
    pub image: String,
    /// The user it runs as (`UID:GID`), as created.
    pub user: String,
}

impl ContainerState {
    /// The agent's own host uid it runs as, if it runs as one (a container of an older roster
    /// ran as 1000).
    pub fn uid(&self) -> Option<crate::uid::AgentUid> {
        let (uid, gid) = self.user.split_once(':')?;
        crate::uid::AgentUid::parse(uid).filter(|u| gid == u.to_string())
    }
}

/// A container labelled with this namespace, as a reconcile finds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// Its name, without the engine's leading `/`.
    pub name: String,
    /// The engine's id.
    pub id: String,
    /// The agent it belongs to, from its `roster.agent` label.
    pub agent: Result<AgentId, BadAgentLabel>,
    /// The engine's lifecycle state.
    pub status: ContainerStatus,
    /// The image reference it was created from.
    pub image: String,
    /// Whether it prepares a home rather than runs an agent.
    pub prep: bool,
}

/// A container carries this namespace's label but no valid `roster.agent` label: not an agent's
/// container roster made (a reconcile removes it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("its roster.agent label is {}", match .raw { Some(r) => format!("{r:?}, not an agent id"), None => "missing".to_string() })]
pub struct BadAgentLabel {
    /// The label's text, if it has one.
    pub raw: Option<String>,
}

/// The agent a set of container labels names.
pub(crate) fn agent_of(labels: Option<&HashMap<String, String>>) -> Result<AgentId, BadAgentLabel> {
    let raw = labels.and_then(|l| l.get(labels::AGENT));
    match raw {
        Some(r) => r.parse().map_err(|_| BadAgentLabel {
            raw: Some(r.clone()),
        }),
        None => Err(BadAgentLabel { raw: None }),
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Parses the engine's UTC RFC 3339 times (`2024-05-01T12:00:00.123456789Z`); the engine's
/// "never" (`0001-01-01T00:00:00Z`), an empty text or anything unparseable is `None`.
pub(crate) fn parse_time(s: &str) -> Option<Timestamp> {
    let s = s.strip_suffix('Z')?;
    let (date, time) = s.split_once('T')?;
    let mut d = date.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (y, mo, da) = (d.next()??, d.next()??, d.next()??);
    if y < 1970 || !(1..=12).contains(&mo) || !(1..=31).contains(&da) {
        return None;
    }
    let (hms, frac) = time.split_once('.').unwrap_or((time, ""));
    let mut t = hms.splitn(3, ':').map(|p| p.parse::<i64>().ok());
    let (h, mi, se) = (t.next()??, t.next()??, t.next()??);
    if !(0..24).contains(&h) || !(0..60).contains(&mi) || !(0..61).contains(&se) {
        return None;
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let micros_text: String = frac.chars().chain("000000".chars()).take(6).collect();
    let micros: i64 = micros_text.parse().ok()?;
    let secs = days_from_civil(y, mo, da) * 86_400 + h * 3600 + mi * 60 + se;
    Some(Timestamp::from_micros(secs * 1_000_000 + micros))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_times_parse() {
        assert_eq!(
            parse_time("1970-01-01T00:00:00Z"),
            Some(Timestamp::from_micros(0))
        );
        assert_eq!(
            parse_time("2023-11-14T22:13:20.123456789Z"),
            Some(Timestamp::from_micros(1_700_000_000_123_456))
        );
        assert_eq!(
            parse_time("2024-02-29T00:00:01.5Z"),
            Some(Timestamp::from_micros(1_709_164_801_500_000))
        );
        for never in [
            "0001-01-01T00:00:00Z",
            "",
            "2024-01-01T00:00:00+02:00",
            "x",
            "2024-13-01T00:00:00Z",
        ] {
            assert_eq!(parse_time(never), None, "{never}");
        }
    }

    #[test]
    fn agent_labels_are_parsed_or_reported() {
        let id = "agt_0123456789abcdef0123456789abcdef";
        let l = HashMap::from([(labels::AGENT.to_string(), id.to_string())]);
        assert_eq!(agent_of(Some(&l)).unwrap().to_string(), id);
        let bad = HashMap::from([(labels::AGENT.to_string(), "nope".to_string())]);
        let e = agent_of(Some(&bad)).unwrap_err();
        assert_eq!(e.raw.as_deref(), Some("nope"));
        assert!(e.to_string().contains("not an agent id"));
        assert_eq!(agent_of(None).unwrap_err().raw, None);
    }
}
