//! Agents' home volumes: their persistent memory, owned by the agent's own host uid.
//!
//! A home is a named volume (`roster-NS-AGENTID-home`) labelled like the agent's container. It
//! outlives the container — removal, recreation, daemon and engine restarts — and goes only with
//! [`Engine::remove_home`] (`roster purge`), together with the agent's uid volume
//! (`roster-NS-AGENTID-uid`, empty, whose `roster.uid` label records the agent's host uid: see
//! [`crate::uid`]).
//!
//! A new volume's root belongs to root with mode 0755, and an image's own `/home/agent` belongs
//! to whatever uid the image says, never to the agent's. So the engine's copy of the image's
//! directory into a new volume is always off, and the runtime gives the home to the agent's uid
//! itself:
//! - where it sees the volume's directory on the host (a daemon run by root beside its engine),
//!   a new, empty home is given with one `lchown`, and the home's owner is the proof that it was
//!   given: a home whose owner is not the agent's uid is given again at the next look;
//! - a home with files in it (one made before agents had uids of their own, owned by 1000), or
//!   any home out of sight, is given by a short-lived container of the base image — the
//!   runtime's, not the agent's — running as root with only `CAP_CHOWN` and
//!   `CAP_DAC_READ_SEARCH`, no network, a read-only root, and only the volume mounted:
//!   `chown -R -h UID:UID /home/agent`, never the runtime walking files an agent made. That
//!   preparation container is created first and removed last: one left over (a runtime killed
//!   half-way, a failed `chown`) means the home is not ready, and the next [`Engine::home`]
//!   prepares it again.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use bollard::container::{
    Config, CreateContainerOptions, ListContainersOptions, WaitContainerOptions,
};
use bollard::models::{HostConfig, Mount, MountTypeEnum, MountVolumeOptions};
use bollard::volume::{CreateVolumeOptions, ListVolumesOptions};
use futures_util::StreamExt;
use roster_core::id::{AgentId, TeamId};
use roster_core::name::ImageRef;

use crate::engine::Engine;
use crate::error::{is_not_found, status, SandboxError};
use crate::plan::{agent_labels, HOME};
use crate::uid::{self, AgentUid, HostIds, UID_LABEL};

/// How long the preparation of a home may take (a home moved to a new uid is walked whole).
const PREP_TIMEOUT: Duration = Duration::from_secs(120);

/// How many uids a search looks at before it gives up (each taken one is skipped).
const UID_SEARCH: u32 = 1 << 16;

/// How many times a uid is chosen again after another runtime chose the same one at once.
const UID_TRIES: u64 = 8;

/// The label on a home-preparation container, naming the volume it prepares.
pub const PREP_LABEL: &str = "roster.prep";

/// An agent's home, ready for its container: the volume, and the host uid that owns it (which
/// the container must run as).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Home {
    /// The volume's name.
    pub volume: String,
    /// The agent's host uid (and gid).
    pub uid: AgentUid,
}

/// What holds a uid while it is being given: the first thing made with its label.
#[derive(Debug, Clone, Copy)]
enum Holder {
    /// The home's preparation container (which then gives it the home).
    Prep,
    /// The agent's uid volume (the runtime gives the home itself).
    UidVolume,
}

/// A home's directory as this process sees it on the host: only where the engine is local and
/// this process may look into its volumes (root).
#[derive(Debug)]
struct HostDir {
    path: std::path::PathBuf,
    owner: u32,
    empty: bool,
}

impl HostDir {
    /// The directory at the engine's `mountpoint`, if this process sees a real directory there
    /// (not a link).
    fn look(mountpoint: &str) -> Option<Self> {
        use std::os::unix::fs::MetadataExt;
        let path = std::path::PathBuf::from(mountpoint);
        if !path.is_absolute() {
            return None;
        }
        let meta = std::fs::symlink_metadata(&path).ok()?;
        if !meta.file_type().is_dir() {
            return None;
        }
        let empty = std::fs::read_dir(&path).ok()?.next().is_none();
        Some(Self {
            path,
            owner: meta.uid(),
            empty,
        })
    }

    /// Gives the (empty) directory to `uid`, group included, without following a link.
    fn give(&self, uid: AgentUid) -> std::io::Result<()> {
        std::os::unix::fs::lchown(&self.path, Some(uid.get()), Some(uid.get()))
    }
}

impl Engine {
    /// Makes sure `agent` (of `team`) has a home owned by a host uid of its own, and returns
    /// both: at once when they exist and were prepared, else after creating what is missing,
    /// choosing the uid, and preparing the home. `extra` labels are added to what this creates
    /// (a throwaway run labels its volumes to sweep them).
    pub async fn home(
        &self,
        team: &TeamId,
        agent: AgentId,
        extra: &HashMap<String, String>,
    ) -> Result<Home, SandboxError> {
        let volume = self.volume_name(agent);
        let prep = format!("{volume}-prep");
        let recorded = self.home_uid(agent).await?;
        let unfinished = self.container_exists(&prep).await?;
        let mountpoint = self.volume_mountpoint(&volume).await?;
        let exists = mountpoint.is_some();
        let look = |mp: &str| self.sees_homes.then(|| HostDir::look(mp)).flatten();
        let seen = mountpoint.as_deref().and_then(look);
        match (recorded, &seen) {
            // Where the home is in sight (a daemon run by root beside its engine), its owner is
            // the proof; elsewhere, the absence of a preparation left over.
            (Some(uid), Some(dir)) if dir.owner == uid.get() && !unfinished => {
                return Ok(Home { volume, uid })
            }
            (Some(uid), None) if exists && !unfinished => return Ok(Home { volume, uid }),
            _ => {}
        }
        let mut labels = agent_labels(self.ns(), team, agent);
        labels.extend(extra.iter().map(|(k, v)| (k.clone(), v.clone())));
        if unfinished {
            self.remove_named(&prep).await?;
        }
        let seen = if exists {
            seen
        } else {
            let options = CreateVolumeOptions {
                name: volume.clone(),
                driver: "local".to_string(),
                driver_opts: HashMap::new(),
                labels: labels.clone(),
            };
            let made = self
                .docker
                .create_volume(options)
                .await
                .map_err(|e| SandboxError::engine(format!("creating volume {volume}"), e))?;
            look(&made.mountpoint)
        };
        let uid = match recorded {
            Some(uid) => uid,
            // In sight, the uid volume holds the uid while it is chosen: the home's owner then
            // proves it prepared. Out of sight, the preparation container holds it, and the uid
            // volume comes once the home is prepared.
            None => {
                let holder = if seen.is_some() {
                    Holder::UidVolume
                } else {
                    Holder::Prep
                };
                self.choose_uid(agent, &volume, &prep, &labels, holder)
                    .await?
            }
        };
        match &seen {
            // A new, empty home (or one whose owner alone was not given yet): given here, at
            // the cost of a system call rather than a container.
            Some(dir) if dir.empty && !unfinished => {
                dir.give(uid).map_err(|e| SandboxError::HomePrep {
                    volume: volume.clone(),
                    why: format!("giving {} to uid {uid}: {e}", dir.path.display()),
                })?
            }
            _ => {
                // Files to give (a home of an older roster, or a preparation cut short): walked
                // inside a container, never by the runtime among files an agent made. A failed
                // preparation leaves its container: the next call prepares the home again.
                if recorded.is_some() || seen.is_some() {
                    self.create_prep(&volume, &prep, uid, &labels).await?;
                }
                self.run_prep(&volume, &prep).await?;
            }
        }
        if recorded.is_none() && seen.is_none() {
            self.create_uid_volume(agent, uid, &labels).await?;
        }
        self.remove_named(&prep).await?;
        Ok(Home { volume, uid })
    }

    /// Creates `agent`'s uid volume, labelled with `uid`.
    async fn create_uid_volume(
        &self,
        agent: AgentId,
        uid: AgentUid,
        labels: &HashMap<String, String>,
    ) -> Result<(), SandboxError> {
        let mut labels = labels.clone();
        labels.insert(UID_LABEL.to_string(), uid.to_string());
        let name = self.uid_volume_name(agent);
        let options = CreateVolumeOptions {
            name: name.clone(),
            driver: "local".to_string(),
            driver_opts: HashMap::new(),
            labels,
        };
        self.docker
            .create_volume(options)
            .await
            .map_err(|e| SandboxError::engine(format!("creating volume {name}"), e))?;
        Ok(())
    }

    /// Where the engine keeps a volume's files, if the volume exists.
    async fn volume_mountpoint(&self, volume: &str) -> Result<Option<String>, SandboxError> {
        match self.docker.inspect_volume(volume).await {
            Ok(v) => Ok(Some(v.mountpoint)),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(SandboxError::engine(
                format!("inspecting volume {volume}"),
                e,
            )),
        }
    }

    /// The host uid recorded for `agent` (its uid volume's label), if it has one.
    pub async fn home_uid(&self, agent: AgentId) -> Result<Option<AgentUid>, SandboxError> {
        let name = self.uid_volume_name(agent);
        let v = match self.docker.inspect_volume(&name).await {
            Ok(v) => v,
            Err(e) if is_not_found(&e) => return Ok(None),
            Err(e) => return Err(SandboxError::engine(format!("inspecting volume {name}"), e)),
        };
        let raw = v.labels.get(UID_LABEL).cloned().unwrap_or_default();
        AgentUid::parse(&raw)
            .map(Some)
            .ok_or_else(|| SandboxError::HomePrep {
                volume: name,
                why: format!(
                    "its {UID_LABEL} label is {raw:?}, not a uid from {} to {}",
                    uid::FIRST,
                    uid::LAST
                ),
            })
    }

    /// Every uid the engine's labels give an agent, of any namespace, with how many volumes and
    /// containers carry it.
    pub async fn uids_in_use(&self) -> Result<HashMap<AgentUid, usize>, SandboxError> {
        let filters = HashMap::from([("label".to_string(), vec![UID_LABEL.to_string()])]);
        let volumes = self
            .docker
            .list_volumes(Some(ListVolumesOptions {
                filters: filters.clone(),
            }))
            .await
            .map_err(|e| {
                SandboxError::engine(format!("listing volumes labelled {UID_LABEL}"), e)
            })?;
        let containers = self
            .docker
            .list_containers(Some(ListContainersOptions {
                all: true,
                filters,
                ..Default::default()
            }))
            .await
            .map_err(|e| {
                SandboxError::engine(format!("listing containers labelled {UID_LABEL}"), e)
            })?;
        let mut seen = HashMap::new();
        let labels = volumes
            .volumes
            .unwrap_or_default()
            .into_iter()
            .map(|v| v.labels.get(UID_LABEL).cloned())
            .chain(
                containers
                    .into_iter()
                    .map(|c| c.labels.and_then(|l| l.get(UID_LABEL).cloned())),
            );
        for raw in labels.flatten() {
            if let Some(uid) = AgentUid::parse(&raw) {
                *seen.entry(uid).or_insert(0) += 1;
            }
        }
        Ok(seen)
    }

    /// Chooses a uid for `agent` that neither the host nor any label on the engine uses, and
    /// labels `holder` (created here) with it. Two runtimes
    /// choosing at once each look again once labelled: one that sees its uid on anything else
    /// gives it up and chooses again, so that two never keep the same.
    async fn choose_uid(
        &self,
        agent: AgentId,
        volume: &str,
        prep: &str,
        labels: &HashMap<String, String>,
        holder: Holder,
    ) -> Result<AgentUid, SandboxError> {
        let host = tokio::task::spawn_blocking(HostIds::read)
            .await
            .map_err(|e| SandboxError::HomePrep {
                volume: volume.to_string(),
                why: format!("reading the host's accounts: {e}"),
            })?;
        for salt in 0..UID_TRIES {
            let taken: HashSet<AgentUid> = self.uids_in_use().await?.into_keys().collect();
            let from = uid::start(self.ns(), agent, salt);
            let Some(uid) = uid::pick(from, UID_SEARCH, |u| {
                taken.contains(&u) || host.uses(u.get())
            }) else {
                break;
            };
            match holder {
                Holder::Prep => self.create_prep(volume, prep, uid, labels).await?,
                Holder::UidVolume => self.create_uid_volume(agent, uid, labels).await?,
            }
            if self.uids_in_use().await?.get(&uid).copied().unwrap_or(0) == 1 {
                return Ok(uid);
            }
            match holder {
                Holder::Prep => self.remove_named(prep).await?,
                Holder::UidVolume => self.remove_volume(&self.uid_volume_name(agent)).await?,
            }
        }
        Err(SandboxError::HomePrep {
            volume: volume.to_string(),
            why: format!(
                "no free host uid from {} to {} could be given to the agent",
                uid::FIRST,
                uid::LAST
            ),
        })
    }

    /// Creates the preparation container of `volume`, which gives it to `uid`.
    async fn create_prep(
        &self,
        volume: &str,
        prep: &str,
        uid: AgentUid,
        labels: &HashMap<String, String>,
    ) -> Result<(), SandboxError> {
        let base = ImageRef::base();
        if !self.image_exists(&base).await? {
            return Err(SandboxError::ImageMissing {
                image: base.to_string(),
            });
        }
        let mut labels = labels.clone();
        // Not an agent's container: a reconcile must not take it for one.
        labels.remove(crate::plan::labels::AGENT);
        labels.insert(PREP_LABEL.to_string(), volume.to_string());
        labels.insert(UID_LABEL.to_string(), uid.to_string());
        let config = Config {
            image: Some(base.to_string()),
            user: Some("0:0".into()),
            cmd: Some(vec![
                "chown".into(),
                "-R".into(),
                "-h".into(),
                uid.user(),
                HOME.into(),
            ]),
            labels: Some(labels),
            network_disabled: Some(true),
            host_config: Some(HostConfig {
                cap_drop: Some(vec!["ALL".into()]),
                // To change owners, and to walk a home whose directories the agent closed.
                cap_add: Some(vec!["CHOWN".into(), "DAC_READ_SEARCH".into()]),
                security_opt: Some(vec!["no-new-privileges:true".into()]),
                readonly_rootfs: Some(true),
                network_mode: Some("none".into()),
                privileged: Some(false),
                pids_limit: Some(8),
                memory: Some(32 * 1024 * 1024),
                memory_swap: Some(32 * 1024 * 1024),
                runtime: Some("runc".into()),
                mounts: Some(vec![Mount {
                    target: Some(HOME.into()),
                    source: Some(volume.to_string()),
                    typ: Some(MountTypeEnum::VOLUME),
                    read_only: Some(false),
                    volume_options: Some(MountVolumeOptions {
                        no_copy: Some(true),
                        ..Default::default()
                    }),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        };
        let options = CreateContainerOptions {
            name: prep.to_string(),
            platform: None,
        };
        self.docker
            .create_container(Some(options), config)
            .await
            .map_err(|e| SandboxError::HomePrep {
                volume: volume.to_string(),
                why: format!("creating {prep}: {e}"),
            })?;
        Ok(())
    }

    /// Runs the preparation container `prep` of `volume` to its end.
    async fn run_prep(&self, volume: &str, prep: &str) -> Result<(), SandboxError> {
        let failed = |why: String| SandboxError::HomePrep {
            volume: volume.to_string(),
            why,
        };
        tokio::time::timeout(PREP_TIMEOUT, async {
            self.docker
                .start_container::<String>(prep, None)
                .await
                .map_err(|e| failed(format!("starting {prep}: {e}")))?;
            let mut wait = self.docker.wait_container(
                prep,
                Some(WaitContainerOptions {
                    condition: "not-running",
                }),
            );
            match wait.next().await {
                Some(Ok(r)) if r.status_code == 0 => Ok(()),
                Some(Ok(r)) => Err(failed(format!("chown exited with {}", r.status_code))),
                Some(Err(bollard::errors::Error::DockerContainerWaitError { code, error })) => {
                    Err(failed(format!("chown exited with {code} {error}")))
                }
                Some(Err(e)) => Err(failed(format!("waiting for {prep}: {e}"))),
                None => Err(failed(format!("the engine did not report {prep}'s exit"))),
            }
        })
        .await
        .unwrap_or_else(|_| {
            Err(SandboxError::Timeout {
                doing: format!("preparing home volume {volume}"),
                secs: PREP_TIMEOUT.as_secs(),
            })
        })
    }

    /// Whether a volume exists.
    async fn volume_exists(&self, volume: &str) -> Result<bool, SandboxError> {
        match self.docker.inspect_volume(volume).await {
            Ok(_) => Ok(true),
            Err(e) if is_not_found(&e) => Ok(false),
            Err(e) => Err(SandboxError::engine(
                format!("inspecting volume {volume}"),
                e,
            )),
        }
    }

    /// Whether a container exists, by name.
    async fn container_exists(&self, name: &str) -> Result<bool, SandboxError> {
        match self.docker.inspect_container(name, None).await {
            Ok(_) => Ok(true),
            Err(e) if is_not_found(&e) => Ok(false),
            Err(e) => Err(SandboxError::engine(format!("inspecting {name}"), e)),
        }
    }

    /// Whether the agent has a home volume.
    pub async fn home_exists(&self, agent: AgentId) -> Result<bool, SandboxError> {
        self.volume_exists(&self.volume_name(agent)).await
    }

    /// Deletes the agent's home volume and everything in it (`roster purge`); a missing home is
    /// already deleted. Fails while a container still mounts it. Its uid volume goes last, so
    /// that the uid is free again only once nothing of the agent is left.
    pub async fn remove_home(&self, agent: AgentId) -> Result<(), SandboxError> {
        let volume = self.volume_name(agent);
        self.remove_named(&format!("{volume}-prep")).await?;
        self.remove_volume(&volume).await?;
        self.remove_volume(&self.uid_volume_name(agent)).await
    }

    /// The names of the volumes carrying `label` (`key=value`).
    pub(crate) async fn volumes_labelled(&self, label: &str) -> Result<Vec<String>, SandboxError> {
        let options = ListVolumesOptions {
            filters: HashMap::from([("label".to_string(), vec![label.to_string()])]),
        };
        let list =
            self.docker.list_volumes(Some(options)).await.map_err(|e| {
                SandboxError::engine(format!("listing volumes labelled {label}"), e)
            })?;
        Ok(list
            .volumes
            .unwrap_or_default()
            .into_iter()
            .map(|v| v.name)
            .collect())
    }

    /// Removes a volume by name; a missing one is already removed.
    pub(crate) async fn remove_volume(&self, volume: &str) -> Result<(), SandboxError> {
        match self.docker.remove_volume(volume, None).await {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) if status(&e) == Some(409) => Err(SandboxError::engine(
                format!("removing volume {volume} (a container still uses it)"),
                e,
            )),
            Err(e) => Err(SandboxError::engine(format!("removing volume {volume}"), e)),
        }
    }
}
