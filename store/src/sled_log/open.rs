//! What [`super::SledLog::open`] checks before it serves anything: the format version, that
//! positions are gapless from 0 (a keys-only walk), the hash chain over the last
//! [`TAIL_CHECK`] records, and that the derived team versions agree with the team index —
//! rebuilding both from the log if they do not, since the log is the only source of truth.
//! A store of an older format whose records this build reads is migrated the same way: its
//! index is rebuilt and the new format stamped in one atomic batch.

use std::collections::HashMap;
use std::ops::Bound;

use roster_core::envelope::{ChainError, Envelope, Hash};
use roster_core::id::TeamId;
use roster_core::port::LogError;
use roster_core::time::Timestamp;

use super::index::{self, Runs};
use super::{storage, walk};
use crate::head::Head;
use crate::keys;

/// How many records at the end of the log `open` re-verifies (`verify` walks them all).
pub const TAIL_CHECK: u64 = 1024;

/// Loads the head of the log in `db`, checking it on the way.
pub(super) fn load(db: &sled::Db) -> Result<Head, LogError> {
    let format = check_format(db)?;
    let len = count_gapless(db)?;
    let (last_hash, last_at) = check_tail(db, len)?;
    let versions = if format < keys::FORMAT_VERSION {
        tracing::info!(
            "store format {format}: rebuilding its team index from the log as format {}",
            keys::FORMAT_VERSION
        );
        rebuild_index(db, len)?
    } else {
        match load_versions(db, len)? {
            Some(v) => v,
            None => {
                tracing::warn!("team index does not match the log; rebuilding it from the log");
                rebuild_index(db, len)?
            }
        }
    };
    Ok(Head {
        len,
        last_hash,
        last_at,
        versions,
    })
}

/// The store's format version, if this build opens it; a new store is stamped with
/// [`keys::FORMAT_VERSION`].
fn check_format(db: &sled::Db) -> Result<u32, LogError> {
    let found = db
        .get(keys::FORMAT_KEY)
        .map_err(storage("read the format version"))?;
    match found {
        Some(bytes) => {
            let found = <[u8; 4]>::try_from(bytes.as_ref())
                .map(u32::from_be_bytes)
                .unwrap_or(0);
            if !(keys::OLDEST_FORMAT..=keys::FORMAT_VERSION).contains(&found) {
                return Err(LogError::Format {
                    found,
                    supported: keys::FORMAT_VERSION,
                });
            }
            Ok(found)
        }
        None => {
            // A new store: stamp it. A store with keys but no stamp was not written by us.
            let is_empty = db
                .first()
                .map_err(storage("look into the store"))?
                .is_none();
            if !is_empty {
                return Err(LogError::Format {
                    found: 0,
                    supported: keys::FORMAT_VERSION,
                });
            }
            db.insert(keys::FORMAT_KEY, &keys::FORMAT_VERSION.to_be_bytes())
                .map_err(storage("stamp the format version"))?;
            db.flush().map_err(storage("flush the format version"))?;
            Ok(keys::FORMAT_VERSION)
        }
    }
}

/// Walks the record keys: they must be exactly `0..len`.
fn count_gapless(db: &sled::Db) -> Result<u64, LogError> {
    let mut expected = 0u64;
    for key in db.scan_prefix([keys::EVENT_PREFIX]).keys() {
        let key = key.map_err(storage("walk the log's positions"))?;
        let found = keys::event_seq(&key).ok_or_else(|| ChainError::Undecodable {
            seq: expected,
            why: format!("malformed record key of {} bytes", key.len()),
        })?;
        if found != expected {
            return Err(ChainError::Gap { expected, found }.into());
        }
        expected += 1;
    }
    Ok(expected)
}

/// Verifies the chain over the last [`TAIL_CHECK`] records; returns the last hash and time.
fn check_tail(db: &sled::Db, len: u64) -> Result<(Hash, Timestamp), LogError> {
    let start = len.saturating_sub(TAIL_CHECK);
    let mut last: Option<Envelope> = None;
    let mut anchor = None;
    if start > 0 {
        // The record just before the tail anchors the first link; it is itself verified.
        anchor = Some(walk::get(db, start - 1)?);
    }
    walk::records(db, start, len, anchor.as_ref(), |env| {
        last = Some(env);
        Ok(())
    })?;
    Ok(match last.or(anchor) {
        Some(env) => (env.hash(), env.at),
        None => (Hash::ZERO, Timestamp::EPOCH),
    })
}

/// The cached team versions, if each agrees with the team index (the team's last run ends at
/// that version, and inside the log). `None` when anything disagrees.
fn load_versions(db: &sled::Db, len: u64) -> Result<Option<HashMap<TeamId, u64>>, LogError> {
    let mut versions = HashMap::new();
    for item in db.scan_prefix([keys::VERSION_PREFIX]) {
        let (k, v) = item.map_err(storage("read the team versions"))?;
        let (Some(team), Some(version)) = (keys::version_team(&k), keys::u64_value(&v)) else {
            return Ok(None);
        };
        match index::last_run(db, team)? {
            Some(run) if run.end_version() == version + 1 && run.end_seq() <= len => {}
            _ => return Ok(None),
        }
        versions.insert(team, version);
    }
    // Every team with index entries must have a version. Each team checked above has entries,
    // so the two agree exactly when the index holds as many teams as there are versions.
    Ok((count_indexed_teams(db)? == Some(versions.len())).then_some(versions))
}

/// How many teams have entries in the team index, found with one seek per team (from a team's
/// first key past its last possible one), not a walk over every entry. `None` if a key of the
/// index is malformed.
fn count_indexed_teams(db: &sled::Db) -> Result<Option<usize>, LogError> {
    let end = Bound::Excluded(vec![keys::TEAM_PREFIX + 1]);
    let mut from = Bound::Included(vec![keys::TEAM_PREFIX]);
    let mut teams = 0usize;
    while let Some(item) = db.range((from, end.clone())).next() {
        let (key, _) = item.map_err(storage("walk the team index"))?;
        let Some((team, _)) = keys::team_parts(&key) else {
            return Ok(None);
        };
        teams += 1;
        from = Bound::Excluded(keys::team(team, u64::MAX).to_vec());
    }
    Ok(Some(teams))
}

/// Brings a log reopened after a failed write back to exactly what was acknowledged,
/// `durable`: it must hold those events (the same last hash); records past them — what of a
/// failed group reached the disk — are removed and the team index rebuilt without them, in
/// one atomic batch. So an append that was refused never appears, not even after a restart.
pub(super) fn truncate_to(db: &sled::Db, durable: &Head) -> Result<(), LogError> {
    let found = load(db)?;
    let lost = |why: String| LogError::Damaged { why };
    if found.len < durable.len {
        return Err(lost(format!(
            "the store reopened with {} events after a failed write; {} were acknowledged",
            found.len, durable.len
        )));
    }
    let last_hash = match durable.len.checked_sub(1) {
        None => Hash::ZERO,
        Some(last) => walk::get(db, last)?.hash(),
    };
    if last_hash != durable.last_hash {
        return Err(lost(format!(
            "the store reopened after a failed write with another event at position {}",
            durable.len.saturating_sub(1)
        )));
    }
    if found.len == durable.len {
        return Ok(());
    }
    tracing::warn!(
        "removing positions {}..{} of a failed write from the log",
        durable.len,
        found.len
    );
    let mut batch = sled::Batch::default();
    for seq in durable.len..found.len {
        batch.remove(&keys::event(seq));
    }
    let versions = rebuild_index_in(db, durable.len, batch)?;
    if versions != durable.versions {
        return Err(lost(
            "the team versions of the reopened store disagree with the acknowledged ones".into(),
        ));
    }
    Ok(())
}

/// Rebuilds the team index and versions from the (fully verified) log, and stamps the format
/// this build writes, in one atomic batch.
fn rebuild_index(db: &sled::Db, len: u64) -> Result<HashMap<TeamId, u64>, LogError> {
    rebuild_index_in(db, len, sled::Batch::default())
}

/// [`rebuild_index`] of the log's first `len` records, in one atomic batch with `batch`.
fn rebuild_index_in(
    db: &sled::Db,
    len: u64,
    mut batch: sled::Batch,
) -> Result<HashMap<TeamId, u64>, LogError> {
    for prefix in [keys::TEAM_PREFIX, keys::VERSION_PREFIX] {
        for key in db.scan_prefix([prefix]).keys() {
            batch.remove(key.map_err(storage("walk the team index"))?);
        }
    }
    let mut runs = Runs::default();
    let mut versions: HashMap<TeamId, u64> = HashMap::new();
    walk::records(db, 0, len, None, |env| {
        let v = versions.entry(env.team).or_default();
        *v += 1;
        if env.version != *v {
            return Err(ChainError::Undecodable {
                seq: env.seq,
                why: format!(
                    "team version {} does not follow {} in the log",
                    env.version,
                    *v - 1
                ),
            }
            .into());
        }
        runs.push(env.team, env.version, env.seq);
        Ok(())
    })?;
    runs.write(&mut batch);
    for (team, v) in &versions {
        batch.insert(&keys::version(*team), &v.to_be_bytes());
    }
    batch.insert(keys::FORMAT_KEY, &keys::FORMAT_VERSION.to_be_bytes());
    db.apply_batch(batch)
        .map_err(storage("rewrite the team index"))?;
    db.flush().map_err(storage("flush the team index"))?;
    Ok(versions)
}
