//! Shared setup of the sandbox tests: a real engine, a namespace of their own, and a guard that
//! removes every container and volume of that namespace when the test ends, pass or fail.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::io::Read;
use std::path::PathBuf;

use bollard::container::{Config, CreateContainerOptions, WaitContainerOptions};
use bollard::models::{HostConfig, Mount, MountTypeEnum};
use futures_util::StreamExt;
use roster_core::event::AgentSpec;
use roster_core::id::{AgentId, Entropy, TeamId};
use roster_core::name::{ImageRef, Name};
use roster_core::time::Timestamp;
use roster_sandbox::plan::{labels, plan, ContainerPlan, HostPaths};
use roster_sandbox::sweep::Sweep;
use roster_sandbox::uid::AgentUid;
use roster_sandbox::Engine;

/// Random hex from the OS.
pub fn hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .expect("/dev/urandom");
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

struct Urandom;

impl Entropy for Urandom {
    fn bytes10(&mut self) -> [u8; 10] {
        let mut out = [0u8; 10];
        std::fs::File::open("/dev/urandom")
            .and_then(|mut f| f.read_exact(&mut out))
            .expect("/dev/urandom");
        out
    }
}

fn now() -> Timestamp {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    Timestamp::from_millis(ms as i64)
}

/// A fresh agent id.
pub fn agent_id() -> AgentId {
    AgentId::mint(now(), &mut Urandom)
}

/// A static executable to bake and mount as `roster-agent` (any static binary will do here).
pub fn busybox() -> PathBuf {
    let p = PathBuf::from("/bin/busybox");
    assert!(
        p.exists(),
        "a static busybox is required: run scripts/setup"
    );
    p
}

/// The home disk of the tests' agents, in MiB (where their engine has disks).
pub const DISK_MIB: u32 = 64;

/// One test's world: an engine scoped to a namespace of its own, a scratch directory, and the
/// sweep of everything labelled with that namespace.
pub struct Ctx {
    pub engine: Engine,
    pub ns: Name,
    pub team: TeamId,
    // Dropped in this order: containers and volumes first, then the directory they mounted.
    pub sweep: Sweep,
    pub dir: tempfile::TempDir,
}

/// Connects to the engine — a test that needs Docker fails loudly without it, never skips.
pub async fn ctx() -> Ctx {
    let ns = Name::parse(&format!("t{}", hex(6))).unwrap();
    let engine = match Engine::connect(ns.clone()).await {
        Ok(e) => e,
        Err(e) => panic!("Docker engine required: run scripts/setup ({e})"),
    };
    let dir = tempfile::Builder::new()
        .prefix("roster-sandbox-test-")
        .tempdir_in("/tmp")
        .unwrap();
    Ctx {
        sweep: Sweep::new(format!("{}={}", labels::NS, ns)),
        engine,
        ns,
        team: TeamId::mint(now(), &mut Urandom),
        dir,
    }
}

impl Ctx {
    /// Gives new homes disks of their own, kept in the scratch directory (removed, and their
    /// loop devices detached, by the sweep).
    pub fn with_disks(mut self) -> Self {
        let homes = self.dir.path().join("homes");
        self.engine = self
            .engine
            .clone()
            .with_disks(roster_sandbox::disk::Disks::new(&homes));
        self.sweep.dir(homes);
        self
    }

    /// Makes sure the shared base image is there (built once per machine and input).
    pub async fn base(&self) {
        self.engine
            .ensure_base_image(&busybox(), &busybox())
            .await
            .expect("building the base image");
    }

    /// A plan for a fresh agent with `spec`, with its own gateway directory, and no home: what
    /// a refusal before anything is created needs (it runs as a uid no home was given).
    pub fn plan(&self, spec: &AgentSpec) -> (ContainerPlan, AgentId) {
        self.plan_as(
            agent_id(),
            spec,
            AgentUid::new(roster_sandbox::uid::FIRST).unwrap(),
        )
    }

    /// `agent`'s home, made ready by [`Engine::home`] (a new one of [`DISK_MIB`] where the
    /// engine has disks).
    pub async fn home(
        &self,
        agent: AgentId,
    ) -> Result<roster_sandbox::Home, roster_sandbox::SandboxError> {
        self.engine
            .home(&self.team, agent, &HashMap::new(), DISK_MIB)
            .await
    }

    /// A fresh agent with `spec`, its home ready ([`Engine::home`]), and its plan, as its own uid.
    pub async fn ready(&self, spec: &AgentSpec) -> (ContainerPlan, AgentId) {
        let agent = agent_id();
        let home = self.home(agent).await.expect("preparing the agent's home");
        self.plan_as(agent, spec, home.uid)
    }

    pub fn plan_as(
        &self,
        agent: AgentId,
        spec: &AgentSpec,
        uid: AgentUid,
    ) -> (ContainerPlan, AgentId) {
        let gw = self.dir.path().join(agent.to_string());
        std::fs::create_dir_all(&gw).unwrap();
        let paths = HostPaths {
            gateway_dir: gw,
            agent_binary: busybox(),
        };
        (
            plan(&self.ns, &self.team, agent, spec, &paths, uid).unwrap(),
            agent,
        )
    }

    /// A per-test image tag.
    pub fn tag(&self, what: &str) -> ImageRef {
        ImageRef::parse(&format!("roster-test/{}-{what}:1", self.ns)).unwrap()
    }
}

/// The names of the containers that carry every label of `labels` (`key` or `key=value`).
pub async fn labelled(labels: &[&str]) -> Vec<String> {
    let docker = bollard::Docker::connect_with_local_defaults().unwrap();
    let options = bollard::container::ListContainersOptions {
        all: true,
        filters: HashMap::from([(
            "label".to_string(),
            labels.iter().map(|l| l.to_string()).collect(),
        )]),
        ..Default::default()
    };
    docker
        .list_containers(Some(options))
        .await
        .unwrap()
        .into_iter()
        .flat_map(|c| c.names.unwrap_or_default())
        .collect()
}

pub fn sh(script: &str) -> Vec<String> {
    vec!["sh".into(), "-c".into(), script.into()]
}

/// Runs `script` as `user` in a throwaway container of the base image with `volume` at
/// `/home/agent`, bypassing every check of roster (what an older roster, or a crash, left);
/// its standard output.
pub async fn as_user(ns: &str, user: &str, volume: &str, script: &str) -> String {
    let docker = bollard::Docker::connect_with_local_defaults().unwrap();
    let name = format!("roster-{ns}-raw-{}", hex(4));
    let config = Config {
        image: Some(ImageRef::base().to_string()),
        user: Some(user.to_string()),
        cmd: Some(sh(script)),
        labels: Some(HashMap::from([(labels::NS.to_string(), ns.to_string())])),
        host_config: Some(HostConfig {
            mounts: Some(vec![Mount {
                target: Some("/home/agent".into()),
                source: Some(volume.to_string()),
                typ: Some(MountTypeEnum::VOLUME),
                // The engine would give an empty volume the image's owner of /home/agent.
                volume_options: Some(bollard::models::MountVolumeOptions {
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
    docker
        .create_container(Some(options), config)
        .await
        .unwrap();
    docker.start_container::<String>(&name, None).await.unwrap();
    let waited = docker
        .wait_container(
            &name,
            Some(WaitContainerOptions {
                condition: "not-running",
            }),
        )
        .next()
        .await;
    let logs: Vec<_> = docker
        .logs::<String>(
            &name,
            Some(bollard::container::LogsOptions {
                stdout: true,
                stderr: true,
                ..Default::default()
            }),
        )
        .collect()
        .await;
    let out: String = logs.into_iter().map(|l| l.unwrap().to_string()).collect();
    assert!(matches!(waited, Some(Ok(_))), "{script}: {waited:?} {out}");
    docker
        .remove_container(
            &name,
            Some(bollard::container::RemoveContainerOptions {
                force: true,
                ..Default::default()
            }),
        )
        .await
        .unwrap();
    out
}
