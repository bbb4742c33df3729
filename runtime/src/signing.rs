//! The data directory's signing key, and the signed heads the runtime makes with it
//! (`roster_core::signed` says what a head is and what it proves).
//!
//! - **The key**: 32 bytes of OS randomness, written as 64 hex digits and a newline to
//!   `DATA/signing.key`, or to the file `[signing] key` of roster.toml names (kept off the data
//!   directory, a copy or a writer of the directory does not get it). Made mode `0600` and never
//!   replaced: by `roster init` and `roster import` wherever it is configured to be, and at the
//!   default place by the first `roster serve` or command that signs. A configured key that
//!   is missing is never made by anything else — it may be on a disk not mounted now. Made
//!   owner-only again at every load (`private::private_file`), or the load is refused.
//! - **Who signs**: the daemon, when [`Cadence::due`] says so (checked each second: every
//!   `every_events` events or `every_secs` after the first unsigned one), and when it stops
//!   cleanly; a command run without a daemon, after it appended; `roster head` and
//!   `roster export`, on demand (the head at the export's end); `roster import`, the imported
//!   end, once the export's own heads are checked. A head is signed only over events that are
//!   durable (read back from the log).
//! - **Where heads go**: beside the log in the store (`roster_store::keys`, `h` keys), in every
//!   export after the event they sign, and out through `roster head` (standard output or a
//!   file) to whatever witness keeps them.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use roster_core::port::{LogRead, SignedHeads};
use roster_core::signed::{from_hex, to_hex, PublicKey, SignedHead, SigningKey};
use zeroize::Zeroizing;

use crate::app::{now, Store};
use crate::config::{Config, SigningConfig};
use crate::error::RuntimeError;

/// The key file's name inside a data directory, when roster.toml names none.
pub const KEY_FILE: &str = "signing.key";

/// Events the daemon leaves unsigned at most, unless `[signing] every_events` says otherwise.
pub const EVERY_EVENTS: u64 = 1000;

/// Seconds the daemon leaves an event unsigned at most, unless `[signing] every_secs` says
/// otherwise.
pub const EVERY_SECS: u64 = 60;

/// Where the key of `data_dir` is, as `config` says, and whether roster.toml named it.
pub fn key_path(data_dir: &Path, config: &SigningConfig) -> (PathBuf, bool) {
    match &config.key {
        Some(p) => (data_dir.join(p), true),
        None => (data_dir.join(KEY_FILE), false),
    }
}

/// When a missing key file is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Make {
    /// Never: a missing key means nothing is signed (a read-only command).
    Never,
    /// At the default place (`DATA/signing.key`) only: a configured key is never replaced by a
    /// new one just because its disk is away.
    AtDefault,
    /// Wherever it is configured to be (`init`, `import`).
    Always,
}

/// A loaded signing key: what signs heads of one data directory's log.
#[derive(Debug)]
pub struct Signer {
    key: SigningKey,
    path: PathBuf,
    made: bool,
}

impl Signer {
    /// The key of `data_dir`, where roster.toml says (made owner-only first), or made there if
    /// it is missing and `make` allows; `None` if it is missing and may not be made.
    pub fn open(data_dir: &Path, make: Make) -> Result<Option<Signer>, RuntimeError> {
        let config = Config::load(data_dir)?;
        let (path, configured) = key_path(data_dir, &config.signing);
        let made = match std::fs::metadata(&path) {
            Ok(_) => false,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let may = match make {
                    Make::Never => false,
                    Make::AtDefault => !configured,
                    Make::Always => true,
                };
                if !may {
                    return Ok(None);
                }
                make_key(&path)?
            }
            Err(source) => {
                return Err(RuntimeError::SigningKey {
                    what: "look at",
                    path,
                    source,
                })
            }
        };
        let key = load_key(&path)?;
        Ok(Some(Signer { key, path, made }))
    }

    /// [`Signer::open`], where a key that is missing and may not be made is an error naming
    /// where it should be.
    pub fn require(data_dir: &Path, make: Make) -> Result<Signer, RuntimeError> {
        match Signer::open(data_dir, make)? {
            Some(s) => Ok(s),
            None => {
                let config = Config::load(data_dir)?;
                let (path, _) = key_path(data_dir, &config.signing);
                Err(RuntimeError::NoSigningKey { path })
            }
        }
    }

    /// The public half: what a witness pins.
    pub fn public_key(&self) -> PublicKey {
        self.key.public_key()
    }

    /// The key file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether this opening made the key file.
    pub fn made(&self) -> bool {
        self.made
    }

    /// Signs the chain's hash at `seq` (an event of `log`, read back and so durable) now, and
    /// keeps the head beside the log.
    pub fn sign_at<L: LogRead + SignedHeads + ?Sized>(
        &self,
        log: &L,
        seq: u64,
    ) -> Result<SignedHead, RuntimeError> {
        let Some(event) = log.read(seq, 1)?.pop().filter(|e| e.seq == seq) else {
            return Err(RuntimeError::NothingToSign { len: log.len() });
        };
        let head = self.key.sign(seq, event.hash(), now());
        log.keep_signed_head(head)?;
        Ok(head)
    }

    /// The chain's hash at `seq` signed by this key: the head kept already if there is one,
    /// else a new one (so asking twice signs once).
    pub fn ensure_signed<L: LogRead + SignedHeads + ?Sized>(
        &self,
        log: &L,
        seq: u64,
    ) -> Result<SignedHead, RuntimeError> {
        match log.signed_head(seq, &self.public_key())? {
            Some(h) => Ok(h),
            None => self.sign_at(log, seq),
        }
    }

    /// The log's head, signed (see [`Signer::ensure_signed`]); `None` for an empty log.
    pub fn sign_head<L: LogRead + SignedHeads + ?Sized>(
        &self,
        log: &L,
    ) -> Result<Option<SignedHead>, RuntimeError> {
        match log.len().checked_sub(1) {
            None => Ok(None),
            Some(last) => self.ensure_signed(log, last).map(Some),
        }
    }
}

/// Makes a new key file at `path` (mode `0600`, written whole then moved into place, never
/// over another); `false` if another process made one first (that one is used).
fn make_key(path: &Path) -> Result<bool, RuntimeError> {
    let failed = |what: &'static str| {
        let path = path.to_owned();
        move |source| RuntimeError::SigningKey { what, path, source }
    };
    let mut seed = Zeroizing::new([0u8; 32]);
    getrandom::fill(&mut seed[..])
        .map_err(|e| failed("draw OS randomness for")(std::io::Error::other(e.to_string())))?;
    let text = Zeroizing::new(format!("{}\n", to_hex(&seed[..])));
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    // A temporary file is created 0600, readable by its owner only from its first byte.
    let mut tmp = tempfile::Builder::new()
        .prefix(".signing-")
        .tempfile_in(dir)
        .map_err(failed("make"))?;
    tmp.write_all(text.as_bytes()).map_err(failed("write"))?;
    tmp.as_file().sync_all().map_err(failed("write"))?;
    match tmp.persist_noclobber(path) {
        Ok(_) => {}
        Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => return Ok(false),
        Err(e) => return Err(failed("make")(e.error)),
    }
    // The new name is durable once its directory is.
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(failed("make"))?;
    Ok(true)
}

/// Reads the key file at `path`, after making it owner-only.
fn load_key(path: &Path) -> Result<SigningKey, RuntimeError> {
    crate::private::private_file(path)?;
    let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|source| {
        RuntimeError::SigningKey {
            what: "read",
            path: path.to_owned(),
            source,
        }
    })?);
    let seed =
        Zeroizing::new(
            from_hex::<32>(text.trim()).ok_or_else(|| RuntimeError::NotAKey {
                path: path.to_owned(),
            })?,
        );
    Ok(SigningKey::from_seed(&seed))
}

/// How often the daemon signs: a pure rule of how much is unsigned and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cadence {
    /// Sign once this many events are unsigned.
    pub events: u64,
    /// Sign once the oldest unsigned event has waited this long.
    pub after: Duration,
}

impl Cadence {
    /// `[signing]` of roster.toml, with the defaults.
    pub fn of(config: &SigningConfig) -> Cadence {
        Cadence {
            events: config.every_events.unwrap_or(EVERY_EVENTS),
            after: Duration::from_secs(config.every_secs.unwrap_or(EVERY_SECS)),
        }
    }

    /// Whether to sign now, with `unsigned` events after the last head, the first of them
    /// seen unsigned `waited` ago.
    pub fn due(&self, unsigned: u64, waited: Duration) -> bool {
        unsigned > 0 && (unsigned >= self.events || waited >= self.after)
    }
}

/// How often the daemon looks at the log's end.
const LOOK_EVERY: Duration = Duration::from_secs(1);

/// The daemon's signer: signs `log`'s head whenever `cadence` says (on a blocking thread;
/// nothing of the daemon's is held), until it is aborted. A failure is logged and tried
/// again a whole period later, not every second (a full disk refuses it as it refuses
/// appends).
pub(crate) async fn run(signer: Arc<Signer>, log: Arc<dyn Store>, cadence: Cadence) {
    let mut tick = tokio::time::interval(LOOK_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Everything up to here is signed (the length it was signed at), and since when the
    // first event after it has waited.
    let mut signed_len = match log.last_signed_head() {
        Ok(Some(h)) if h.public_key == signer.public_key() => h.seq + 1,
        _ => 0,
    };
    let mut waiting_since: Option<Instant> = None;
    loop {
        tick.tick().await;
        let len = log.len();
        let unsigned = len.saturating_sub(signed_len);
        if unsigned == 0 {
            waiting_since = None;
            continue;
        }
        let since = *waiting_since.get_or_insert_with(Instant::now);
        if !cadence.due(unsigned, since.elapsed()) {
            continue;
        }
        let (s, l) = (Arc::clone(&signer), Arc::clone(&log));
        match tokio::task::spawn_blocking(move || s.sign_at(&*l, len - 1)).await {
            Ok(Ok(head)) => {
                signed_len = head.seq + 1;
                waiting_since = None;
            }
            Ok(Err(e)) => {
                tracing::warn!("cannot sign the log's head (tried again later): {e}");
                waiting_since = Some(Instant::now());
            }
            Err(e) => {
                tracing::error!("the signer's task failed: {e}");
                waiting_since = Some(Instant::now());
            }
        }
    }
}

/// Signs the log's head as the daemon stops cleanly, so that a stopped daemon leaves nothing
/// unsigned.
pub(crate) async fn at_stop(signer: Arc<Signer>, log: Arc<dyn Store>) {
    match tokio::task::spawn_blocking(move || signer.sign_head(&*log)).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => tracing::warn!("cannot sign the log's head at stop: {e}"),
        Err(e) => tracing::error!("the signer's task failed at stop: {e}"),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use roster_store::MemLog;

    #[test]
    fn the_cadence_signs_after_enough_events_or_long_enough() {
        let c = Cadence {
            events: 100,
            after: Duration::from_secs(60),
        };
        assert!(!c.due(0, Duration::from_secs(3600)), "nothing to sign");
        assert!(!c.due(99, Duration::from_secs(59)));
        assert!(c.due(100, Duration::ZERO));
        assert!(c.due(1, Duration::from_secs(60)));
        let d = Cadence::of(&SigningConfig::default());
        assert_eq!((d.events, d.after.as_secs()), (EVERY_EVENTS, EVERY_SECS));
    }

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn a_key_is_made_once_owner_only_and_loaded_back() {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path();
        assert!(Signer::open(data, Make::Never).unwrap().is_none());
        let made = Signer::open(data, Make::AtDefault).unwrap().unwrap();
        assert!(made.made());
        let file = data.join(KEY_FILE);
        assert_eq!(made.path(), file);
        assert_eq!(mode(&file), 0o600);
        let text = std::fs::read_to_string(&file).unwrap();
        assert_eq!(text.trim().len(), 64);
        // Loaded back, not made again; a copy anyone may read is made owner-only first.
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let again = Signer::open(data, Make::Always).unwrap().unwrap();
        assert!(!again.made());
        assert_eq!(again.public_key(), made.public_key());
        assert_eq!(mode(&file), 0o600);
        // Another data directory, another key.
        let other = tempfile::tempdir().unwrap();
        let theirs = Signer::open(other.path(), Make::AtDefault)
            .unwrap()
            .unwrap();
        assert_ne!(theirs.public_key(), made.public_key());
        // A file that is not a key is refused, not replaced.
        std::fs::write(&file, "not a key\n").unwrap();
        assert!(matches!(
            Signer::open(data, Make::Always),
            Err(RuntimeError::NotAKey { .. })
        ));
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "not a key\n");
    }

    #[test]
    fn a_configured_key_is_made_only_when_asked() {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        std::fs::create_dir(&data).unwrap();
        let elsewhere = tmp.path().join("keys");
        std::fs::create_dir(&elsewhere).unwrap();
        let file = elsewhere.join("research.key");
        std::fs::write(
            data.join(crate::config::FILE),
            format!("[signing]\nkey = {:?}\n", file.display().to_string()),
        )
        .unwrap();
        // Its disk may be away: nothing but init and import make it.
        assert!(Signer::open(&data, Make::AtDefault).unwrap().is_none());
        assert!(matches!(
            Signer::require(&data, Make::AtDefault),
            Err(RuntimeError::NoSigningKey { path }) if path == file
        ));
        let s = Signer::open(&data, Make::Always).unwrap().unwrap();
        assert_eq!(s.path(), file);
        assert!(file.exists() && !data.join(KEY_FILE).exists());
    }

    #[test]
    fn the_head_is_signed_over_the_log_and_kept() {
        use roster_core::actor::Actor;
        use roster_core::event::Event;
        use roster_core::id::{CountingEntropy, TeamId};
        use roster_core::name::Name;
        use roster_core::port::{AppendRequest, EventLog};
        use roster_core::time::Timestamp;

        let tmp = tempfile::tempdir().unwrap();
        let signer = Signer::open(tmp.path(), Make::AtDefault).unwrap().unwrap();
        let log = MemLog::new();
        assert_eq!(signer.sign_head(&log).unwrap(), None, "an empty log");
        let team = TeamId::mint(Timestamp::EPOCH, &mut CountingEntropy::new(1));
        let append = |n: u64| {
            log.append(AppendRequest {
                team,
                expected_version: n,
                events: vec![Event::TeamCreated {
                    name: Name::parse("research").unwrap(),
                }],
                actor: Actor::Runtime,
                causation: None,
                at: None,
            })
            .unwrap()
        };
        let first = append(0);
        let head = signer.sign_head(&log).unwrap().unwrap();
        head.check_against(1, Some(first[0].hash())).unwrap();
        assert_eq!(head.public_key, signer.public_key());
        assert_eq!(log.signed_heads().unwrap(), vec![head]);
        // Nothing new: the same head, not another signature.
        assert_eq!(signer.sign_head(&log).unwrap(), Some(head));
        let second = append(1);
        let next = signer.sign_head(&log).unwrap().unwrap();
        assert_eq!((next.seq, next.hash), (1, second[0].hash()));
        assert_eq!(log.signed_heads().unwrap().len(), 2);
        assert!(matches!(
            signer.sign_at(&log, 2),
            Err(RuntimeError::NothingToSign { len: 2 })
        ));
    }
}
