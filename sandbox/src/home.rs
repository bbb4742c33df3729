//! Agents' home volumes: their persistent memory.
//!
//! A home is a named volume (`roster-NS-AGENTID-home`) labelled like the agent's container. It
//! outlives the container — removal, recreation, daemon and engine restarts — and goes only with
//! [`Engine::remove_home`] (`roster purge`).
//!
//! A new volume's root belongs to root with mode 0755, so the agent (uid 1000) could not write
//! its own home. The base image solves that by itself: its `/home/agent` is owned by 1000 and the
//! engine copies that owner into the empty volume at the first mount. For any other image the
//! copy is off ([`crate::plan::copies_home`]) and the runtime prepares the new volume once: a
//! short-lived container of the base image — the runtime's, not the agent's — running as root
//! with only `CAP_CHOWN`, no network, a read-only root, and only the volume mounted, runs
//! `chown 1000:1000 /home/agent` and is removed.

use std::collections::HashMap;
use std::time::Duration;

use bollard::container::{Config, CreateContainerOptions, WaitContainerOptions};
use bollard::models::{HostConfig, Mount, MountTypeEnum, MountVolumeOptions};
use bollard::volume::{CreateVolumeOptions, ListVolumesOptions};
use futures_util::StreamExt;
use roster_core::id::AgentId;
use roster_core::name::ImageRef;

use crate::engine::Engine;
use crate::error::{is_not_found, status, SandboxError};
use crate::plan::{copies_home, labels, ContainerPlan, HOME};

/// How long the ownership preparation of a new home may take.
const PREP_TIMEOUT: Duration = Duration::from_secs(60);

/// The label on a home-preparation container, naming the volume it prepares.
pub const PREP_LABEL: &str = "roster.prep";

impl Engine {
    /// Makes sure the agent's home volume exists, writable by the agent; returns whether it was
    /// created now. The volume carries the plan's labels, so a reconcile or a test sweep finds
    /// it like the container.
    pub async fn ensure_home(&self, plan: &ContainerPlan) -> Result<bool, SandboxError> {
        let volume = &plan.home_volume;
        match self.docker.inspect_volume(volume).await {
            Ok(_) => return Ok(false),
            Err(e) if is_not_found(&e) => {}
            Err(e) => {
                return Err(SandboxError::engine(
                    format!("inspecting volume {volume}"),
                    e,
                ))
            }
        }
        let options = CreateVolumeOptions {
            name: volume.clone(),
            driver: "local".to_string(),
            driver_opts: HashMap::new(),
            labels: plan.config.labels.clone().unwrap_or_default(),
        };
        self.docker
            .create_volume(options)
            .await
            .map_err(|e| SandboxError::engine(format!("creating volume {volume}"), e))?;
        let image = plan.config.image.as_deref().unwrap_or_default();
        let copied = ImageRef::parse(image).is_ok_and(|i| copies_home(&i));
        if !copied {
            if let Err(e) = self.prepare_home(volume).await {
                // Without its owner the home is useless; the next attempt starts over.
                let _ = self.docker.remove_volume(volume, None).await;
                return Err(e);
            }
        }
        Ok(true)
    }

    /// Gives a new, empty home volume to the agent user.
    async fn prepare_home(&self, volume: &str) -> Result<(), SandboxError> {
        let failed = |why: String| SandboxError::HomePrep {
            volume: volume.to_string(),
            why,
        };
        let base = ImageRef::base();
        if !self.image_exists(&base).await? {
            return Err(SandboxError::ImageMissing {
                image: base.to_string(),
            });
        }
        let name = format!("{volume}-prep");
        let config = Config {
            image: Some(base.to_string()),
            user: Some("0:0".into()),
            cmd: Some(vec!["chown".into(), "1000:1000".into(), HOME.into()]),
            labels: Some(HashMap::from([
                (labels::NS.to_string(), self.ns.to_string()),
                (PREP_LABEL.to_string(), volume.to_string()),
            ])),
            network_disabled: Some(true),
            host_config: Some(HostConfig {
                cap_drop: Some(vec!["ALL".into()]),
                cap_add: Some(vec!["CHOWN".into()]),
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
            name: name.clone(),
            platform: None,
        };
        self.docker
            .create_container(Some(options), config)
            .await
            .map_err(|e| failed(format!("creating {name}: {e}")))?;
        let outcome = tokio::time::timeout(PREP_TIMEOUT, async {
            self.docker
                .start_container::<String>(&name, None)
                .await
                .map_err(|e| failed(format!("starting {name}: {e}")))?;
            let mut wait = self.docker.wait_container(
                &name,
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
                Some(Err(e)) => Err(failed(format!("waiting for {name}: {e}"))),
                None => Err(failed(format!("the engine did not report {name}'s exit"))),
            }
        })
        .await
        .unwrap_or_else(|_| {
            Err(SandboxError::Timeout {
                doing: format!("preparing home volume {volume}"),
                secs: PREP_TIMEOUT.as_secs(),
            })
        });
        self.remove_named(&name).await?;
        outcome
    }

    /// Whether the agent has a home volume.
    pub async fn home_exists(&self, agent: AgentId) -> Result<bool, SandboxError> {
        let volume = self.volume_name(agent);
        match self.docker.inspect_volume(&volume).await {
            Ok(_) => Ok(true),
            Err(e) if is_not_found(&e) => Ok(false),
            Err(e) => Err(SandboxError::engine(
                format!("inspecting volume {volume}"),
                e,
            )),
        }
    }

    /// Deletes the agent's home volume and everything in it (`roster purge`); a missing home is
    /// already deleted. Fails while a container still mounts it.
    pub async fn remove_home(&self, agent: AgentId) -> Result<(), SandboxError> {
        let volume = self.volume_name(agent);
        self.remove_volume(&volume).await
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
