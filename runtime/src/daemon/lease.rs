//! One data directory, one daemon; one namespace, one data directory.
//!
//! - `DATA/serve.lock`: an exclusive `flock` the daemon holds for its whole life, with its pid
//!   written in it. A second `roster serve` on the same data directory is refused naming the
//!   first one's pid (the lock goes with the process, whatever way it ends).
//! - `DATA/id`: the data directory's own random id, made once.
//! - The namespace's lease on the engine (`roster_sandbox::lease`) names the data directory
//!   that drives its containers: its id, its path and its host. A daemon starts where it holds
//!   the lease or no one does. Another holder — an imported or copied data directory, whose log
//!   knows the same agents — is refused, unless the operator says `--take-over`, which is
//!   refused in turn while the holder still runs on this host. A running daemon looks at its
//!   lease every [`CHECK_EVERY`] and stops, saying why, once another holds it.
//!
//! This is the single-machine form of a cluster's leases: a holder, its identity and a claim
//! the engine makes atomic.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use roster_sandbox::lease::Lease;
use roster_sandbox::Engine;

use crate::error::StartError;

/// How often a running daemon looks at its namespace's lease.
pub const CHECK_EVERY: Duration = Duration::from_secs(10);

/// The lock on a data directory, held while the daemon runs; released when dropped (or when
/// the process ends, however it ends).
#[derive(Debug)]
pub struct ServeLock {
    _file: File,
}

/// The lock file of `data_dir`.
fn lock_path(data_dir: &Path) -> PathBuf {
    data_dir.join("serve.lock")
}

/// Takes `data_dir`'s lock, writing this process's pid in it; refused, naming the holder's pid,
/// while another daemon holds it.
pub fn lock_data_dir(data_dir: &Path) -> Result<ServeLock, StartError> {
    let path = lock_path(data_dir);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .map_err(StartError::io("open", &path))?;
    if let Err(e) = rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
        if e == rustix::io::Errno::WOULDBLOCK {
            return Err(StartError::AlreadyServing {
                data_dir: data_dir.to_owned(),
                pid: read_pid(&mut file),
            });
        }
        return Err(StartError::io("lock", &path)(e.into()));
    }
    file.set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|()| writeln!(file, "{}", std::process::id()))
        .and_then(|()| file.sync_all())
        .map_err(StartError::io("write", &path))?;
    Ok(ServeLock { _file: file })
}

/// The pid written in a lock file, if it holds one.
fn read_pid(file: &mut File) -> Option<u32> {
    let mut text = String::new();
    file.rewind().ok()?;
    file.take(32).read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}

/// Whether a daemon runs on `data_dir` on this host, and its pid if it says: the lock of a
/// directory that exists here and is held. Only a lock file that is not there says no; one
/// that cannot be looked at (another's, a link, not a file) counts as running, so a take-over
/// never goes ahead on a guess. The path comes from the lease's labels: opened without
/// following a link or waiting on a FIFO.
fn running_on(data_dir: &Path) -> Option<Option<u32>> {
    use rustix::fs::{Mode, OFlags};
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
    let mut file = match rustix::fs::open(lock_path(data_dir), flags, Mode::empty()) {
        Ok(fd) => File::from(fd),
        Err(e) if e == rustix::io::Errno::NOENT => return None,
        Err(_) => return Some(None),
    };
    if !file.metadata().is_ok_and(|m| m.is_file()) {
        return Some(None);
    }
    match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockShared) {
        Ok(()) => None,
        Err(e) if e == rustix::io::Errno::WOULDBLOCK => Some(read_pid(&mut file)),
        Err(_) => Some(None),
    }
}

/// `data_dir`'s own id, made (16 random bytes, in hex) the first time it is asked for.
fn data_dir_id(data_dir: &Path) -> Result<String, StartError> {
    let path = data_dir.join("id");
    match std::fs::read_to_string(&path) {
        Ok(id) if id.trim().len() == 32 && id.trim().bytes().all(|b| b.is_ascii_hexdigit()) => {
            return Ok(id.trim().to_owned())
        }
        Ok(other) => {
            return Err(StartError::io("read", &path)(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "{:?} is not a data directory id (32 hex digits)",
                    other.trim()
                ),
            )))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(StartError::io("read", &path)(e)),
    }
    let mut bytes = [0u8; 16];
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(StartError::io("read", Path::new("/dev/urandom")))?;
    let id: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let tmp = data_dir.join("id.new");
    std::fs::write(&tmp, format!("{id}\n"))
        .and_then(|()| std::fs::rename(&tmp, &path))
        .map_err(StartError::io("write", &path))?;
    Ok(id)
}

/// This host's name.
fn host_name() -> String {
    rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned()
}

/// What this daemon's lease says of it.
pub fn me(data_dir: &Path) -> Result<Lease, StartError> {
    let dir = std::path::absolute(data_dir).map_err(StartError::io("resolve", data_dir))?;
    Ok(Lease {
        holder: data_dir_id(data_dir)?,
        dir: dir.display().to_string(),
        host: host_name(),
        since: crate::app::now().to_string(),
    })
}

/// Refuses the start where another holds the engine's namespace, unless `take_over` and that
/// holder does not run on this host: its lease is then removed, for [`claim`].
pub async fn check(engine: &Engine, me: &Lease, take_over: bool) -> Result<(), StartError> {
    let ns = engine.ns().clone();
    if let Some(held) = engine.lease().await? {
        if !held.same_holder(me) {
            let running = (held.host == me.host)
                .then(|| running_on(Path::new(&held.dir)))
                .flatten();
            match (take_over, running) {
                (true, None) => {
                    tracing::warn!(
                        "taking namespace {ns} over from {} on {} (since {})",
                        held.dir,
                        held.host,
                        held.since
                    );
                    engine.remove_lease().await?;
                }
                (_, running) => {
                    return Err(StartError::NamespaceLeased {
                        ns,
                        dir: held.dir,
                        host: held.host,
                        since: held.since,
                        running,
                        take_over,
                    })
                }
            }
        }
    }
    Ok(())
}

/// Claims the engine's namespace for `me` (after [`check`]); refused where another daemon
/// claimed it at the same moment and the engine kept its claim.
pub async fn claim(engine: &Engine, me: &Lease, take_over: bool) -> Result<(), StartError> {
    let ns = engine.ns().clone();
    let held = engine.claim_lease(me).await?;
    if held.same_holder(me) {
        Ok(())
    } else {
        // Another daemon claimed it at the same moment, and the engine kept its claim.
        Err(StartError::NamespaceLeased {
            ns,
            dir: held.dir,
            host: held.host,
            since: held.since,
            running: None,
            take_over,
        })
    }
}

/// Looks at the lease every [`CHECK_EVERY`]; once another holds it (a take-over), says why the
/// daemon must stop and returns. An engine that does not answer is looked at again later.
pub async fn watch(engine: Engine, me: Lease) -> String {
    loop {
        tokio::time::sleep(CHECK_EVERY).await;
        match engine.lease().await {
            Ok(Some(held)) if !held.same_holder(&me) => {
                return format!(
                    "namespace {} was taken over by {} on {} (since {}): this daemon no longer \
                     drives its containers",
                    engine.ns(),
                    held.dir,
                    held.host,
                    held.since
                )
            }
            Ok(None) => {
                // Removed from outside (a sweep, an operator): claimed again, as at a start.
                if let Err(e) = engine.claim_lease(&me).await {
                    tracing::warn!("claiming the namespace's lease again: {e}");
                }
            }
            Ok(Some(_)) => {}
            Err(e) => tracing::debug!("looking at the namespace's lease: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn a_data_directory_is_locked_by_one_daemon_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let first = lock_data_dir(dir.path()).unwrap();
        match lock_data_dir(dir.path()) {
            Err(StartError::AlreadyServing { pid, .. }) => {
                assert_eq!(pid, Some(std::process::id()));
            }
            other => panic!("a second lock: {other:?}"),
        }
        assert_eq!(running_on(dir.path()), Some(Some(std::process::id())));
        drop(first);
        assert_eq!(running_on(dir.path()), None);
        lock_data_dir(dir.path()).expect("free again once the first is gone");
        // A lock file that is a link (planted where a lease's labels point) is not followed:
        // taken for a running daemon, never for a free one.
        let planted = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/dev/null", lock_path(planted.path())).unwrap();
        assert_eq!(running_on(planted.path()), Some(None));
        let nothing = tempfile::tempdir().unwrap();
        assert_eq!(running_on(nothing.path()), None);
    }

    #[test]
    fn a_data_directory_keeps_its_id_and_refuses_a_garbled_one() {
        let dir = tempfile::tempdir().unwrap();
        let id = data_dir_id(dir.path()).unwrap();
        assert_eq!(id.len(), 32);
        assert_eq!(data_dir_id(dir.path()).unwrap(), id);
        let other = tempfile::tempdir().unwrap();
        assert_ne!(data_dir_id(other.path()).unwrap(), id);
        std::fs::write(dir.path().join("id"), "not an id\n").unwrap();
        assert!(data_dir_id(dir.path()).is_err());
    }
}
