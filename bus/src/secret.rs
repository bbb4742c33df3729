//! Reading the files that hold NATS secrets (a password, a token, an nkey seed, a credentials
//! file, a TLS client key). Like ssh with a private key, roster refuses a file that its group
//! or others may read or write: a secret anyone on the machine can read protects nothing, and
//! saying so at once is kinder than a bus that anyone can join.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The largest secret file read (a credentials file is a few kilobytes).
const MAX_SECRET: u64 = 64 * 1024;

/// Why a secret file was not used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SecretError {
    /// The file could not be read.
    #[error("cannot read the NATS {what} file {path}: {source}")]
    Unreadable {
        /// What it holds.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The operating system's reason.
        #[source]
        source: std::io::Error,
    },
    /// Its group or others may read or write it.
    #[error(
        "the NATS {what} file {path} is open to its group or others (mode {mode:04o}); a secret \
         must be readable by its owner only: run `chmod 600 {path}`"
    )]
    TooOpen {
        /// What it holds.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// It is empty, or too large to be a secret.
    #[error("the NATS {what} file {path} is {why}")]
    Malformed {
        /// What it holds.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
}

/// The content of the secret file `path` (holding a `what`), its final line break removed;
/// refused when group or others may read or write it, or when it is empty.
pub(crate) fn read(what: &'static str, path: &Path) -> Result<String, SecretError> {
    let unreadable = |source| SecretError::Unreadable {
        what,
        path: path.to_owned(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(unreadable)?;
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(SecretError::TooOpen {
            what,
            path: path.to_owned(),
            mode,
        });
    }
    let malformed = |why: String| SecretError::Malformed {
        what,
        path: path.to_owned(),
        why,
    };
    if !meta.is_file() {
        return Err(malformed("not a regular file".into()));
    }
    if meta.len() > MAX_SECRET {
        return Err(malformed(format!(
            "{} bytes long; a secret file is at most {MAX_SECRET}",
            meta.len()
        )));
    }
    let text = std::fs::read_to_string(path).map_err(unreadable)?;
    let text = text.strip_suffix('\n').unwrap_or(&text);
    let text = text.strip_suffix('\r').unwrap_or(text);
    if text.trim().is_empty() {
        return Err(malformed("empty".into()));
    }
    Ok(text.to_owned())
}

/// Checks that the public file `path` (a CA or a certificate) can be read, for a clear message
/// before async-nats's.
pub(crate) fn readable(what: &'static str, path: &Path) -> Result<(), SecretError> {
    std::fs::File::open(path)
        .map(drop)
        .map_err(|source| SecretError::Unreadable {
            what,
            path: path.to_owned(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
