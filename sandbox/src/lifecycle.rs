//! Creating, starting, stopping, removing and finding agent containers.
//!
//! `create` is where every refusal happens, before the engine is asked for anything: the final
//! configuration is checked ([`crate::policy::check_config`]), the runtime must exist, the image
//! must be on the engine (roster never pulls) and must not widen the sandbox
//! ([`crate::policy::check_image`]), and the home volume is made ready. The other operations are
//! idempotent where that is natural: starting a running container, stopping a stopped or missing
//! one, removing a missing one all succeed.

use std::collections::HashMap;
use std::time::Duration;

use bollard::container::{
    CreateContainerOptions, ListContainersOptions, RemoveContainerOptions, StartContainerOptions,
    StopContainerOptions,
};
use roster_core::event::AgentSpec;
use roster_core::id::AgentId;
use roster_core::name::ImageRef;

use crate::engine::Engine;
use crate::error::{is_not_found, status, SandboxError};
use crate::plan::{labels, ContainerPlan};
use crate::policy::{check_config, check_image};
use crate::state::{agent_of, parse_time, ContainerState, ContainerStatus, Found};

impl Engine {
    /// Creates an agent's container from its plan after every check, so that a container that
    /// exists is always a hardened one; returns the engine's id. Its home must be ready
    /// ([`Engine::home`]) and owned by the uid the plan runs as.
    pub async fn create(&self, plan: &ContainerPlan) -> Result<String, SandboxError> {
        let runtime = plan
            .config
            .host_config
            .as_ref()
            .and_then(|h| h.runtime.clone())
            .unwrap_or_default();
        self.require_runtime(&runtime).await?;
        check_config(plan)?;
        let image_text = plan.config.image.clone().unwrap_or_default();
        let image = ImageRef::parse(&image_text).map_err(|e| SandboxError::ImageRefused {
            image: image_text.clone(),
            why: e.to_string(),
        })?;
        self.admit_image(&image).await?;
        if let Some(h) = &plan.config.host_config {
            let cpu_millis = h.nano_cpus.unwrap_or(0) / 1_000_000;
            let memory = h.memory.unwrap_or(0);
            self.require_room(
                u64::try_from(cpu_millis).unwrap_or(0),
                u64::try_from(memory).unwrap_or(0),
            )
            .await?;
        }
        self.require_home(plan).await?;
        let options = CreateContainerOptions {
            name: plan.name.clone(),
            platform: None,
        };
        match self
            .docker
            .create_container(Some(options), plan.config.clone())
            .await
        {
            Ok(r) => Ok(r.id),
            Err(e) if status(&e) == Some(409) => Err(SandboxError::Exists {
                container: plan.name.clone(),
            }),
            Err(e) => Err(SandboxError::engine(format!("creating {}", plan.name), e)),
        }
    }

    /// Refuses a plan whose agent has no home volume or no uid, or another uid than the one the
    /// plan runs as: the engine would make a missing volume itself, root-owned. (That the home
    /// was given is [`Engine::home`]'s to make sure of.)
    async fn require_home(&self, plan: &ContainerPlan) -> Result<(), SandboxError> {
        let refuse = |why: String| SandboxError::ConfigRefused {
            container: plan.name.clone(),
            why,
        };
        let agent = agent_of(plan.config.labels.as_ref()).map_err(|e| refuse(e.to_string()))?;
        let uid = self.home_uid(agent).await?;
        let ready = uid.is_some() && self.home_exists(agent).await?;
        match uid {
            Some(uid) if ready && plan.config.user.as_deref() == Some(uid.user().as_str()) => {
                Ok(())
            }
            Some(uid) if ready => Err(refuse(format!(
                "its home belongs to uid {uid}, and the plan runs as {}",
                plan.config.user.as_deref().unwrap_or("the image's user")
            ))),
            _ => Err(refuse(format!(
                "the home {} is not ready (Engine::home makes it)",
                plan.home_volume
            ))),
        }
    }

    /// Fails unless an agent of `spec` could be created here: its runtime registered so that
    /// its limits hold, its image present and declaring nothing that widens a sandbox. Lets a
    /// hire be refused before it is recorded, rather than recorded and never started.
    ///
    /// Where homes get [disks](Engine::with_disks), a new one of `disk_mib` MiB must fit too.
    pub async fn admit(&self, spec: &AgentSpec, disk_mib: u32) -> Result<(), SandboxError> {
        if let Some(disks) = &self.disks {
            let reserve = crate::disk::RESERVE_BYTES >> 20;
            match disks.free_mib() {
                Ok(free) if free < u64::from(disk_mib) + reserve => {
                    return Err(SandboxError::TooBig {
                        what: format!("a home disk of {disk_mib} MiB, allocated whole"),
                        host: format!(
                            "{free} MiB free in {}, of which {reserve} MiB stay free for the runtime",
                            disks.dir().display()
                        ),
                    })
                }
                _ => {}
            }
        }
        self.require_runtime(spec.runtime.as_str()).await?;
        let r = &spec.resources;
        self.require_room(
            u64::from(r.cpu_millis),
            u64::from(r.memory_mib) * 1024 * 1024,
        )
        .await?;
        self.admit_image(&spec.image).await
    }

    /// Fails unless `image` is on the engine and declares nothing that widens a sandbox.
    pub async fn admit_image(&self, image: &ImageRef) -> Result<(), SandboxError> {
        match self.docker.inspect_image(image.as_str()).await {
            Ok(i) => check_image(image.as_str(), i.config.as_ref()),
            Err(e) if is_not_found(&e) => Err(SandboxError::ImageMissing {
                image: image.to_string(),
            }),
            Err(e) => Err(SandboxError::engine(format!("inspecting {image}"), e)),
        }
    }

    /// Starts an agent's container; a running one is left as it is.
    pub async fn start(&self, agent: AgentId) -> Result<(), SandboxError> {
        let name = self.container_name(agent);
        match self
            .docker
            .start_container(&name, None::<StartContainerOptions<String>>)
            .await
        {
            Ok(()) => Ok(()),
            Err(e) if status(&e) == Some(304) => Ok(()),
            Err(e) if is_not_found(&e) => Err(SandboxError::NoContainer { container: name }),
            Err(e) => Err(SandboxError::engine(format!("starting {name}"), e)),
        }
    }

    /// Stops an agent's container: SIGTERM, then SIGKILL once `grace` has passed. A stopped or
    /// missing container is already what the caller wants.
    pub async fn stop(&self, agent: AgentId, grace: Duration) -> Result<(), SandboxError> {
        let name = self.container_name(agent);
        let t = i64::try_from(grace.as_secs()).unwrap_or(i64::MAX);
        match self
            .docker
            .stop_container(&name, Some(StopContainerOptions { t }))
            .await
        {
            Ok(()) => Ok(()),
            Err(e) if matches!(status(&e), Some(304) | Some(404)) => Ok(()),
            Err(e) => Err(SandboxError::engine(format!("stopping {name}"), e)),
        }
    }

    /// Removes an agent's container, killing it if it runs; its home volume stays (it is the
    /// agent's memory until a purge). A missing container is already removed.
    pub async fn remove(&self, agent: AgentId) -> Result<(), SandboxError> {
        let name = self.container_name(agent);
        self.remove_named(&name).await?;
        // A preparation of its home left over goes too (a retired agent's is not left behind):
        // meanwhile the agent has no uid volume, so the next `home` gives its home again.
        self.remove_named(&format!("{}-prep", self.volume_name(agent)))
            .await
    }

    /// Removes a container of this namespace by name — for what a reconcile finds that names no
    /// agent ([`Found::agent`] is an error). A container that does not carry this namespace's
    /// label is refused: the engine may run things that are not roster's.
    pub async fn remove_container(&self, name: &str) -> Result<(), SandboxError> {
        let labels = match self.docker.inspect_container(name, None).await {
            Ok(c) => c.config.and_then(|c| c.labels).unwrap_or_default(),
            Err(e) if is_not_found(&e) => return Ok(()),
            Err(e) => return Err(SandboxError::engine(format!("inspecting {name}"), e)),
        };
        if labels.get(labels::NS) != Some(&self.ns.to_string()) {
            return Err(SandboxError::NotOurs {
                container: name.to_string(),
                ns: self.ns.to_string(),
            });
        }
        self.remove_named(name).await
    }

    /// Removes a container of this engine by name (force, volumes kept).
    pub(crate) async fn remove_named(&self, name: &str) -> Result<(), SandboxError> {
        let options = RemoveContainerOptions {
            force: true,
            v: false,
            link: false,
        };
        match self.docker.remove_container(name, Some(options)).await {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            // "removal already in progress" — someone else is removing it.
            Err(e) if status(&e) == Some(409) && e.to_string().contains("in progress") => Ok(()),
            Err(e) => Err(SandboxError::engine(format!("removing {name}"), e)),
        }
    }

    /// The state of an agent's container, or `None` when it has none.
    pub async fn inspect(&self, agent: AgentId) -> Result<Option<ContainerState>, SandboxError> {
        let name = self.container_name(agent);
        let c = match self.docker.inspect_container(&name, None).await {
            Ok(c) => c,
            Err(e) if is_not_found(&e) => return Ok(None),
            Err(e) => return Err(SandboxError::engine(format!("inspecting {name}"), e)),
        };
        let s = c.state.unwrap_or_default();
        Ok(Some(ContainerState {
            id: c.id.unwrap_or_default(),
            running: s.running.unwrap_or(false),
            status: ContainerStatus::from_engine(s.status),
            started_at: s.started_at.as_deref().and_then(parse_time),
            finished_at: s.finished_at.as_deref().and_then(parse_time),
            exit_code: s
                .exit_code
                .filter(|_| s.finished_at.as_deref().and_then(parse_time).is_some()),
            oom_killed: s.oom_killed.unwrap_or(false),
            runtime: c.host_config.and_then(|h| h.runtime).unwrap_or_default(),
            image: c
                .config
                .as_ref()
                .and_then(|c| c.image.clone())
                .unwrap_or_default(),
            user: c.config.and_then(|c| c.user).unwrap_or_default(),
        }))
    }

    /// Every container labelled with this namespace, running or not, for a reconcile: the agent
    /// each belongs to comes from its label, and a label that names no agent is reported in
    /// [`Found::agent`], never a panic.
    /// Home-preparation containers are not listed: they are the homes' ([`Engine::home`]).
    pub async fn list(&self) -> Result<Vec<Found>, SandboxError> {
        let all = self
            .list_labelled(&format!("{}={}", labels::NS, self.ns))
            .await?;
        Ok(all.into_iter().filter(|f| !f.prep).collect())
    }

    /// Containers carrying `label` (`key=value`), whatever their namespace label says.
    pub(crate) async fn list_labelled(&self, label: &str) -> Result<Vec<Found>, SandboxError> {
        let options = ListContainersOptions {
            all: true,
            filters: HashMap::from([("label".to_string(), vec![label.to_string()])]),
            ..Default::default()
        };
        let list = self
            .docker
            .list_containers(Some(options))
            .await
            .map_err(|e| SandboxError::engine(format!("listing containers labelled {label}"), e))?;
        Ok(list
            .into_iter()
            .map(|c| Found {
                name: c
                    .names
                    .and_then(|n| n.into_iter().next())
                    .map(|n| n.trim_start_matches('/').to_string())
                    .unwrap_or_default(),
                id: c.id.unwrap_or_default(),
                agent: agent_of(c.labels.as_ref()),
                status: ContainerStatus::from_text(c.state.as_deref().unwrap_or_default()),
                image: c.image.unwrap_or_default(),
                prep: c
                    .labels
                    .as_ref()
                    .is_some_and(|l| l.contains_key(crate::home::PREP_LABEL)),
            })
            .collect())
    }
}
