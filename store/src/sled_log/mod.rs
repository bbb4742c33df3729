//! [`SledLog`]: the durable event log on sled.
//!
//! - [`open`]: what is checked before anything is served.
//! - [`writer`]: the writer thread, which stages each group of appends (the pipeline's first
//!   half), and [`commit`]: the committer thread, which makes groups durable and visible.
//! - [`index`]: the team index, one entry per run of a team's stream.
//! - [`walk`]: reading records back, verified and linked.
//! - [`fault`]: what appends are refused with after a failed write ([`StoreFault`]), and the
//!   disk reserve.
//!
//! # A full disk, and other failed writes
//!
//! An append is acknowledged only once durable, and a failed one leaves no trace: when sled
//! fails to write or flush a group (`ENOSPC` included), every caller of that group gets
//! [`LogError::Storage`] whose source is a [`StoreFault`] (`DiskFull` names the full disk),
//! nothing was published to readers, and the store then:
//!
//! 1. refuses every append with that fault — groups already staged on top of the failed one
//!    included — and never hands a caller a half-done result;
//! 2. reopens sled at once, because sled 0.34 poisons a handle after its first failed write
//!    (every later write fails, and reads touching the failed buffer too, even once space
//!    returns). On a full disk it first deletes its [`RESERVE`] file, so that sled has the
//!    room to reopen; reads then work again. The reopened log must hold every acknowledged
//!    event with the acknowledged last hash; whatever of the failed groups sled did get onto
//!    the disk (a batch is all or nothing there) is removed and the team index rebuilt, so a
//!    refused append never shows up later, not even after a restart;
//! 3. at the next append, writes the reserve back: if there is room, appends are accepted
//!    again, without a restart; if not, the append is refused with `DiskFull` at once.
//!
//! A store opened on a disk too full for its reserve opens all the same (freeing its old
//! reserve if sled needs that room to open) and serves reads, refusing appends in the same
//! way until the reserve fits. If sled cannot be reopened at all, reads fail with the fault
//! too, and every append retries the reopen.

mod commit;
mod fault;
#[cfg(test)]
mod gate;
mod index;
mod open;
mod walk;
mod writer;

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Condvar, Mutex, PoisonError, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use roster_core::envelope::Envelope;
use roster_core::id::TeamId;
use roster_core::port::{AppendRequest, Checkpoints, EventLog, LogError, LogRead, SignedHeads};
use roster_core::signed::{PublicKey, SignedHead};

use crate::keys;
use fault::Reserve;
use writer::{Job, Work};

pub use fault::{StoreFault, RESERVE};
pub use open::TAIL_CHECK;

/// Maps a sled error into [`LogError::Storage`], naming what was being done.
pub(crate) fn storage(op: &'static str) -> impl FnOnce(sled::Error) -> LogError {
    move |e| LogError::Storage {
        op,
        source: Box::new(e),
    }
}

/// What the writer, the committer and the readers share.
#[derive(Debug)]
struct Shared {
    /// The store's directory.
    dir: PathBuf,
    /// sled; `None` only while the committer reopens it, or when it could not (see the
    /// module docs). Readers hold the read side for the duration of a read, so a reopen
    /// waits for them and then owns sled's file lock.
    db: RwLock<Option<sled::Db>>,
    /// Committed (durable) length; readers never look past it. Guarded for the condvar.
    len: Mutex<u64>,
    grown: Condvar,
    /// Committed team versions (published before `len`).
    versions: RwLock<HashMap<TeamId, u64>>,
    flushes: AtomicU64,
    /// Why appends are refused, while they are (see the module docs).
    fault: Mutex<Option<StoreFault>>,
    #[cfg(test)]
    gate: gate::FlushGate,
}

impl Shared {
    /// Runs `read` on sled, unless it is closed after a fault it could not be reopened from.
    fn with_db<T>(
        &self,
        op: &'static str,
        read: impl FnOnce(&sled::Db) -> Result<T, LogError>,
    ) -> Result<T, LogError> {
        let slot = self.db.read().unwrap_or_else(PoisonError::into_inner);
        match slot.as_ref() {
            Some(db) => read(db),
            None => Err(self
                .fault()
                .unwrap_or_else(|| StoreFault::Io {
                    dir: self.dir.clone(),
                    detail: "the store is closed".into(),
                })
                .error(op)),
        }
    }

    /// Flushes sled (the committer's durable step).
    fn flush(&self) -> Result<(), LogError> {
        self.with_db("flush to disk", |db| {
            db.flush().map_err(storage("flush to disk")).map(drop)
        })?;
        self.flushes.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Why appends are refused now, if they are.
    fn fault(&self) -> Option<StoreFault> {
        self.fault
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn set_fault(&self, fault: Option<StoreFault>) {
        *self.fault.lock().unwrap_or_else(PoisonError::into_inner) = fault;
    }

    /// Makes a durable group visible: versions first, then the length, then wake waiters.
    fn publish(&self, len: u64, versions: &HashMap<TeamId, u64>) {
        self.versions
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .extend(versions.iter().map(|(t, v)| (*t, *v)));
        *self.len.lock().unwrap_or_else(PoisonError::into_inner) = len;
        self.grown.notify_all();
    }

    fn len(&self) -> u64 {
        *self.len.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn version(&self, team: TeamId) -> u64 {
        self.versions
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&team)
            .copied()
            .unwrap_or(0)
    }
}

/// The event log on sled: durable, hash-chained, group-committed.
///
/// Two threads own all appends (see the `writer` module): one stages groups of appends while
/// the other makes the previous ones durable. Reads go straight to sled and never look past
/// the last durable event. Dropping the log stops both after every queued request is answered.
pub struct SledLog {
    dir: PathBuf,
    shared: Arc<Shared>,
    queue: Option<Sender<Job>>,
    writer: Option<JoinHandle<()>>,
    committer: Option<JoinHandle<()>>,
}

impl fmt::Debug for SledLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SledLog")
            .field("dir", &self.dir)
            .field("len", &self.shared.len())
            .field("flushes", &self.flush_count())
            .finish()
    }
}

impl SledLog {
    /// Opens (or creates) the log in `dir`. Refuses a store of an unknown format, a log with a
    /// missing position, and a tail (the last [`TAIL_CHECK`] events) whose chain does not verify.
    ///
    /// The store keeps a [`RESERVE`] of disk space next to its files (see the module docs). On
    /// a disk too full for it the log opens all the same and serves reads, and appends are
    /// refused with [`StoreFault::DiskFull`] until there is room.
    pub fn open(dir: &Path) -> Result<SledLog, LogError> {
        Self::open_with_reserve(dir, RESERVE)
    }

    /// [`SledLog::open`] with a reserve of `reserve` bytes instead of [`RESERVE`] (tests that
    /// fill a small disk).
    pub fn open_with_reserve(dir: &Path, reserve: u64) -> Result<SledLog, LogError> {
        let reserve = Reserve::new(dir, reserve);
        let full = |e: LogError| match StoreFault::classify(dir, &e) {
            fault @ StoreFault::DiskFull { .. } => fault.error("open the store"),
            StoreFault::Io { .. } => e,
        };
        let db = match open_db(dir) {
            Err(e) if StoreFault::classify(dir, &e).is_disk_full() => {
                // No room for sled to open: the reserve is there for this.
                reserve.free();
                open_db(dir).map_err(full)?
            }
            opened => opened?,
        };
        let head = open::load(&db).map_err(full)?;
        let fault = reserve.take().err().map(|e| fault::reserve_fault(dir, &e));
        if let Some(fault) = &fault {
            tracing::warn!("the store opens read-only until there is room: {fault}");
        }
        let durable = head.clone();
        let shared = Arc::new(Shared {
            dir: dir.to_path_buf(),
            db: RwLock::new(Some(db)),
            len: Mutex::new(head.len),
            grown: Condvar::new(),
            versions: RwLock::new(head.versions.clone()),
            flushes: AtomicU64::new(0),
            fault: Mutex::new(fault),
            #[cfg(test)]
            gate: gate::FlushGate::default(),
        });
        let start = |e| LogError::Storage {
            op: "start the store's threads",
            source: Box::new(e),
        };
        // One staged group may wait while another commits; a writer that is further ahead
        // waits too, so that the requests arriving meanwhile make its next group larger.
        let (to_committer, groups) = mpsc::sync_channel(1);
        let for_committer = Arc::clone(&shared);
        let committer = std::thread::Builder::new()
            .name("roster-store-commit".into())
            .spawn(move || commit::run(for_committer, groups, durable, reserve))
            .map_err(start)?;
        // If this fails, the committer sees its channel close and ends by itself.
        let (queue, jobs) = mpsc::channel();
        let for_writer = Arc::clone(&shared);
        let writer = std::thread::Builder::new()
            .name("roster-store-writer".into())
            .spawn(move || writer::run(for_writer, jobs, head, to_committer))
            .map_err(start)?;
        Ok(SledLog {
            dir: dir.to_path_buf(),
            shared,
            queue: Some(queue),
            writer: Some(writer),
            committer: Some(committer),
        })
    }

    /// The directory the store lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// How many times the log flushed to disk since it was opened. With group commit this is
    /// fewer than the number of appends when appends are concurrent.
    pub fn flush_count(&self) -> u64 {
        self.shared.flushes.load(Ordering::Relaxed)
    }

    /// Appends envelopes sealed elsewhere (import, fixtures), unchanged, in one atomic and
    /// durable batch. They must continue the log exactly: next position, linked to the last
    /// hash, each team's next version; otherwise nothing is written.
    pub fn append_sealed(&self, envelopes: Vec<Envelope>) -> Result<(), LogError> {
        self.append_sealed_signed(envelopes, Vec::new())
    }

    /// [`SledLog::append_sealed`], keeping `heads` (signed heads of these envelopes, checked by
    /// the caller) in the same atomic batch.
    pub fn append_sealed_signed(
        &self,
        envelopes: Vec<Envelope>,
        heads: Vec<SignedHead>,
    ) -> Result<(), LogError> {
        if envelopes.is_empty() {
            return Ok(());
        }
        self.submit(Work::Sealed(envelopes, heads)).map(drop)
    }

    /// Why appends are refused now (a full disk, a failed write), if they are; `None` when
    /// the store accepts appends. The next append retries, so this may be stale.
    pub fn fault(&self) -> Option<StoreFault> {
        self.shared.fault()
    }

    fn submit(&self, work: Work) -> Result<Vec<Envelope>, LogError> {
        let queue = self.queue.as_ref().ok_or(LogError::Closed)?;
        let (reply, answer) = mpsc::sync_channel(1);
        queue
            .send(Job { work, reply })
            .map_err(|_| LogError::Closed)?;
        answer.recv().map_err(|_| LogError::Closed)?
    }
}

/// How long `open` waits for the store's file lock.
const LOCK_WAIT: Duration = Duration::from_secs(2);

/// Opens sled in `dir`, waiting up to [`LOCK_WAIT`] for its file lock: sled's background
/// threads can hold the lock of a handle for a moment after it was dropped, so a reopen in the
/// same process would otherwise fail at random. A store another process keeps open still fails.
pub(super) fn open_db(dir: &Path) -> Result<sled::Db, LogError> {
    open_waiting(
        &sled::Config::new()
            .path(dir)
            // Every commit flushes explicitly; a background flusher would add nothing.
            .flush_every_ms(None),
    )
}

/// Opens sled as `config` says, waiting up to [`LOCK_WAIT`] for its file lock (see
/// [`open_db`]); the raw baselines open their dbs this way too.
pub(crate) fn open_waiting(config: &sled::Config) -> Result<sled::Db, LogError> {
    let deadline = Instant::now() + LOCK_WAIT;
    loop {
        match config.open() {
            Ok(db) => return Ok(db),
            // sled 0.34 reports a held lock only through this message.
            Err(sled::Error::Io(e))
                if e.to_string().contains("could not acquire lock")
                    && Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(sled::Error::Io(e)) if e.to_string().contains("could not acquire lock") => {
                return Err(storage("open the store: another process is using it")(
                    sled::Error::Io(e),
                ))
            }
            // sled checks its own files first: a damaged file never reaches our records.
            Err(sled::Error::Corruption { at, bt: _ }) => {
                let place = at.map(|p| format!(" at {p:?}")).unwrap_or_default();
                return Err(LogError::Damaged {
                    why: format!("the storage engine found corruption{place}"),
                });
            }
            Err(e) => return Err(storage("open the store")(e)),
        }
    }
}

impl Drop for SledLog {
    fn drop(&mut self) {
        // Closing the queue lets the writer stage what is queued and stop; the committer then
        // commits and answers what it was handed, and stops.
        self.queue.take();
        for (name, thread) in [
            ("writer", self.writer.take()),
            ("committer", self.committer.take()),
        ] {
            if thread.is_some_and(|t| t.join().is_err()) {
                tracing::error!("the store's {name} thread panicked");
            }
        }
    }
}

impl Checkpoints for SledLog {
    fn checkpoint(&self, name: &str) -> Result<Option<u64>, LogError> {
        let value = self.shared.with_db("read a checkpoint", |db| {
            db.get(keys::checkpoint(name))
                .map_err(storage("read a checkpoint"))
        })?;
        match value {
            None => Ok(None),
            Some(bytes) => keys::u64_value(&bytes)
                .map(Some)
                .ok_or_else(|| LogError::Storage {
                    op: "read a checkpoint",
                    source: format!("checkpoint `{name}` is not a u64").into(),
                }),
        }
    }

    /// Written by the committer like an append (so a full disk is handled the same way).
    fn set_checkpoint(&self, name: &str, seq: u64) -> Result<(), LogError> {
        self.submit(Work::Checkpoint {
            name: name.to_owned(),
            seq,
        })
        .map(drop)
    }
}

/// A stored head that does not decode: the store's files are damaged.
fn malformed_head(key: &[u8]) -> LogError {
    let seq = key.get(1..9).and_then(keys::u64_value).map_or_else(
        || "an unknown position".to_owned(),
        |s| format!("position {s}"),
    );
    LogError::Damaged {
        why: format!("the signed head kept for {seq} is malformed"),
    }
}

impl SignedHeads for SledLog {
    fn signed_heads(&self) -> Result<Vec<SignedHead>, LogError> {
        self.shared.with_db("read the signed heads", |db| {
            let mut out = Vec::new();
            for item in db.scan_prefix([keys::SIGNED_HEAD_PREFIX]) {
                let (k, v) = item.map_err(storage("read the signed heads"))?;
                out.push(SignedHead::from_bytes(&v).ok_or_else(|| malformed_head(&k))?);
            }
            Ok(out)
        })
    }

    fn last_signed_head(&self) -> Result<Option<SignedHead>, LogError> {
        self.shared.with_db("read the signed heads", |db| {
            match db.scan_prefix([keys::SIGNED_HEAD_PREFIX]).next_back() {
                None => Ok(None),
                Some(item) => {
                    let (k, v) = item.map_err(storage("read the signed heads"))?;
                    SignedHead::from_bytes(&v)
                        .map(Some)
                        .ok_or_else(|| malformed_head(&k))
                }
            }
        })
    }

    fn signed_head(&self, seq: u64, key: &PublicKey) -> Result<Option<SignedHead>, LogError> {
        let k = keys::signed_head(seq, &key.to_bytes());
        self.shared.with_db("read a signed head", |db| {
            match db.get(k).map_err(storage("read a signed head"))? {
                None => Ok(None),
                Some(v) => SignedHead::from_bytes(&v)
                    .map(Some)
                    .ok_or_else(|| malformed_head(&k)),
            }
        })
    }

    /// Written by the committer like an append (so a full disk is handled the same way).
    fn keep_signed_head(&self, head: SignedHead) -> Result<(), LogError> {
        self.submit(Work::SignedHead(head)).map(drop)
    }
}

impl EventLog for SledLog {
    fn append(&self, request: AppendRequest) -> Result<Vec<Envelope>, LogError> {
        if request.events.is_empty() {
            return Err(LogError::EmptyBatch);
        }
        self.submit(Work::Append(request))
    }
}

impl LogRead for SledLog {
    fn len(&self) -> u64 {
        self.shared.len()
    }

    fn read(&self, from: u64, limit: usize) -> Result<Vec<Envelope>, LogError> {
        let len = self.len();
        let to = from
            .saturating_add(u64::try_from(limit).unwrap_or(u64::MAX))
            .min(len);
        let mut out = Vec::new();
        self.shared.with_db("read the log", |db| {
            walk::records(db, from, to, None, |env| {
                out.push(env);
                Ok(())
            })
        })?;
        Ok(out)
    }

    fn read_team(
        &self,
        team: TeamId,
        from_version: u64,
        limit: usize,
    ) -> Result<Vec<Envelope>, LogError> {
        let from = from_version.max(1);
        let to = from
            .saturating_add(u64::try_from(limit).unwrap_or(u64::MAX))
            .min(self.shared.version(team) + 1);
        self.shared.with_db("read the team index", |db| {
            index::read_team(db, team, from, to)
        })
    }

    fn team_version(&self, team: TeamId) -> Result<u64, LogError> {
        Ok(self.shared.version(team))
    }

    fn wait_longer_than(&self, len: u64, timeout: Duration) -> u64 {
        let deadline = Instant::now() + timeout;
        let mut current = self
            .shared
            .len
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        while *current <= len {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            current = match self.shared.grown.wait_timeout(current, left) {
                Ok((g, _)) => g,
                Err(p) => p.into_inner().0,
            };
        }
        *current
    }

    fn verify(&self) -> Result<u64, LogError> {
        let len = self.len();
        let mut count = 0u64;
        self.shared.with_db("verify the log", |db| {
            walk::records(db, 0, len, None, |_| {
                count += 1;
                Ok(())
            })
        })?;
        Ok(count)
    }
}

#[cfg(test)]
mod tests;
