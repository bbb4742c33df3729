//! The connection to the container engine, scoped to one roster namespace.
//!
//! An [`Engine`] is a `bollard::Docker` client plus the namespace whose containers and volumes it
//! manages: every name it makes and every label filter it uses carries the namespace, so two
//! runtimes (or two test runs) on one engine never see each other's agents. The operations live
//! next to what they operate on: images in `image.rs`, homes in `home.rs`, containers in
//! `lifecycle.rs`, events in `events.rs`, exec and logs in `exec.rs`. The types of its answers are
//! re-exported here, so a caller needs one path for the engine's vocabulary.

use std::sync::Arc;

use bollard::Docker;
use roster_core::event::RuntimeKind;
use roster_core::id::AgentId;
use roster_core::name::Name;
use tokio::sync::OnceCell;

pub use crate::error::SandboxError;
pub use crate::events::{stop_reason, EngineEvent};
pub use crate::exec::{ExecOutput, LogChunk, OutputStream};
pub use crate::state::{ContainerState, ContainerStatus, Found};

use crate::plan;

/// A runtime the engine knows: its name and the arguments the engine passes it.
type Registered = (String, Vec<String>);

/// What the engine says of itself, asked once per [`Engine`].
#[derive(Debug)]
struct Info {
    /// Its runtimes, sorted.
    runtimes: Vec<Registered>,
    /// How many CPUs its host has.
    cpus: u32,
    /// How much memory its host has, in bytes.
    memory: u64,
}

/// A connected engine, managing the containers and volumes of one namespace.
///
/// Cloning is cheap and shares the connection.
#[derive(Debug, Clone)]
pub struct Engine {
    pub(crate) docker: Docker,
    pub(crate) ns: Name,
    /// The engine's runtimes (with the arguments each is registered with) and its host's size.
    info: Arc<OnceCell<Info>>,
    /// Whether homes may be looked at on the host ([`Engine::home`]); tests turn it off to
    /// take the path of a daemon that cannot.
    pub(crate) sees_homes: bool,
    /// Where homes get disks of their own, if they do ([`Engine::with_disks`]).
    pub(crate) disks: Option<crate::disk::Disks>,
}

impl Engine {
    /// Connects to the local engine (`DOCKER_HOST` or `/var/run/docker.sock`) and negotiates the
    /// API version, so that one binary works with Debian's 1.41 engine and newer ones; fails with
    /// one sentence saying what to start when nothing answers.
    pub async fn connect(ns: Name) -> Result<Engine, SandboxError> {
        let at = std::env::var("DOCKER_HOST")
            .ok()
            .filter(|h| h.starts_with("unix://"))
            .map(|h| h.trim_start_matches("unix://").to_string())
            .unwrap_or_else(|| "/var/run/docker.sock".to_string());
        let unreachable = |source| SandboxError::EngineUnreachable {
            at: at.clone(),
            source,
        };
        let docker = Docker::connect_with_local_defaults().map_err(unreachable)?;
        let docker = docker.negotiate_version().await.map_err(unreachable)?;
        Ok(Engine {
            docker,
            ns,
            info: Arc::new(OnceCell::new()),
            sees_homes: true,
            disks: None,
        })
    }

    /// The namespace this engine manages.
    pub fn ns(&self) -> &Name {
        &self.ns
    }

    /// The container name of `agent` in this namespace.
    pub fn container_name(&self, agent: AgentId) -> String {
        plan::container_name(&self.ns, agent)
    }

    /// The home volume name of `agent` in this namespace.
    pub fn volume_name(&self, agent: AgentId) -> String {
        plan::volume_name(&self.ns, agent)
    }

    /// Prepares homes as a daemon that cannot look into the engine's volumes does (one not run
    /// by root, or beside a remote engine): always in a preparation container. For tests.
    pub fn blind_to_homes(mut self) -> Self {
        self.sees_homes = false;
        self
    }

    /// Gives each new home a disk of its own in `disks` (see [`crate::disk`]): its size in
    /// bytes and files bounded. Only for a daemon run by root beside its engine
    /// ([`Disks::usable`](crate::disk::Disks::usable) says why not).
    pub fn with_disks(mut self, disks: crate::disk::Disks) -> Self {
        self.disks = Some(disks);
        self
    }

    /// Where homes get disks of their own, if they do.
    pub fn disks(&self) -> Option<&crate::disk::Disks> {
        self.disks.as_ref()
    }

    /// The uid volume name of `agent` in this namespace.
    pub fn uid_volume_name(&self, agent: AgentId) -> String {
        plan::uid_volume_name(&self.ns, agent)
    }

    /// The OCI runtimes the engine has (`runc`, and `runsc` where gVisor is registered), so that
    /// callers can offer gVisor only where it exists. Asked once per `Engine`.
    pub async fn runtimes(&self) -> Result<Vec<String>, SandboxError> {
        Ok(self
            .registered()
            .await?
            .iter()
            .map(|(name, _)| name.clone())
            .collect())
    }

    /// The runtimes with the arguments the engine passes each, asked once per `Engine`.
    async fn registered(&self) -> Result<&[Registered], SandboxError> {
        Ok(&self.info().await?.runtimes)
    }

    /// What the engine says of itself, asked once per `Engine`.
    async fn info(&self) -> Result<&Info, SandboxError> {
        self.info
            .get_or_try_init(|| async {
                let info =
                    self.docker.info().await.map_err(|e| {
                        SandboxError::engine("asking the engine for its runtimes", e)
                    })?;
                let mut runtimes: Vec<Registered> = info
                    .runtimes
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(name, r)| (name, r.runtime_args.unwrap_or_default()))
                    .collect();
                runtimes.sort();
                Ok::<_, SandboxError>(Info {
                    runtimes,
                    cpus: info.ncpu.and_then(|n| u32::try_from(n).ok()).unwrap_or(1),
                    memory: info
                        .mem_total
                        .and_then(|m| u64::try_from(m).ok())
                        .unwrap_or(u64::MAX),
                })
            })
            .await
    }

    /// Fails unless the host could give an agent `resources`: no more CPUs than it has, no
    /// more memory than it has (the engine would refuse the container, and the agent would
    /// never start).
    pub(crate) async fn require_room(
        &self,
        cpu_millis: u64,
        memory: u64,
    ) -> Result<(), SandboxError> {
        let info = self.info().await?;
        if cpu_millis > u64::from(info.cpus) * 1000 {
            return Err(SandboxError::TooBig {
                what: format!("{} CPUs", cores(cpu_millis)),
                host: format!("{} CPUs", info.cpus),
            });
        }
        if memory > info.memory {
            return Err(SandboxError::TooBig {
                what: format!("{} MiB of memory", memory / (1024 * 1024)),
                host: format!("{} MiB", info.memory / (1024 * 1024)),
            });
        }
        Ok(())
    }

    /// Fails unless the engine has `runtime`, registered so that the agent's limits hold,
    /// before anything is created for an agent. gVisor registered with `--ignore-cgroups` runs
    /// outside the container's cgroup: memory and CPU limits would not apply to it.
    pub(crate) async fn require_runtime(&self, runtime: &str) -> Result<(), SandboxError> {
        let known = self.registered().await?;
        match known.iter().find(|(name, _)| name == runtime) {
            Some((_, args)) if args.iter().any(|a| a == "--ignore-cgroups") => {
                Err(SandboxError::RuntimeUnconfined {
                    runtime: runtime.to_string(),
                })
            }
            Some(_) => Ok(()),
            None => Err(SandboxError::RuntimeMissing {
                runtime: runtime.to_string(),
                known: known
                    .iter()
                    .map(|(n, _)| n.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
        }
    }

    /// Whether the engine has the runtime of `kind`.
    pub async fn has_runtime(&self, kind: RuntimeKind) -> Result<bool, SandboxError> {
        let name = kind.as_str();
        Ok(self.runtimes().await?.iter().any(|k| k == name))
    }

    /// Whether the engine still answers (for health checks and the escape suite's "the host is
    /// unharmed").
    pub async fn ping(&self) -> Result<(), SandboxError> {
        self.docker
            .ping()
            .await
            .map(|_| ())
            .map_err(|e| SandboxError::engine("pinging the engine", e))
    }

    /// Fails unless the engine answers a new request within [`ACCEPTING_WITHIN`]. bollard
    /// keeps no idle connection, so each request opens one. An engine shutting down closes its
    /// listener first, then stops its containers and reports their deaths on the event streams
    /// already open (measured with Debian's dockerd 20.10: refused from its SIGTERM on, the
    /// deaths reported 10 s later); behind systemd's socket, a request waits for the next
    /// engine. So a death reported while this fails is the engine's doing.
    pub async fn accepting(&self) -> Result<(), SandboxError> {
        match tokio::time::timeout(ACCEPTING_WITHIN, self.docker.ping()).await {
            Ok(answer) => answer
                .map(drop)
                .map_err(|e| SandboxError::engine("pinging the engine", e)),
            Err(_) => Err(SandboxError::Io {
                doing: "pinging the engine".into(),
                source: std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("no answer within {ACCEPTING_WITHIN:?}"),
                ),
            }),
        }
    }
}

/// Thousandths of a core as people write cores: `1000`, `0.5`, `2.25`.
fn cores(millis: u64) -> String {
    let (whole, rest) = (millis / 1000, millis % 1000);
    if rest == 0 {
        whole.to_string()
    } else {
        format!("{whole}.{rest:03}")
            .trim_end_matches('0')
            .to_string()
    }
}

/// How long [`Engine::accepting`] waits for an answer.
pub const ACCEPTING_WITHIN: std::time::Duration = std::time::Duration::from_secs(2);
