//! The team index: where each team's stream lies in the log, one entry per **run** — a stretch
//! of the stream that is contiguous in both versions and positions, which is what one append
//! writes. Key `t‖team‖first version`, value `first position‖count` (see [`crate::keys`]).
//!
//! One entry per run rather than per event halves what a group commit inserts into sled (whose
//! cost is per key), and lets a team's stream be read as a few range scans of the log. Like
//! the versions, the index is derived from the log: `open` rebuilds it when it disagrees.

use std::collections::HashMap;

use roster_core::envelope::{ChainError, Envelope};
use roster_core::id::TeamId;
use roster_core::port::LogError;

use super::{storage, walk};
use crate::keys;

/// Versions `first_version..first_version + count` of a team are at positions
/// `first_seq..first_seq + count`. Never empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Run {
    pub(super) first_version: u64,
    pub(super) first_seq: u64,
    pub(super) count: u64,
}

impl Run {
    /// Decodes an index entry; `None` if it is not one.
    fn decode(key: &[u8], value: &[u8]) -> Option<(TeamId, Run)> {
        let (team, first_version) = keys::team_parts(key)?;
        let (first_seq, count) = keys::run_parts(value)?;
        Some((
            team,
            Run {
                first_version,
                first_seq,
                count,
            },
        ))
    }

    /// The version after the last one of the run.
    pub(super) fn end_version(&self) -> u64 {
        self.first_version.saturating_add(self.count)
    }

    /// The position after the last one of the run.
    pub(super) fn end_seq(&self) -> u64 {
        self.first_seq.saturating_add(self.count)
    }
}

/// The runs of envelopes handed over in log order: a run grows while its team's next event is
/// both its next version and its next position.
#[derive(Debug, Default)]
pub(super) struct Runs {
    runs: Vec<(TeamId, Run)>,
    /// Where each team's latest run is in `runs`.
    latest: HashMap<TeamId, usize>,
}

impl Runs {
    /// Adds the event at `seq` that is `team`'s version `version`.
    pub(super) fn push(&mut self, team: TeamId, version: u64, seq: u64) {
        if let Some(&i) = self.latest.get(&team) {
            let (_, run) = &mut self.runs[i];
            if run.end_version() == version && run.end_seq() == seq {
                run.count += 1;
                return;
            }
        }
        self.latest.insert(team, self.runs.len());
        self.runs.push((
            team,
            Run {
                first_version: version,
                first_seq: seq,
                count: 1,
            },
        ));
    }

    /// Writes one index entry per run into `batch`.
    pub(super) fn write(&self, batch: &mut sled::Batch) {
        for (team, run) in &self.runs {
            batch.insert(
                &keys::team(*team, run.first_version),
                &keys::run_value(run.first_seq, run.count),
            );
        }
    }
}

fn malformed(team: TeamId) -> LogError {
    LogError::Storage {
        op: "read the team index",
        source: format!("an entry of {team} in the team index is malformed").into(),
    }
}

/// `team`'s last run, where its stream ends; `None` if it has no entry or its last entry is
/// malformed.
pub(super) fn last_run(db: &sled::Db, team: TeamId) -> Result<Option<Run>, LogError> {
    let Some(item) = db.scan_prefix(keys::team_prefix(team)).next_back() else {
        return Ok(None);
    };
    let (key, value) = item.map_err(storage("read the team index"))?;
    Ok(Run::decode(&key, &value)
        .filter(|(t, run)| *t == team && run.count > 0)
        .map(|(_, run)| run))
}

/// `team`'s versions `from..to` (`from` ≥ 1, `to` at most one past its durable version), each
/// record verified, linked to the one before it in the log, and checked to be that version of
/// that team.
pub(super) fn read_team(
    db: &sled::Db,
    team: TeamId,
    from: u64,
    to: u64,
) -> Result<Vec<Envelope>, LogError> {
    let mut out = Vec::new();
    if from >= to {
        return Ok(out);
    }
    // The run holding `from` is the last one that starts at or before it.
    let first = db
        .range(keys::team(team, 0)..=keys::team(team, from))
        .next_back()
        .transpose()
        .map_err(storage("read the team index"))?
        .map_or_else(|| keys::team(team, from).to_vec(), |(key, _)| key.to_vec());
    let mut expected = from;
    for item in db.range(first..keys::team(team, to).to_vec()) {
        let (key, value) = item.map_err(storage("read the team index"))?;
        let Some((_, run)) = Run::decode(&key, &value).filter(|(t, r)| *t == team && r.count > 0)
        else {
            return Err(malformed(team));
        };
        if run.first_version > expected || run.end_version() <= expected {
            // Runs must tile the stream: a gap, or an entry overlapping the one before.
            break;
        }
        let from_seq = run.first_seq + (expected - run.first_version);
        let to_seq = from_seq + (run.end_version().min(to) - expected);
        walk::records(db, from_seq, to_seq, None, |env| {
            if env.team != team || env.version != expected {
                return Err(ChainError::Undecodable {
                    seq: env.seq,
                    why: format!(
                        "the team index says this is version {expected} of {team}; \
                         the record says version {} of {}",
                        env.version, env.team
                    ),
                }
                .into());
            }
            expected += 1;
            out.push(env);
            Ok(())
        })?;
    }
    if expected < to {
        return Err(LogError::Storage {
            op: "read the team index",
            source: format!("version {expected} of {team} is missing from the index").into(),
        });
    }
    Ok(out)
}
