//! Binding an agent's socket and accepting its connections.

use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use roster_core::id::AgentId;
use roster_sandbox::uid::AgentUid;
use tokio::net::UnixListener;
use tokio::sync::{oneshot, Semaphore};
use tokio::task::{JoinHandle, JoinSet};

use super::conn::{self, AgentCtx, Bucket};
use super::out::Budget;
use super::Backend;

/// The socket's file name in the agent's gateway directory (mounted at `/run/roster`).
pub const SOCKET_NAME: &str = "gateway.sock";

/// How much one agent may ask of its gateway, and hold in it.
///
/// Per agent, not per connection: opening more connections buys no more requests, and no more
/// memory than [`agent_bytes`](Limits::agent_bytes). Zeros are read as 1 (a gateway that
/// refuses everything is a retired agent's, which has none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Requests a second, sustained.
    pub per_sec: u32,
    /// Requests at once after a quiet moment.
    pub burst: u32,
    /// Connections open at once; one more is told so and closed.
    pub max_connections: usize,
    /// Bytes of answers and pushes one connection may have waiting for its peer to read them.
    /// When they are there, the connection is not read until the peer reads: an agent that
    /// asks and never reads stalls its own connection, not the daemon's memory.
    pub conn_bytes: usize,
    /// The same, for all the agent's connections together.
    pub agent_bytes: usize,
    /// How long a request line may take to arrive, from its first byte to its newline: a peer
    /// that starts lines and never ends them (slowloris) would hold up to a line's cap in each
    /// connection for as long as it likes. A connection waiting between lines is never cut.
    pub line_timeout: Duration,
    /// How long a write may wait for a peer that reads nothing: the connection is then closed,
    /// and what was waiting for it freed.
    pub write_timeout: Duration,
}

/// Overrides [`Limits::line_timeout`], in milliseconds (tests shorten it).
pub const LINE_TIMEOUT_ENV: &str = "ROSTER_GATEWAY_LINE_TIMEOUT_MS";

/// Overrides [`Limits::write_timeout`], in milliseconds (tests shorten it).
pub const WRITE_TIMEOUT_ENV: &str = "ROSTER_GATEWAY_WRITE_TIMEOUT_MS";

impl Default for Limits {
    /// Far above what an agent's own tool calls need, far below what would load the runtime:
    /// a connection holds two history pages (512 KiB each) for its peer, an agent four
    /// connections' worth — with a line of up to 1 MiB per connection, a few tens of MiB at
    /// worst, whatever it sends; a line may take 30 s (a mebibyte on a local socket takes
    /// milliseconds), a peer may read nothing for 2 minutes (an agent thinking while pushes
    /// arrive). The timeouts can be set in milliseconds through [`LINE_TIMEOUT_ENV`] and
    /// [`WRITE_TIMEOUT_ENV`].
    fn default() -> Self {
        Self {
            per_sec: 200,
            burst: 400,
            max_connections: 16,
            conn_bytes: 1024 * 1024,
            agent_bytes: 4 * 1024 * 1024,
            line_timeout: millis_from_env(LINE_TIMEOUT_ENV).unwrap_or(Duration::from_secs(30)),
            write_timeout: millis_from_env(WRITE_TIMEOUT_ENV).unwrap_or(Duration::from_secs(120)),
        }
    }
}

/// A duration in milliseconds from the environment variable `name`, if it holds a positive one.
fn millis_from_env(name: &str) -> Option<Duration> {
    let ms: u64 = std::env::var(name).ok()?.trim().parse().ok()?;
    (ms > 0).then(|| Duration::from_millis(ms))
}

/// A running gateway of one agent. Closing it (or dropping it) stops accepting, ends every
/// connection and removes the socket, so a retired agent's container is left with nothing to
/// call.
#[derive(Debug)]
pub struct AgentGateway {
    agent: AgentId,
    path: PathBuf,
    /// The socket file we bound (device, inode), so that we never remove a newer gateway's.
    bound: (u64, u64),
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
    access: Access,
}

impl AgentGateway {
    /// Who it was opened to.
    pub fn access(&self) -> Access {
        self.access
    }

    /// The socket's path on the host.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whose gateway this is.
    pub fn agent(&self) -> AgentId {
        self.agent
    }

    /// Stops accepting, ends every connection (waiting until they are gone) and removes the
    /// socket.
    pub async fn close(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        // Drop removes the socket.
    }
}

impl Drop for AgentGateway {
    fn drop(&mut self) {
        // Dropping `stop` ends the accept loop, which ends its connections (asynchronously
        // here; `close` waits for them).
        self.stop.take();
        if let Ok(meta) = std::fs::symlink_metadata(&self.path) {
            if (meta.dev(), meta.ino()) == self.bound {
                let _ = std::fs::remove_file(&self.path);
            }
        }
    }
}

/// Who may connect to an agent's gateway socket, besides root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Only the agent's own host uid, as the group of the directory (0710) and the socket
    /// (0660), both owned by root: what `roster serve` run by root gives every agent. No other
    /// host user can connect, even through `/proc/PID/root` of the agent's process.
    Agent(AgentUid),
    /// Any user that can reach `dir` (0755, socket 0666): for a daemon that is not root, which
    /// cannot give files to another uid, and for tests. The daemon's 0700 data directory keeps
    /// host users from the path, and the agent's own uid keeps them from its `/proc/PID/root`.
    Open,
}

/// Creates `dir` (inside a parent the daemon keeps 0700), binds `dir/gateway.sock` for `agent`
/// (replacing a stale socket), opens both to `access` and starts accepting. An
/// [`Access::Agent`] that cannot be given (the daemon is not root) is an error.
///
/// Must be called inside a tokio runtime. Fails if `dir` exists and is not a plain directory
/// (a symlink is refused), or if the path is too long for a socket.
pub async fn serve_agent(
    dir: &Path,
    agent: AgentId,
    backend: Arc<dyn Backend>,
    limits: Limits,
    access: Access,
) -> io::Result<AgentGateway> {
    prepare_dir(dir, access)?;
    let path = dir.join(SOCKET_NAME);
    match std::fs::symlink_metadata(&path) {
        Ok(meta) if meta.file_type().is_dir() => {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} is a directory, not a socket", path.display()),
            ))
        }
        Ok(_) => std::fs::remove_file(&path)?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let listener = UnixListener::bind(&path).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("cannot bind the gateway socket {}: {e}", path.display()),
        )
    })?;
    match access {
        Access::Agent(uid) => {
            std::os::unix::fs::chown(&path, Some(0), Some(uid.get()))?;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o660))?;
        }
        Access::Open => std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666))?,
    }
    let meta = std::fs::symlink_metadata(&path)?;
    let cx = AgentCtx {
        agent,
        backend,
        bucket: Arc::new(Mutex::new(Bucket::new(limits.per_sec, limits.burst))),
        budget: Budget::new(limits.agent_bytes),
        limits,
    };
    let (stop, stopped) = oneshot::channel();
    let task = tokio::spawn(accept_loop(
        listener,
        cx,
        limits.max_connections.max(1),
        stopped,
    ));
    Ok(AgentGateway {
        agent,
        path,
        bound: (meta.dev(), meta.ino()),
        stop: Some(stop),
        task: Some(task),
        access,
    })
}

/// Makes `dir` a plain directory open to `access`, refusing anything else at that path.
fn prepare_dir(dir: &Path, access: Access) -> io::Result<()> {
    match std::fs::symlink_metadata(dir) {
        Ok(meta) if meta.file_type().is_dir() => {}
        Ok(_) => {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} exists and is not a directory", dir.display()),
            ))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            std::fs::DirBuilder::new().mode(0o700).create(dir)?;
        }
        Err(e) => return Err(e),
    }
    // Owner and mode are set every time: a directory left by an older daemon, or narrowed by
    // the umask, is made what `access` says. The agent's uid needs only to pass through it.
    match access {
        Access::Agent(uid) => {
            std::os::unix::fs::chown(dir, Some(0), Some(uid.get()))?;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o710))
        }
        Access::Open => std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)),
    }
}

/// Accepts until told to stop, then ends every connection before returning.
async fn accept_loop(
    listener: UnixListener,
    cx: AgentCtx,
    max_connections: usize,
    mut stop: oneshot::Receiver<()>,
) {
    let slots = Arc::new(Semaphore::new(max_connections));
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut stop => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => match Arc::clone(&slots).try_acquire_owned() {
                    Ok(slot) => {
                        conns.spawn(conn::serve(stream, cx.clone(), slot));
                    }
                    Err(_) => {
                        conns.spawn(conn::refuse(stream, max_connections));
                    }
                },
                Err(e) => {
                    // Out of file descriptors, most likely: wait rather than spin.
                    tracing::warn!(agent = %cx.agent, "gateway accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
    drop(listener);
    conns.shutdown().await;
}
