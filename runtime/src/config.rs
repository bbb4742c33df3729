//! `DATA/roster.toml`: defaults an operator sets once for a data directory.
//!
//! ```toml
//! [agent]            # what `roster hire` uses when a flag is not given
//! runtime = "runsc"  # or "runc"
//! cpus = 0.5
//! memory_mib = 512
//! pids = 64
//! tmpfs_mib = 32
//! timeout_secs = 3600
//! disk_mib = 2048    # the home disk quota (64 to 1048576; default 1024)
//!
//! [serve]            # what `roster serve` uses when neither a flag nor its ROSTER_* variable is set
//! namespace = "roster"
//! agent_binary = "/usr/local/lib/roster/roster-agent"
//! busybox = "/bin/busybox"
//! # the bus (`--bus`, `ROSTER_BUS`): "memory", "nats://HOST:PORT" or "tls://HOST:PORT", with
//! # credentials and TLS files as options after `?` — paths of owner-only files, never a secret
//! # itself (docs/nats.md):
//! bus = "tls://nats.internal:4222?user=roster&password_file=/etc/roster/nats.pass&ca_file=/etc/roster/nats-ca.pem&inbox=_INBOX_roster"
//! homes = "/srv/roster-homes" # agents' home disks (default DATA/homes), each allocated whole
//!
//! [tools."email.send"] # the tool provider of an action, on this machine (read by `roster serve`,
//!                      # and by `roster act` when no daemon runs)
//! exec = ["/usr/local/bin/send-mail", "--from", "roster@example.com"]
//! timeout_secs = 30    # default 30, at most 600; then the program is killed
//!
//! [signing]            # the key that signs heads of the log (see `crate::signing`)
//! key = "/etc/roster/research.key" # default DATA/signing.key; a relative path is from DATA
//! every_events = 1000  # the daemon signs once this many events are unsigned (1 to 1000000)
//! every_secs = 60      # or once the oldest unsigned one is this old (1 to 86400)
//! ```
//!
//! Precedence: a flag, then its `ROSTER_*` variable where it has one, then this file, then the
//! built-in default. The values a hire ends up with are recorded in its `AgentHired` event (the
//! home disk in the `AgentDiskLimited` after it), so changing this file never changes an agent
//! already hired. An unknown key or a value out of
//! range is an error naming the file, and nothing runs.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use roster_core::capability::Action;
use roster_core::event::RuntimeKind;
use roster_core::gateway::MAX_TOOL_SECS;
use roster_core::limits::{CpuMillis, DiskMib, MemoryMib, Pids, TimeoutSecs, TmpfsMib};
use roster_core::name::Name;
use serde::Deserialize;

use crate::error::ConfigError;

/// The file's name inside a data directory.
pub const FILE: &str = "roster.toml";

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Defaults of `roster hire`.
    #[serde(default)]
    pub agent: AgentDefaults,
    /// Defaults of `roster serve`.
    #[serde(default)]
    pub serve: ServeDefaults,
    /// Tool providers run on this machine, by action (`[tools."email.send"]`).
    #[serde(default)]
    pub tools: HashMap<Action, ExecTool>,
    /// The signing key and how often the daemon signs.
    #[serde(default)]
    pub signing: SigningConfig,
}

/// `[signing]`: where the key that signs heads of the log is, and how often the daemon signs.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SigningConfig {
    /// The key file [default: DATA/signing.key]; relative to the data directory. Kept off the
    /// data directory, a copy of the directory (or a writer of it) does not get the key.
    pub key: Option<PathBuf>,
    /// The daemon signs once this many events are unsigned [default: 1000].
    pub every_events: Option<u64>,
    /// ... or once the oldest unsigned event is this many seconds old [default: 60].
    pub every_secs: Option<u64>,
}

/// The most events `[signing] every_events` may leave unsigned.
pub const MAX_SIGN_EVENTS: u64 = 1_000_000;
/// The longest `[signing] every_secs` may leave an event unsigned (a day).
pub const MAX_SIGN_SECS: u64 = 86_400;

impl SigningConfig {
    fn check(&self) -> Result<(), String> {
        match (self.every_events, self.every_secs) {
            (Some(n), _) if !(1..=MAX_SIGN_EVENTS).contains(&n) => Err(format!(
                "[signing]: every_events = {n} is outside 1 to {MAX_SIGN_EVENTS}"
            )),
            (_, Some(s)) if !(1..=MAX_SIGN_SECS).contains(&s) => Err(format!(
                "[signing]: every_secs = {s} is outside 1 to {MAX_SIGN_SECS}"
            )),
            _ => match &self.key {
                Some(p) if p.as_os_str().is_empty() => Err(
                    "[signing]: key is empty; name the key file, or leave key out for \
                     DATA/signing.key"
                        .into(),
                ),
                _ => Ok(()),
            },
        }
    }
}

/// `[tools."ACTION"]`: a program that carries out ACTION once the runtime has authorized and
/// recorded it. It gets the call as one JSON object on stdin and answers one JSON value on
/// stdout.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecTool {
    /// The program and its arguments (no shell: exactly these words).
    pub exec: Vec<String>,
    /// Seconds it may take before it is killed.
    #[serde(default)]
    pub timeout_secs: Option<u32>,
}

/// How long a tool provider may take when its table does not say, in seconds.
pub const DEFAULT_TOOL_SECS: u32 = 30;

impl ExecTool {
    /// How long it may take.
    pub fn timeout(&self) -> std::time::Duration {
        let secs = self.timeout_secs.unwrap_or(DEFAULT_TOOL_SECS);
        std::time::Duration::from_secs(u64::from(secs))
    }

    fn check(&self, action: &Action) -> Result<(), String> {
        match self.exec.first() {
            None => {
                return Err(format!(
                    "[tools.\"{action}\"]: exec is empty; give the program and its arguments, \
                     like exec = [\"/usr/local/bin/provider\"]"
                ))
            }
            Some(p) if p.trim().is_empty() => {
                return Err(format!(
                    "[tools.\"{action}\"]: exec names no program (its first word is blank)"
                ))
            }
            Some(_) => {}
        }
        if let Some(bad) = self.exec.iter().find(|w| w.contains('\0')) {
            return Err(format!(
                "[tools.\"{action}\"]: exec word {bad:?} contains a NUL byte"
            ));
        }
        match self.timeout_secs {
            Some(s) if !(1..=MAX_TOOL_SECS).contains(&s) => Err(format!(
                "[tools.\"{action}\"]: timeout_secs = {s} is outside 1 to {MAX_TOOL_SECS}"
            )),
            _ => Ok(()),
        }
    }
}

/// `[agent]`: each limit parsed into its validated type, so a value out of range is refused
/// when the file is read, with the same bounds as `roster hire`'s flags.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentDefaults {
    /// The container runtime.
    pub runtime: Option<RuntimeKind>,
    /// CPU quota, written in cores.
    #[serde(default, deserialize_with = "cores")]
    pub cpus: Option<CpuMillis>,
    /// Memory (and memory+swap) in MiB.
    pub memory_mib: Option<MemoryMib>,
    /// Most processes at once.
    pub pids: Option<Pids>,
    /// Size of `/tmp` in MiB.
    pub tmpfs_mib: Option<TmpfsMib>,
    /// Seconds a run may last.
    pub timeout_secs: Option<TimeoutSecs>,
    /// The home disk quota in MiB.
    pub disk_mib: Option<DiskMib>,
}

/// `cpus = 0.5`: cores as a number, held as thousandths.
fn cores<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<CpuMillis>, D::Error> {
    match Option::<f64>::deserialize(d)? {
        None => Ok(None),
        Some(c) => CpuMillis::from_cores(c)
            .map(Some)
            .map_err(serde::de::Error::custom),
    }
}

/// `[serve]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServeDefaults {
    /// The namespace of containers and volumes.
    pub namespace: Option<Name>,
    /// The static `roster-agent`.
    pub agent_binary: Option<PathBuf>,
    /// The static busybox for the base image.
    pub busybox: Option<PathBuf>,
    /// The bus: `memory`, `nats://HOST:PORT` or `tls://HOST:PORT`, with options (docs/nats.md).
    pub bus: Option<roster_bus::BusUrl>,
    /// Where agents' home disks are kept (default `DATA/homes`), an absolute path: another
    /// filesystem than the log's keeps them apart.
    pub homes: Option<PathBuf>,
}

impl Config {
    /// Reads `DATA/roster.toml`; a missing file is all defaults.
    pub fn load(data_dir: &Path) -> Result<Config, ConfigError> {
        let path = data_dir.join(FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Config::default()),
            Err(source) => return Err(ConfigError::Read { path, source }),
        };
        Self::parse(&text).map_err(|why| ConfigError::Invalid { path, why })
    }

    /// Parses and checks the file's text.
    pub fn parse(text: &str) -> Result<Config, String> {
        let config: Config = toml::from_str(text).map_err(|e| e.to_string().trim().to_owned())?;
        for (action, tool) in &config.tools {
            tool.check(action)?;
        }
        config.signing.check()?;
        if let Some(homes) = config.serve.homes.as_ref().filter(|h| !h.is_absolute()) {
            return Err(format!(
                "[serve] homes = {:?} is not an absolute path",
                homes.display().to_string()
            ));
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_file_parses() {
        let c = Config::parse(
            "[agent]\nruntime = \"runsc\"\ncpus = 0.5\nmemory_mib = 512\npids = 64\n\
             tmpfs_mib = 32\ntimeout_secs = 60\ndisk_mib = 2048\n[serve]\nnamespace = \"prod\"\n\
             agent_binary = \"/opt/roster-agent\"\n",
        )
        .unwrap();
        assert_eq!(c.agent.runtime, Some(RuntimeKind::Runsc));
        assert_eq!(c.agent.cpus.map(CpuMillis::get), Some(500));
        assert_eq!(c.agent.memory_mib.map(u32::from), Some(512));
        assert_eq!(c.agent.disk_mib.map(u32::from), Some(2048));
        assert_eq!(c.serve.namespace.unwrap().as_str(), "prod");
        assert!(Config::parse("").unwrap().agent.runtime.is_none());
        let c = Config::parse(
            "[serve]\nbus = \"tls://nats.internal?user=roster&password_file=/etc/roster/nats.pass\"\n",
        )
        .unwrap();
        assert_eq!(
            c.serve.bus.unwrap().to_string(),
            "tls://nats.internal:4222?user=roster&password_file=/etc/roster/nats.pass"
        );
        let c = Config::parse(
            "[signing]\nkey = \"/etc/roster/k\"\nevery_events = 10\nevery_secs = 5\n",
        )
        .unwrap();
        assert_eq!(c.signing.key.unwrap(), PathBuf::from("/etc/roster/k"));
        assert_eq!(
            (c.signing.every_events, c.signing.every_secs),
            (Some(10), Some(5))
        );
    }

    #[test]
    fn tools_are_checked_at_load() {
        let c = Config::parse(
            "[tools.\"email.send\"]\nexec = [\"/bin/cat\", \"-u\"]\ntimeout_secs = 5\n\
             [tools.\"spend.usd\"]\nexec = [\"/bin/true\"]\n",
        )
        .unwrap();
        let send = &c.tools[&Action::parse("email.send").unwrap()];
        assert_eq!(send.exec, ["/bin/cat", "-u"]);
        assert_eq!(send.timeout().as_secs(), 5);
        let spend = &c.tools[&Action::parse("spend.usd").unwrap()];
        assert_eq!(spend.timeout().as_secs(), 30);
        for (text, says) in [
            ("[tools.\"email.send\"]\nexec = []\n", "exec is empty"),
            (
                "[tools.\"email.send\"]\nexec = [\" \"]\n",
                "names no program",
            ),
            ("[tools.\"email.send\"]\n", "exec"),
            ("[tools.\"email.*\"]\nexec = [\"/bin/true\"]\n", "email.*"),
            (
                "[tools.\"Email send\"]\nexec = [\"/bin/true\"]\n",
                "Email send",
            ),
            (
                "[tools.\"email.send\"]\nexec = [\"/bin/true\"]\ntimeout_secs = 0\n",
                "timeout_secs = 0 is outside",
            ),
            (
                "[tools.\"email.send\"]\nexec = [\"/bin/true\"]\ntimeout_secs = 601\n",
                "outside 1 to 600",
            ),
            (
                "[tools.\"email.send\"]\nexec = [\"/bin/true\"]\nshell = true\n",
                "shell",
            ),
        ] {
            match Config::parse(text) {
                Ok(c) => panic!("{text:?} was accepted: {c:?}"),
                Err(e) => assert!(e.contains(says), "{text:?}: `{e}` does not say `{says}`"),
            }
        }
    }

    #[test]
    fn bad_files_are_refused_with_the_reason() {
        for (text, says) in [
            ("[agent]\nmemroy_mib = 5\n", "memroy_mib"),
            ("[serve]\nhomes = \"homes\"\n", "is not an absolute path"),
            ("[agent]\nmemory_mib = 4\n", "4 is outside 16 to 1048576"),
            ("[agent]\nmemory_mib = 4\n", "line 2"),
            ("[agent]\npids = 7\n", "7 is outside 8 to 1000000"),
            ("[agent]\ntmpfs_mib = 0\n", "0 is outside 1 to 1048576"),
            ("[agent]\ndisk_mib = 63\n", "63 is outside 64 to 1048576"),
            ("[agent]\ndisk_mib = 1048577\n", "outside 64 to 1048576"),
            ("[agent]\ndisk_mib = \"2G\"\n", "disk_mib"),
            ("[agent]\ntimeout_secs = 0\n", "0 is outside 1 to"),
            ("[agent]\ncpus = 0\n", "0 cores is outside"),
            ("[agent]\ncpus = nan\n", "outside"),
            ("[agent]\nruntime = \"kata\"\n", "kata"),
            ("[serve]\nnamespace = \"Bad.Name\"\n", "Bad.Name"),
            (
                "[signing]\nevery_events = 0\n",
                "every_events = 0 is outside",
            ),
            ("[signing]\nevery_secs = 86401\n", "outside 1 to 86400"),
            ("[signing]\nkey = \"\"\n", "key is empty"),
            ("[signing]\npublic_key = \"ab\"\n", "public_key"),
            (
                "[serve]\nbus = \"nats://h:4222?user=roster&password=hunter2\"\n",
                "would put a secret in the URL",
            ),
            (
                "[serve]\nbus = \"nats://roster:hunter2@h:4222\"\n",
                "credentials are never written in the URL",
            ),
            (
                "[serve]\nbus = \"nats://h?ca_file=/etc/roster/ca.pem\"\n",
                "need a `tls://` URL",
            ),
            ("[surprise]\n", "surprise"),
            ("not toml", ""),
        ] {
            match Config::parse(text) {
                Ok(c) => panic!("{text:?} was accepted: {c:?}"),
                Err(e) => assert!(e.contains(says), "{text:?}: `{e}` does not say `{says}`"),
            }
        }
    }
}
