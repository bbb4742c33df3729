//! Reading the files that hold NATS secrets (a password, a token, an nkey seed, a credentials
//! file, a TLS client key), and checking the public ones (the CA, the client certificate) that
//! decide whom roster trusts. Like ssh with a private key, roster refuses a secret file that its
//! group or others may read or write, or that belongs to another user than the one roster runs
//! as (root excepted): a secret anyone on the machine can read protects nothing, and one that
//! someone else owns is theirs to swap. A CA or certificate file that group or others may write,
//! or that another user owns, is refused likewise: whoever may write it chooses which server
//! roster believes.
//!
//! Each file is opened once and everything is checked on that open handle (`fstat`), so it
//! cannot be swapped between the check and the read; a secret file must be the file itself,
//! not a symbolic link to one (`O_NOFOLLOW`), and is read only up to [`MAX_SECRET`] bytes.
//! async-nats opens the CA, certificate and key files again by their paths when it connects.

use std::io::Read as _;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use rustix::fs::{FileType, Mode, OFlags};

/// The largest secret file read (a credentials file is a few kilobytes).
pub const MAX_SECRET: u64 = 64 * 1024;

/// Why a secret file was not used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SecretError {
    /// The file could not be opened or read.
    #[error("cannot read the NATS {what} file {path}: {source}")]
    Unreadable {
        /// What it holds (`password`, `CA`, …), for the message.
        what: &'static str,
        /// Its path, as the bus URL names it.
        path: PathBuf,
        /// The operating system's reason.
        #[source]
        source: std::io::Error,
    },
    /// A secret that its group or others may read or write.
    #[error(
        "the NATS {what} file {path} is open to its group or others (mode {mode:04o}); a secret \
         must be readable by its owner only: run `chmod 600 {path}`"
    )]
    TooOpen {
        /// What it holds (`password`, `CA`, …), for the message.
        what: &'static str,
        /// Its path, as the bus URL names it.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// A CA or certificate that its group or others may write.
    #[error(
        "the NATS {what} file {path} may be written by its group or others (mode {mode:04o}); \
         whoever may write it chooses whom roster trusts: run `chmod go-w {path}`"
    )]
    Writable {
        /// What it holds (`password`, `CA`, …), for the message.
        what: &'static str,
        /// Its path, as the bus URL names it.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The file belongs to another user than the one roster runs as, and not to root.
    #[error(
        "the NATS {what} file {path} belongs to uid {owner}, not to the user roster runs as \
         (uid {euid}) or root: run `chown {euid} {path}`"
    )]
    NotOwn {
        /// What it holds (`password`, `CA`, …), for the message.
        what: &'static str,
        /// Its path, as the bus URL names it.
        path: PathBuf,
        /// Its owner.
        owner: u32,
        /// The user roster runs as.
        euid: u32,
    },
    /// It is a symbolic link, not a regular file, empty, or too large to be a secret.
    #[error("the NATS {what} file {path} is {why}")]
    Malformed {
        /// What it holds (`password`, `CA`, …), for the message.
        what: &'static str,
        /// Its path, as the bus URL names it.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
}

/// Who may write or read a file, as checked.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Rule {
    /// A secret: owner-only, no symbolic link.
    Secret,
    /// A public file that decides trust: not writable by group or others.
    Public,
}

/// Opens `path` (holding a `what`) once and checks the handle under `rule`: a regular file,
/// owned by the effective user or root, with the permission bits the rule allows.
fn open_checked(what: &'static str, path: &Path, rule: Rule) -> Result<std::fs::File, SecretError> {
    let malformed = |why: String| SecretError::Malformed {
        what,
        path: path.to_owned(),
        why,
    };
    let unreadable = |source: std::io::Error| SecretError::Unreadable {
        what,
        path: path.to_owned(),
        source,
    };
    // Non-blocking, so that a FIFO put in its place cannot hang the open.
    let mut flags = OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY;
    if rule == Rule::Secret {
        flags |= OFlags::NOFOLLOW;
    }
    let fd: OwnedFd = match rustix::fs::open(path, flags, Mode::empty()) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::LOOP) if rule == Rule::Secret => {
            return Err(malformed(
                "a symbolic link: name the file itself (a link can be pointed elsewhere)".into(),
            ))
        }
        Err(e) => return Err(unreadable(e.into())),
    };
    let stat = rustix::fs::fstat(&fd).map_err(|e| unreadable(e.into()))?;
    if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
        return Err(malformed("not a regular file".into()));
    }
    let mode = stat.st_mode & 0o7777;
    let euid = rustix::process::geteuid().as_raw();
    if stat.st_uid != euid && stat.st_uid != 0 {
        return Err(SecretError::NotOwn {
            what,
            path: path.to_owned(),
            owner: stat.st_uid,
            euid,
        });
    }
    match rule {
        Rule::Secret if mode & 0o077 != 0 => Err(SecretError::TooOpen {
            what,
            path: path.to_owned(),
            mode,
        }),
        Rule::Public if mode & 0o022 != 0 => Err(SecretError::Writable {
            what,
            path: path.to_owned(),
            mode,
        }),
        _ => Ok(std::fs::File::from(fd)),
    }
}

/// The content of the secret file `path` (holding a `what`), its final line break removed:
/// refused when it is a symbolic link, not a regular file, not owned by the user roster runs
/// as or root, open to group or others, empty, or over [`MAX_SECRET`] bytes.
pub(crate) fn read(what: &'static str, path: &Path) -> Result<String, SecretError> {
    let file = open_checked(what, path, Rule::Secret)?;
    let malformed = |why: String| SecretError::Malformed {
        what,
        path: path.to_owned(),
        why,
    };
    let mut bytes = Vec::new();
    file.take(MAX_SECRET + 1)
        .read_to_end(&mut bytes)
        .map_err(|source| SecretError::Unreadable {
            what,
            path: path.to_owned(),
            source,
        })?;
    if bytes.len() as u64 > MAX_SECRET {
        return Err(malformed(format!(
            "over {MAX_SECRET} bytes long: too long for a secret"
        )));
    }
    let text = String::from_utf8(bytes).map_err(|_| malformed("not UTF-8 text".into()))?;
    let text = text.strip_suffix('\n').unwrap_or(&text);
    let text = text.strip_suffix('\r').unwrap_or(text);
    if text.trim().is_empty() {
        return Err(malformed("empty".into()));
    }
    Ok(text.to_owned())
}

/// Checks the public file `path` (a CA or a certificate): it can be read, it is a regular file
/// (a symbolic link to one is followed: system CA bundles are links), owned by the user roster
/// runs as or root, and group and others may not write it.
pub(crate) fn trusted(what: &'static str, path: &Path) -> Result<(), SecretError> {
    open_checked(what, path, Rule::Public).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn only_owner_only_files_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("pass");
        std::fs::write(&f, "s3cret\n").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(read("password", &f).unwrap(), "s3cret");
        for mode in [0o644, 0o640, 0o604, 0o620] {
            std::fs::set_permissions(&f, std::fs::Permissions::from_mode(mode)).unwrap();
            let e = read("password", &f).unwrap_err().to_string();
            assert!(
                e.contains("chmod 600") && e.contains(&format!("{mode:04o}")),
                "{e}"
            );
        }
        std::fs::write(&f, "\n").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o400)).unwrap();
        assert!(read("password", &f)
            .unwrap_err()
            .to_string()
            .contains("empty"));
        let e = read("token", &dir.path().join("none")).unwrap_err();
        assert!(
            e.to_string().contains("cannot read the NATS token file"),
            "{e}"
        );
    }

    /// A symbolic link to a good secret file is refused: the link is what an attacker who may
    /// write the directory swaps.
    #[test]
    fn a_symbolic_link_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("pass");
        std::fs::write(&f, "s3cret\n").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&f, &link).unwrap();
        let e = read("password", &link).unwrap_err().to_string();
        assert!(e.contains("a symbolic link"), "{e}");
        assert_eq!(read("password", &f).unwrap(), "s3cret");
    }

    /// A secret file, a CA or a certificate that belongs to another user (not root) is
    /// refused. Needs root, to give the file away (the tests run as root).
    #[test]
    fn a_file_of_another_user_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("pass");
        std::fs::write(&f, "s3cret\n").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::os::unix::fs::chown(&f, Some(1000), None)
            .unwrap_or_else(|e| panic!("this test runs as root, to chown a file: {e}"));
        let e = read("password", &f).unwrap_err().to_string();
        assert!(e.contains("belongs to uid 1000"), "{e}");
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = trusted("CA", &f).unwrap_err().to_string();
        assert!(e.contains("belongs to uid 1000"), "{e}");
    }

    /// A CA that group or others may write is refused; one they may only read is fine, and so
    /// is a symbolic link to it (system CA bundles are links).
    #[test]
    fn a_writable_ca_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, "-----BEGIN CERTIFICATE-----\n").unwrap();
        std::fs::set_permissions(&ca, std::fs::Permissions::from_mode(0o644)).unwrap();
        trusted("CA", &ca).unwrap();
        let link = dir.path().join("link.pem");
        std::os::unix::fs::symlink(&ca, &link).unwrap();
        trusted("CA", &link).unwrap();
        for mode in [0o664, 0o646] {
            std::fs::set_permissions(&ca, std::fs::Permissions::from_mode(mode)).unwrap();
            let e = trusted("CA", &ca).unwrap_err().to_string();
            assert!(
                e.contains("may be written by its group or others") && e.contains("chmod go-w"),
                "{e}"
            );
        }
    }

    /// A secret file is read up to its bound, never further.
    #[test]
    fn a_secret_file_over_the_bound_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("creds");
        std::fs::write(&f, vec![b'a'; MAX_SECRET as usize + 1]).unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
        let e = read("credentials", &f).unwrap_err().to_string();
        assert!(e.contains("too long"), "{e}");
    }
}
