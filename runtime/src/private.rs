//! Who may read what of a data directory, and keeping it so.
//!
//! | path | mode | why |
//! |---|---|---|
//! | `DATA` | `0700` when roster creates it | an existing one (it may be `$HOME`) keeps its mode; `init` and `import` note it if others can enter it |
//! | `DATA/log/` and all below | directories `0700`, files without group or other bits (`0600`) | the whole history; made so by `init`, `import` and every opening of the log: each daemon start and each command run without a daemon ([`open_log`]) |
//! | `DATA/signing.key`, or the file `[signing] key` names | `0600`, made so (never replaced) | the key that signs heads of the log: whoever reads it can sign a rewritten history as well as roster. Made owner-only again at every load ([`private_file`]), or the load is refused naming it |
//! | `DATA/admin.sock` | `0600`, bound in a `0700` directory then moved | a connection carries the operator's authority (`daemon::bind_owner_only`) |
//! | `DATA/gateways/` | `0700` at every start | keeps everyone on the host out of the agents' sockets below |
//! | `DATA/gateways/AGENT/`, its `gateway.sock` | `0755`, `0666` | bind-mounted into the agent's container, whose uid is not ours (`gateway::server`) |
//! | `DATA/bin/`, `bin/roster-agent` | `0700`, `0755` | mounted read-only into every container; the engine resolves the host path, not the agent's uid |
//! | `DATA/namespace` | the umask's | the namespace's name: nothing secret |
//! | `DATA/roster.toml` | the operator's | written by the operator; a bus URL with credentials is refused |

use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use roster_store::SledLog;

use crate::error::RuntimeError;

/// The permission bits of group and others: none of them is left on anything of the log.
const OTHERS: u32 = 0o077;

/// Opens the sled log in `dir` (created `0700` if it is not there; its parent, the data
/// directory, must exist) after taking every group and other permission off it and everything
/// below it, and again after sled has opened it; refuses, naming the path, what it cannot
/// make owner-only.
///
/// The directory's own mode is what protects the log from then on: sled creates its later
/// files (snapshots, blobs) with the process's umask, `0644` under the usual `022`, and they
/// are out of everyone else's reach only because no one else can enter a `0700` directory.
/// Their modes are tightened at each opening so that the files at rest never depend on the
/// directory alone.
pub(crate) fn open_log(dir: &Path) -> Result<SledLog, RuntimeError> {
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(source) => {
            return Err(RuntimeError::Unchecked {
                path: dir.to_owned(),
                source,
            })
        }
    }
    restrict(dir)?;
    let log = SledLog::open(dir)?;
    // What sled made just now, with the umask.
    restrict(dir)?;
    Ok(log)
}

/// Takes the group and other bits off the file `path` (the signing key), or refuses naming
/// it: a secret read from a file anyone else may read is no longer a secret, so it is made
/// owner-only before each read. A missing file is `NotFound`, for the caller to handle.
pub(crate) fn private_file(path: &Path) -> Result<(), RuntimeError> {
    let meta = std::fs::metadata(path).map_err(|source| RuntimeError::Unchecked {
        path: path.to_owned(),
        source,
    })?;
    tighten(path, meta.permissions().mode(), path)
}

/// Takes the group and other bits off `root` and everything below it. `root` itself may be a
/// symbolic link (a log moved to another disk); one below it is left alone: sled makes none,
/// and a change of mode would follow it out of the log.
fn restrict(root: &Path) -> Result<(), RuntimeError> {
    let unchecked = |path: &Path| {
        let path = path.to_owned();
        move |source| RuntimeError::Unchecked { path, source }
    };
    let meta = std::fs::metadata(root).map_err(unchecked(root))?;
    let mut dirs = Vec::new();
    tighten(root, meta.permissions().mode(), root)?;
    if meta.is_dir() {
        dirs.push(root.to_owned());
    }
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).map_err(unchecked(&dir))? {
            let entry = entry.map_err(unchecked(&dir))?;
            let path = entry.path();
            // sled removes old snapshots as it goes: what is gone needs no tightening.
            let meta = match entry.metadata() {
                Ok(meta) => meta,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(source) => return Err(RuntimeError::Unchecked { path, source }),
            };
            if meta.file_type().is_symlink() {
                continue;
            }
            tighten(&path, meta.permissions().mode(), root)?;
            if meta.is_dir() {
                dirs.push(path);
            }
        }
    }
    Ok(())
}

/// Takes the group and other bits off `path`, whose mode is `mode`, if it has any.
fn tighten(path: &Path, mode: u32, log: &Path) -> Result<(), RuntimeError> {
    if mode & OTHERS == 0 {
        return Ok(());
    }
    match std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & !OTHERS)) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(RuntimeError::Exposed {
            path: path.to_owned(),
            mode: mode & 0o7777,
            log: PathBuf::from(log),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::symlink_metadata(path)
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    }

    #[test]
    fn everything_below_the_log_loses_its_group_and_other_bits() {
        let tmp = tempfile::tempdir().unwrap();
        let log = tmp.path().join("log");
        std::fs::create_dir_all(log.join("blobs/deeper")).unwrap();
        std::fs::write(log.join("db"), b"x").unwrap();
        std::fs::write(log.join("blobs/deeper/1"), b"x").unwrap();
        let outside = tmp.path().join("outside");
        std::fs::write(&outside, b"x").unwrap();
        std::os::unix::fs::symlink(&outside, log.join("link")).unwrap();
        for (p, m) in [
            (log.clone(), 0o755),
            (log.join("blobs"), 0o775),
            (log.join("blobs/deeper"), 0o777),
            (log.join("db"), 0o644),
            (log.join("blobs/deeper/1"), 0o666),
            (outside.clone(), 0o644),
        ] {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(m)).unwrap();
        }
        restrict(&log).unwrap();
        assert_eq!(mode(&log), 0o700);
        assert_eq!(mode(&log.join("blobs")), 0o700);
        assert_eq!(mode(&log.join("blobs/deeper")), 0o700);
        assert_eq!(mode(&log.join("db")), 0o600);
        assert_eq!(mode(&log.join("blobs/deeper/1")), 0o600);
        assert_eq!(mode(&outside), 0o644, "a link below the log was followed");
    }

    #[test]
    fn a_key_file_loses_its_group_and_other_bits() {
        let tmp = tempfile::tempdir().unwrap();
        let key = tmp.path().join("signing.key");
        std::fs::write(&key, b"x").unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        private_file(&key).unwrap();
        assert_eq!(mode(&key), 0o600);
        assert!(matches!(
            private_file(&tmp.path().join("none")),
            Err(RuntimeError::Unchecked { .. })
        ));
    }
}
