//! The runtime's errors, one enum per operation a caller branches on: the ledger's
//! ([`RuntimeError`]), `roster.toml`'s ([`ConfigError`]), the supervisor's ([`SupervisorError`]),
//! what an operator asks of containers ([`ControlError`]) and starting the daemon
//! ([`StartError`]). Each variant says what failed in words an operator can act on; the CLI
//! maps them to exit codes.

use std::path::PathBuf;

use roster_core::command::Rejected;
use roster_core::id::AgentId;
use roster_core::ledger::{ExecuteError, OpenError};
use roster_core::name::Name;
use roster_core::port::LogError;
use roster_core::refs::RefError;
use roster_core::world::FoldError;
use roster_sandbox::SandboxError;
use roster_store::ImportError;

/// What reading or changing a data directory's ledger failed with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RuntimeError {
    /// The rules refused: access denied, not covered, name taken, unknown id.
    #[error("refused: {0}")]
    Refused(#[from] Rejected),
    /// The log failed or does not verify.
    #[error(transparent)]
    Log(#[from] LogError),
    /// The log's events contradict each other.
    #[error("the log does not fold: {0}")]
    Fold(#[from] FoldError),
    /// A failure of the ledger's decision path none of the above names.
    #[error(transparent)]
    Ledger(ExecuteError),
    /// A failure opening the ledger none of the above names.
    #[error(transparent)]
    Open(OpenError),
    /// An import file that does not verify, or a target that is not empty.
    #[error(transparent)]
    Import(#[from] ImportError),
    /// There is no data directory yet.
    #[error("no roster data directory at {0}: run `roster init` first (or pass --data-dir)")]
    NotInitialized(PathBuf),
    /// A file or directory of the log (or the signing key) is open to other users and cannot
    /// be made owner-only (another user owns it, or its filesystem refuses): it was not opened.
    #[error(
        "{path} is mode {mode:o}, readable by other users, and cannot be made owner-only \
         ({source}): run `chmod -R go-rwx {log}` as its owner"
    )]
    Exposed {
        /// The file or directory.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
        /// The log's directory, for the command to run.
        log: PathBuf,
        /// Why its mode could not be changed.
        #[source]
        source: std::io::Error,
    },
    /// The log's directory cannot be made or looked through to check who may read it: the
    /// log was not opened.
    #[error("cannot check who may read {path}: {source}")]
    Unchecked {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// `roster.toml` is unreadable or wrong.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The signing key file cannot be read or made.
    #[error("cannot {what} the signing key {}: {source}", .path.display())]
    SigningKey {
        /// What was being done.
        what: &'static str,
        /// The key file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The signing key file does not hold a key.
    #[error(
        "{} is not a roster signing key (64 hex digits): restore it from its backup, or point \
         [signing] key of roster.toml at the right file",
        .path.display()
    )]
    NotAKey {
        /// The key file.
        path: PathBuf,
    },
    /// The key file `[signing] key` names is not there, and only `init` and `import` make one
    /// at a configured place (its disk may just be away).
    #[error(
        "the signing key {} that roster.toml names does not exist: make it available, or run \
         `roster init` to make a new key there",
        .path.display()
    )]
    NoSigningKey {
        /// Where it should be.
        path: PathBuf,
    },
    /// A signed head kept with the log does not verify.
    #[error(transparent)]
    BadHead(#[from] roster_core::signed::HeadError),
    /// A head was asked of a position the log does not hold.
    #[error("nothing to sign: {}", held(*.len))]
    NothingToSign {
        /// How many events the log holds.
        len: u64,
    },
    /// A thread panicked while it held the daemon's world: what it left cannot be trusted.
    #[error("the daemon's state was left half-changed by a failure: restart `roster serve`")]
    HalfChanged,
    /// The daemon is stopping.
    #[error("`roster serve` is shutting down")]
    ShuttingDown,
}

impl From<ExecuteError> for RuntimeError {
    fn from(e: ExecuteError) -> Self {
        match e {
            ExecuteError::Refused(r) => RuntimeError::Refused(r),
            ExecuteError::Log(e) => RuntimeError::Log(e),
            ExecuteError::Fold(e) => RuntimeError::Fold(e),
            other => RuntimeError::Ledger(other),
        }
    }
}

impl From<OpenError> for RuntimeError {
    fn from(e: OpenError) -> Self {
        match e {
            OpenError::Log(e) => RuntimeError::Log(e),
            OpenError::Fold(e) => RuntimeError::Fold(e),
            other => RuntimeError::Open(other),
        }
    }
}

/// `DATA/roster.toml` could not be used; nothing was started or changed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file exists but cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid: bad TOML, an unknown key, a value out of range.
    #[error("{path}: {why}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong, with the key.
        why: String,
    },
}

/// What the supervisor failed to do to an agent's container.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SupervisorError {
    /// Reading or recording in the ledger failed.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// The engine refused or failed.
    #[error(transparent)]
    Engine(#[from] SandboxError),
    /// No container can be planned from the agent's spec here.
    #[error(transparent)]
    Plan(#[from] roster_sandbox::plan::PlanError),
    /// The agent's gateway socket could not be opened.
    #[error("cannot open the gateway of {agent}: {source}")]
    Gateway {
        /// The agent.
        agent: AgentId,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The agent is not in the log.
    #[error("{0} is not in the log")]
    NotInLog(AgentId),
    /// A stop was asked of an agent that is not running and not wanted running.
    #[error("{0} is not running")]
    NotRunning(AgentId),
    /// The engine went away (or is back and not reconciled yet): nothing is started meanwhile.
    #[error(
        "the container engine went away; roster starts agents again once it is back and reconciled"
    )]
    EngineLost,
    /// A task of the supervisor died.
    #[error("a supervisor task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// What an operator's request about a container (stop, start, logs, exec, purge, a hire's
/// admission) failed with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ControlError {
    /// No agent has this id.
    #[error("no agent {0}")]
    Unknown(AgentId),
    /// The agent is retired: its container is gone.
    #[error("{0} is retired")]
    Retired(AgentId),
    /// Purging deletes a home, so only a retired agent is purged.
    #[error("{0} is not retired: retire it first (purging deletes its home)")]
    NotRetired(AgentId),
    /// `roster start` of an agent whose container runs.
    #[error("{0} is running already")]
    AlreadyRunning(AgentId),
    /// The spec asks for what no container could be made with here (a runtime the engine
    /// lacks or runs without limits, an image missing or widening the sandbox).
    #[error(transparent)]
    Unfit(SandboxError),
    /// The engine failed (not the request's fault).
    #[error(transparent)]
    Engine(SandboxError),
    /// The engine ran a command but did not say how it ended.
    #[error("the engine did not report how the command ended")]
    NoExitCode,
    /// Writing to the operator failed (the client left).
    #[error(transparent)]
    Output(#[from] std::io::Error),
    /// Reading the ledger failed.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// The supervisor failed to carry the request out.
    #[error(transparent)]
    Supervisor(#[from] SupervisorError),
}

/// Why `roster serve` did not start (or stopped).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The data directory's store or configuration.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// This data directory's agents run in another namespace.
    #[error(
        "this data directory's agents run in namespace `{recorded}`, not `{asked}`: pass --ns \
         {recorded} (or set it in roster.toml)"
    )]
    OtherNamespace {
        /// The namespace the data directory claimed at its first start.
        recorded: String,
        /// The namespace asked for now.
        asked: Name,
    },
    /// The namespace holds containers this data directory does not know (a reconcile would
    /// remove them).
    #[error(
        "namespace `{ns}` already holds {count} container(s) this data directory does not know \
         (another data directory's?): start with another --ns, or remove them"
    )]
    NamespaceTaken {
        /// The namespace.
        ns: Name,
        /// How many strangers.
        count: usize,
    },
    /// Another daemon runs on this data directory.
    #[error(
        "roster serve already runs on {}{}: stop it first (`roster status` says what it does)",
        .data_dir.display(),
        .pid.map(|p| format!(" (pid {p})")).unwrap_or_default()
    )]
    AlreadyServing {
        /// The data directory.
        data_dir: PathBuf,
        /// The running daemon's pid, as its lock file says.
        pid: Option<u32>,
    },
    /// Another data directory holds the namespace's lease on the engine.
    #[error(
        "namespace `{ns}` is driven by the data directory {dir} on {host} (since {since}){}",
        lease_advice(*.running, *.take_over)
    )]
    NamespaceLeased {
        /// The namespace.
        ns: Name,
        /// The holder's data directory.
        dir: String,
        /// The holder's host.
        host: String,
        /// Since when.
        since: String,
        /// The holder's pid, where it runs on this host (`Some(None)`: it runs, its pid unknown).
        running: Option<Option<u32>>,
        /// Whether `--take-over` was asked.
        take_over: bool,
    },
    /// No static `roster-agent` was given or found.
    #[error(
        "no static roster-agent found: build it with scripts/build-agent and pass --agent-binary \
         (or set ROSTER_AGENT_BINARY)"
    )]
    NoAgentBinary,
    /// The given `roster-agent` is not a static executable: it would not run in an agent
    /// image, which may have no libc.
    #[error("{path} cannot run in an agent image ({why}): build it with scripts/build-agent")]
    AgentBinaryNotStatic {
        /// The file given.
        path: PathBuf,
        /// What its ELF headers say.
        why: String,
    },
    /// A file or directory of the data directory could not be made or read.
    #[error("cannot {what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// Where.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The engine could not be reached or refused.
    #[error(transparent)]
    Engine(#[from] SandboxError),
    /// The base agent image could not be built.
    #[error("cannot build the base agent image: {0}")]
    BaseImage(SandboxError),
    /// The bus could not be set up.
    #[error(transparent)]
    Bus(#[from] roster_bus::BusError),
    /// Reconciling the containers with the log failed.
    #[error("cannot reconcile the containers with the log: {0}")]
    Reconcile(SupervisorError),
    /// The async runtime could not start.
    #[error("cannot start the async runtime: {0}")]
    AsyncRuntime(std::io::Error),
    /// The daemon stopped because something it cannot go on without failed.
    #[error("roster serve stopped: {0}")]
    Stopped(String),
}

/// What an operator can do about a namespace another data directory holds.
fn lease_advice(running: Option<Option<u32>>, take_over: bool) -> String {
    match (running, take_over) {
        (Some(pid), _) => format!(
            ", whose daemon runs{}: stop it first, or start with another --ns",
            pid.map(|p| format!(" (pid {p})")).unwrap_or_default()
        ),
        (None, true) => {
            ": another daemon claimed it at the same moment; start again to see who holds it".into()
        }
        (None, false) => ": start with another --ns, or with --take-over if that data directory \
                           is gone or stopped for good (its log then no longer drives these \
                           containers)"
            .into(),
    }
}

impl StartError {
    /// An I/O failure while doing `what` on `path`.
    pub(crate) fn io(
        what: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| StartError::Io { what, path, source }
    }
}

/// What an operator's operation ([`crate::admin::run`]) failed with. Nothing it refused was
/// recorded; each variant says which exit code it makes ([`AdminError::exit_code`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdminError {
    /// A reference names no agent or team.
    #[error(transparent)]
    Ref(#[from] RefError),
    /// A request the operation cannot take (a field serde could not check).
    #[error("{0}")]
    BadRequest(String),
    /// The operation acts on containers, which only `roster serve` does.
    #[error("no `roster serve` runs on {0}: start it to act on containers (it owns them)")]
    NoDaemon(PathBuf),
    /// `replay --at` past the log's end.
    #[error("there is no position {at}: {}", held(*.len))]
    NoPosition {
        /// The position asked for.
        at: u64,
        /// How many events the log holds.
        len: u64,
    },
    /// `import` into a data directory that holds events.
    #[error(
        "{} already holds {events} events: import only into an empty data directory",
        .data_dir.display()
    )]
    NotEmpty {
        /// The data directory.
        data_dir: PathBuf,
        /// How many events it holds.
        events: u64,
    },
    /// A file to read cannot be read.
    #[error("cannot read {}: {source}", .path.display())]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A witness's file of signed heads (`verify --head`) holds something else, or a head
    /// that does not verify by itself.
    #[error(
        "{}{}: {why}; give a file of signed heads, one per line, as `roster head --json` \
         prints them",
        .path.display(),
        line_of(*.line)
    )]
    Witness {
        /// The file.
        path: PathBuf,
        /// The line (0: the file as a whole).
        line: u64,
        /// What is wrong.
        why: String,
    },
    /// A file to write cannot be written.
    #[error("cannot write {}: {source}", .path.display())]
    Unwritable {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The data directory cannot be made or read.
    #[error("cannot make {}: {source}", .path.display())]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// An event could not be put in its published form.
    #[error(transparent)]
    Encode(roster_bus::BusError),
    /// `export` could not read the log or write the export.
    #[error(transparent)]
    Export(#[from] roster_store::ExportError),
    /// The ledger, the store or the configuration.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// What was asked of a container.
    #[error(transparent)]
    Control(#[from] ControlError),
    /// The answer could not be sent (the reader left: a broken pipe is not worth a message).
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The operation already said its verdict; only this exit code is left to give.
    #[error("exit code {0}")]
    Reported(u8),
}

fn line_of(line: u64) -> String {
    match line {
        0 => String::new(),
        n => format!(" line {n}"),
    }
}

fn held(len: u64) -> String {
    match len {
        0 => "the log is empty".to_string(),
        n => format!("the log holds positions 0 to {}", n - 1),
    }
}

impl From<ConfigError> for AdminError {
    fn from(e: ConfigError) -> Self {
        AdminError::Runtime(e.into())
    }
}

impl From<LogError> for AdminError {
    fn from(e: LogError) -> Self {
        AdminError::Runtime(e.into())
    }
}

impl From<Rejected> for AdminError {
    fn from(e: Rejected) -> Self {
        AdminError::Runtime(e.into())
    }
}

impl AdminError {
    /// 0 when only the reader left (a broken pipe: `roster log | head`); 2 for bad input (a
    /// reference or id that names nothing included); 3 for a refusal; 4 for a log or an
    /// import that does not verify; what the operation reported; 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            AdminError::Ref(_)
            | AdminError::BadRequest(_)
            | AdminError::NoDaemon(_)
            | AdminError::NoPosition { .. }
            | AdminError::NotEmpty { .. }
            | AdminError::Witness { .. }
            | AdminError::Unreadable { .. } => 2,
            AdminError::Reported(code) => *code,
            AdminError::Runtime(e) => e.exit_code(),
            AdminError::Control(e) => e.exit_code(),
            _ if self.reader_left() => 0,
            _ => 1,
        }
    }

    /// What to tell the operator, if anything (a reported verdict and a reader that left need
    /// no more words).
    pub fn message(&self) -> Option<String> {
        match self {
            AdminError::Reported(_) => None,
            _ if self.reader_left() => None,
            other => Some(sentence(other)),
        }
    }

    /// The answer's reader went away (`roster log | head`): not a failure of the operation.
    fn reader_left(&self) -> bool {
        let io = match self {
            AdminError::Io(e) | AdminError::Export(roster_store::ExportError::Io(e)) => e,
            _ => return false,
        };
        io.kind() == std::io::ErrorKind::BrokenPipe
    }
}

/// The error and its causes in one sentence, skipping a cause the message already quotes.
pub fn sentence(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut cause = err.source();
    while let Some(c) = cause {
        let c_text = c.to_string();
        if !text.contains(&c_text) {
            text.push_str(": ");
            text.push_str(&c_text);
        }
        cause = c.source();
    }
    text
}

/// The exit code of a signed head that contradicts the log or whose signature does not hold
/// (`verify`, `import`): distinct from 4, a chain that does not verify by itself.
pub const SIGNATURE_EXIT: u8 = 9;

impl RuntimeError {
    /// 2 for what the operator must fix first (no data directory, a bad roster.toml, an id
    /// that names nothing, a missing configured key), 3 for a refusal, 4 for a log or an
    /// import that does not verify, 9 for an import whose signed heads do not hold, 1
    /// otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            RuntimeError::NotInitialized(_)
            | RuntimeError::Config(_)
            | RuntimeError::NoSigningKey { .. }
            | RuntimeError::NothingToSign { .. } => 2,
            RuntimeError::Refused(r)
                if matches!(
                    *r.rejection,
                    roster_core::command::Rejection::NotFound { .. }
                ) =>
            {
                2
            }
            RuntimeError::Refused(_) => 3,
            RuntimeError::Import(ImportError::NotEmpty { .. }) => 2,
            RuntimeError::Import(ImportError::Io(_)) => 1,
            RuntimeError::Import(e) if e.is_signature() => SIGNATURE_EXIT,
            RuntimeError::BadHead(_) => SIGNATURE_EXIT,
            RuntimeError::Import(_) => 4,
            RuntimeError::Log(LogError::Corrupt(_) | LogError::Damaged { .. })
            | RuntimeError::Fold(_) => 4,
            _ => 1,
        }
    }
}

impl ControlError {
    /// 2 for a request that cannot apply (an unknown or retired agent, a spec that cannot run
    /// here), else the ledger's code, else 1.
    pub fn exit_code(&self) -> u8 {
        match self {
            ControlError::Unknown(_)
            | ControlError::Retired(_)
            | ControlError::NotRetired(_)
            | ControlError::AlreadyRunning(_)
            | ControlError::Unfit(_) => 2,
            ControlError::Runtime(e) => e.exit_code(),
            _ => 1,
        }
    }
}
