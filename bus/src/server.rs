//! A real `nats-server` with JetStream, run as a child process: for tests, benchmarks and the
//! demo. It listens on a free loopback port, keeps its JetStream store in a directory of its own,
//! and is killed when dropped. No mock of NATS exists anywhere in roster.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The environment variable naming the `nats-server` binary (default: `nats-server` on `PATH`).
pub const SERVER_ENV: &str = "ROSTER_NATS_SERVER";

/// How to get the server, for errors.
pub const INSTALL_HINT: &str = "install it (Debian/Ubuntu: `apt-get install nats-server`, or run \
    `scripts/setup`), or name the binary in ROSTER_NATS_SERVER";

/// Why a server could not be started.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// The binary is not there.
    #[error("`{binary}` was not found: {INSTALL_HINT}")]
    NotInstalled {
        /// What was looked for.
        binary: String,
    },
    /// It started but never accepted connections.
    #[error("nats-server did not listen on {addr} within {secs} s (its log: {log})")]
    NotListening {
        /// Where it should have listened.
        addr: SocketAddr,
        /// How long we waited.
        secs: u64,
        /// Its log file.
        log: String,
    },
    /// Another process took its port first (it is tried again on another).
    #[error("nats-server's port was taken by another process")]
    PortTaken,
    /// Something else failed.
    #[error("could not run nats-server: {0}")]
    Io(#[from] io::Error),
}

/// A running `nats-server -js`, killed on drop (its store directory is removed with it).
#[derive(Debug)]
pub struct NatsServer {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
    binary: PathBuf,
    /// A configuration file (`-c`) and the environment it reads, for servers with
    /// authorization and TLS; the port, address and store directory are always the flags'.
    config: Option<(PathBuf, Vec<(String, String)>)>,
}

impl NatsServer {
    /// Starts a server on a free loopback port with a fresh store directory, and waits until it
    /// accepts connections.
    pub fn start() -> Result<Self, ServerError> {
        Self::start_with(None)
    }

    /// Starts a server like [`NatsServer::start`] with the configuration `config` (the text
    /// of a `nats-server.conf`: authorization, accounts, TLS) and the environment variables
    /// `env` it refers to as `$NAME`. The listening address, port and store directory are
    /// set by flags, which win over the file's.
    pub fn start_with_config(config: &str, env: &[(&str, &str)]) -> Result<Self, ServerError> {
        Self::start_with(Some((config, env)))
    }

    fn start_with(config: Option<(&str, &[(&str, &str)])>) -> Result<Self, ServerError> {
        let binary = std::env::var_os(SERVER_ENV)
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("nats-server"));
        let dir = tempfile::Builder::new().prefix("roster-nats-").tempdir()?;
        let port = free_port()?;
        let config = match config {
            None => None,
            Some((text, env)) => {
                let file = dir.path().join("nats-server.conf");
                std::fs::write(&file, text)?;
                let env = env
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect();
                Some((file, env))
            }
        };
        let mut server = Self {
            child: None,
            port,
            dir,
            binary,
            config,
        };
        // The free port was free when asked; another process may bind it before this server
        // does, which then fails to: it is tried again on another.
        for _ in 0..5 {
            match server.launch() {
                Err(ServerError::PortTaken) => server.port = free_port()?,
                other => return other.map(|()| server),
            }
        }
        server.launch().map(|()| server)
    }

    /// The URL clients connect to.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its JetStream store directory.
    pub fn store_dir(&self) -> PathBuf {
        self.dir.path().join("js")
    }

    /// Kills it (SIGKILL), keeping its store: [`NatsServer::restart`] brings it back on the same
    /// port with the same streams. For outage tests.
    pub fn kill(&mut self) -> io::Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill()?;
            child.wait()?;
        }
        Ok(())
    }

    /// Starts it again on the same port and store (after [`NatsServer::kill`]).
    pub fn restart(&mut self) -> Result<(), ServerError> {
        self.kill()?;
        self.launch()
    }

    fn launch(&mut self) -> Result<(), ServerError> {
        let log = self.dir.path().join("nats-server.log");
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)?;
        // What this run writes: a restart appends to the last run's log.
        let from = out.metadata()?.len();
        let said = || {
            let all = show(&log);
            all.get(usize::try_from(from).unwrap_or(0)..)
                .unwrap_or_default()
                .to_string()
        };
        let mut command = Command::new(&self.binary);
        if let Some((file, env)) = &self.config {
            command
                .arg("-c")
                .arg(file)
                .envs(env.iter().map(|(k, v)| (k, v)));
        }
        let child = command
            .args(["-js", "-a", "127.0.0.1", "-p"])
            .arg(self.port.to_string())
            .arg("-sd")
            .arg(self.store_dir())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(out)
            .spawn()
            .map_err(|e| match e.kind() {
                io::ErrorKind::NotFound => ServerError::NotInstalled {
                    binary: self.binary.display().to_string(),
                },
                _ => ServerError::Io(e),
            })?;
        self.child = Some(child);
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        let wait = Duration::from_secs(10);
        let start = Instant::now();
        while start.elapsed() < wait {
            if let Some(child) = &mut self.child {
                if let Some(status) = child.try_wait()? {
                    self.child = None;
                    let said = said();
                    if said.contains("address already in use") {
                        return Err(ServerError::PortTaken);
                    }
                    return Err(ServerError::Io(io::Error::other(format!(
                        "nats-server exited with {status}; its log: {said}"
                    ))));
                }
            }
            // Something answering on the port is not enough: it may be another server that
            // took the port first. This one says it is ready once it listens.
            if said().contains("Server is ready")
                && TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
            {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(ServerError::NotListening {
            addr,
            secs: wait.as_secs(),
            log: show(&log),
        })
    }
}

fn show(log: &Path) -> String {
    std::fs::read_to_string(log).unwrap_or_else(|e| format!("unreadable: {e}"))
}

/// A port nobody listens on now (the OS picks it; another process may take it before the
/// server binds it: `start_with` then tries another).
fn free_port() -> io::Result<u16> {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok(l.local_addr()?.port())
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.kill();
    }
}
