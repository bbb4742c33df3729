//! Storage faults: what an append is refused with after sled failed to write, and the disk
//! reserve that lets the store reopen (and so go on serving reads) on a full disk.
//!
//! sled 0.34 does not survive a failed write: the first I/O error (a full disk included) is
//! kept as a global error of that handle, every later write and flush returns it, and reads
//! that touch a page of the failed buffer fail too — even once space returns. Only a fresh
//! handle clears it, and opening one needs free space itself (a new segment and a snapshot).
//! So the store keeps [`RESERVE`] bytes of its own in a file next to sled's: when the disk
//! fills up it deletes that file and reopens sled in the room it frees (see
//! [`super::commit`]); it takes new appends again only once the reserve could be written back.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use roster_core::port::LogError;

/// How many bytes the store keeps in reserve on its disk: enough for sled to reopen (one
/// 512 KiB segment and its snapshot, which grows by about 0.5 % of the log) with a margin.
pub const RESERVE: u64 = 8 << 20;

/// The reserve's file, inside the store's directory (sled ignores files it does not know).
const RESERVE_FILE: &str = "roster-reserve";

/// Why the store refuses appends after a failed write. Carried as the `source` of
/// [`LogError::Storage`]; [`StoreFault::of`] finds it in an error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreFault {
    /// The disk holding the store has no room left. Nothing of the refused append was
    /// recorded; appends resume by themselves once there is room again.
    #[error(
        "the data disk is full (no room left for the store at {dir}): nothing of this was \
         recorded; free space on that disk and retry — no restart is needed ({detail})"
    )]
    DiskFull {
        /// The store's directory.
        dir: PathBuf,
        /// What the operating system said.
        detail: String,
    },
    /// Writing to the store failed for another reason (an I/O error). Nothing of the refused
    /// append was recorded; the store retries reopening its files at each append.
    #[error(
        "the store at {dir} could not write to its disk: nothing of this was recorded; \
         appends resume once the store can reopen its files ({detail})"
    )]
    Io {
        /// The store's directory.
        dir: PathBuf,
        /// What the storage engine said.
        detail: String,
    },
}

impl StoreFault {
    /// The fault behind `err`, if `err` is an append (or read) refused because of one.
    pub fn of(err: &LogError) -> Option<&StoreFault> {
        let LogError::Storage { source, .. } = err else {
            return None;
        };
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(source.as_ref());
        while let Some(e) = cause {
            if let Some(fault) = e.downcast_ref::<StoreFault>() {
                return Some(fault);
            }
            cause = e.source();
        }
        None
    }

    /// Whether this is a full disk.
    pub fn is_disk_full(&self) -> bool {
        matches!(self, StoreFault::DiskFull { .. })
    }

    /// The fault a failed store operation stands for: a full disk when the operating system
    /// said so anywhere in `err`'s chain, else an I/O fault.
    pub(crate) fn classify(dir: &Path, err: &LogError) -> StoreFault {
        if let Some(fault) = StoreFault::of(err) {
            return fault.clone();
        }
        let detail = match err {
            LogError::Storage { source, .. } => source.to_string(),
            other => other.to_string(),
        };
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(err);
        let mut full = false;
        while let Some(e) = cause {
            full |= e
                .downcast_ref::<io::Error>()
                .is_some_and(|io| io.kind() == io::ErrorKind::StorageFull)
                || e.downcast_ref::<sled::Error>().is_some_and(
                    |s| matches!(s, sled::Error::Io(io) if io.kind() == io::ErrorKind::StorageFull),
                );
            cause = e.source();
        }
        let dir = dir.to_path_buf();
        if full {
            StoreFault::DiskFull { dir, detail }
        } else {
            StoreFault::Io { dir, detail }
        }
    }

    /// The error an operation refused because of this fault returns.
    pub(crate) fn error(&self, op: &'static str) -> LogError {
        LogError::Storage {
            op,
            source: Box::new(self.clone()),
        }
    }
}

/// The reserve file of a store directory.
#[derive(Debug)]
pub(super) struct Reserve {
    path: PathBuf,
    size: u64,
}

impl Reserve {
    pub(super) fn new(dir: &Path, size: u64) -> Self {
        Reserve {
            path: dir.join(RESERVE_FILE),
            size,
        }
    }

    /// Whether the reserve is in place, whole.
    pub(super) fn is_held(&self) -> bool {
        fs::metadata(&self.path).is_ok_and(|m| m.len() == self.size)
    }

    /// Writes the reserve (real bytes, not a sparse file, then synced) unless it is in place.
    /// On a disk without room for it, nothing is left behind and the error says so.
    pub(super) fn take(&self) -> io::Result<()> {
        if self.is_held() {
            return Ok(());
        }
        let tmp = self.path.with_extension("tmp");
        let written = write_filled(&tmp, self.size).and_then(|()| fs::rename(&tmp, &self.path));
        if written.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        written
    }

    /// Deletes the reserve, giving its room back to the disk.
    pub(super) fn free(&self) {
        if let Err(e) = fs::remove_file(&self.path) {
            if e.kind() != io::ErrorKind::NotFound {
                tracing::warn!("could not free the store's disk reserve: {e}");
            }
        }
    }
}

fn write_filled(path: &Path, size: u64) -> io::Result<()> {
    const CHUNK: usize = 64 << 10;
    let chunk = vec![0xA5u8; CHUNK];
    let mut file = File::create(path)?;
    let mut left = size;
    while left > 0 {
        let n = usize::try_from(left).map_or(CHUNK, |l| l.min(CHUNK));
        file.write_all(&chunk[..n])?;
        left -= n as u64;
    }
    file.sync_all()
}

/// The fault of a reserve that could not be written: a full disk, or another I/O error.
pub(super) fn reserve_fault(dir: &Path, e: &io::Error) -> StoreFault {
    let detail = format!("no room to put back the store's {RESERVE_FILE} of its disk reserve: {e}");
    let dir = dir.to_path_buf();
    if e.kind() == io::ErrorKind::StorageFull {
        StoreFault::DiskFull { dir, detail }
    } else {
        StoreFault::Io { dir, detail }
    }
}
