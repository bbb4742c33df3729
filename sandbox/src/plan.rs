//! One agent's container, as the engine will be told to make it.
//!
//! Everything here is a function of the agent's recorded [`AgentSpec`] and a few host paths the
//! runtime owns. The spec's types leave nothing to widen — no field for a host path, a device, a
//! capability or privileged mode exists — and the host paths are checked here, so a plan can only
//! ever mount the agent's own home volume, its own gateway directory and the read-only
//! `roster-agent` binary. Every default of DESIGN.md is on without configuration: read-only root,
//! all capabilities dropped, `no-new-privileges`, the engine's default seccomp profile, a non-root
//! user, a pids limit, memory equal to memory+swap, a CPU quota, no network, a sized tmpfs at
//! `/tmp`, an init process, no devices, private IPC and PID namespaces.

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};

use bollard::container::Config;
use bollard::models::{
    HostConfig, HostConfigLogConfig, Mount, MountTypeEnum, MountVolumeOptions, ResourcesUlimits,
};
use roster_core::event::{AgentSpec, NetworkPolicy, RuntimeKind};
use roster_core::id::AgentId;
use roster_core::name::Name;

use crate::uid::AgentUid;

/// Where an agent's home volume is mounted.
pub const HOME: &str = "/home/agent";
/// Where an agent's gateway directory is mounted; its socket is `gateway.sock` inside.
pub const GATEWAY_DIR: &str = "/run/roster";
/// Where the `roster-agent` client is mounted, read-only, in any image.
pub const AGENT_BINARY: &str = "/usr/local/bin/roster-agent";
/// The host limits of one agent's container: under runc, the agent's own; under gVisor, the
/// agent's plus room for the sandbox's user-space kernel, which lives in the same cgroup.
///
/// Measured here (gVisor 2022-12, cgroup v1): an idle sandbox holds 53 host threads and 12 MiB;
/// with 60 sleeping processes inside, 550 threads and 65 MiB. So the room is 64 threads plus 16
/// per allowed process, and 64 MiB plus 1 MiB per allowed process: a fork bomb then meets the
/// agent's own process limit (RLIMIT_NPROC, enforced inside) before the host's, and the memory
/// the agent can use stays bounded on the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostLimits {
    /// Memory (and memory+swap) in MiB.
    pub memory_mib: i64,
    /// Processes and threads.
    pub pids: i64,
}

impl HostLimits {
    /// The host limits for `spec`.
    pub fn of(spec: &AgentSpec) -> Self {
        let r = &spec.resources;
        let (memory, pids) = (i64::from(r.memory_mib), i64::from(r.pids));
        match spec.runtime {
            RuntimeKind::Runc => Self {
                memory_mib: memory,
                pids,
            },
            RuntimeKind::Runsc => Self {
                memory_mib: memory + 64 + pids,
                pids: 64 + 16 * pids,
            },
        }
    }
}
/// Seconds between SIGTERM and SIGKILL when a container is stopped.
pub const STOP_GRACE_SECS: i64 = 10;

/// What the engine keeps of a container's output (`roster logs`): files of at most this size
/// (the engine's notation)...
pub const LOG_MAX_SIZE: &str = "10m";
/// ...and at most this many of them, the oldest dropped: 30 MiB an agent, whatever it prints.
pub const LOG_MAX_FILES: &str = "3";

/// Labels every container of roster carries, so that a reconcile finds exactly its own.
pub mod labels {
    /// The runtime's namespace.
    pub const NS: &str = "roster.ns";
    /// The agent's id.
    pub const AGENT: &str = "roster.agent";
    /// The agent's team id.
    pub const TEAM: &str = "roster.team";
}

/// Why a container cannot be planned. Nothing has been created when this is returned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PlanError {
    /// A host path the runtime passed is not one an agent may see.
    #[error("refusing to mount {path}: {why}")]
    HostPath {
        /// The path.
        path: PathBuf,
        /// What is wrong with it.
        why: &'static str,
    },
}

/// The host paths the runtime owns for one agent.
#[derive(Debug, Clone)]
pub struct HostPaths {
    /// The directory holding this agent's gateway socket (and nothing else).
    pub gateway_dir: PathBuf,
    /// The static `roster-agent` binary.
    pub agent_binary: PathBuf,
}

/// One agent's container: its name, its home volume and the configuration to create it with.
#[derive(Debug, Clone)]
pub struct ContainerPlan {
    /// `roster-NS-AGENTID`.
    pub name: String,
    /// The named volume mounted at [`HOME`]: `roster-NS-AGENTID-home`.
    pub home_volume: String,
    /// What the engine is asked to create.
    pub config: Config<String>,
}

/// The container name of `agent` in namespace `ns`.
pub fn container_name(ns: &Name, agent: AgentId) -> String {
    format!("roster-{ns}-{agent}")
}

/// The home volume name of `agent` in namespace `ns`.
pub fn volume_name(ns: &Name, agent: AgentId) -> String {
    format!("roster-{ns}-{agent}-home")
}

/// The uid volume name of `agent` in namespace `ns`: an empty volume whose `roster.uid` label
/// records the agent's host uid ([`crate::uid`]).
pub fn uid_volume_name(ns: &Name, agent: AgentId) -> String {
    format!("roster-{ns}-{agent}-uid")
}

/// The labels of everything made for `agent` (of `team`) in namespace `ns`: its container, its
/// home and its uid volume.
pub fn agent_labels(
    ns: &Name,
    team: &roster_core::id::TeamId,
    agent: AgentId,
) -> HashMap<String, String> {
    HashMap::from([
        (labels::NS.to_string(), ns.to_string()),
        (labels::AGENT.to_string(), agent.to_string()),
        (labels::TEAM.to_string(), team.to_string()),
    ])
}

/// A host path the plan may bind: absolute, already normal (no `.`, `..`), not the root, and
/// nowhere near the engine's socket.
pub(crate) fn check_host_path(path: &Path) -> Result<(), PlanError> {
    let refuse = |why| {
        Err(PlanError::HostPath {
            path: path.to_owned(),
            why,
        })
    };
    if !path.is_absolute() {
        return refuse("it is not absolute");
    }
    if path
        .components()
        .any(|c| matches!(c, Component::CurDir | Component::ParentDir))
    {
        return refuse("it contains `.` or `..`");
    }
    if path.parent().is_none() {
        return refuse("it is the root directory");
    }
    let text = path.to_string_lossy();
    if text.contains("docker.sock") || text.contains("containerd") || path.starts_with("/var/run") {
        return refuse("it is or holds a container engine's socket");
    }
    if ["/proc", "/sys", "/dev", "/etc", "/boot"]
        .iter()
        .any(|p| path.starts_with(p))
    {
        return refuse("it is a system directory");
    }
    Ok(())
}

/// A mount of the named volume `source` at `target`, never filled by the engine with the
/// image's directory there (whose owner is not the agent's uid: homes are prepared by the
/// runtime).
pub(crate) fn volume_mount(source: &str, target: &str, read_only: bool) -> Mount {
    Mount {
        target: Some(target.into()),
        source: Some(source.to_string()),
        typ: Some(MountTypeEnum::VOLUME),
        read_only: Some(read_only),
        volume_options: Some(MountVolumeOptions {
            no_copy: Some(true),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Plans the container of `agent` (of `team`, in namespace `ns`) from its recorded `spec`, to run
/// as `uid`, the agent's own host uid, which owns its home ([`Engine::home`](crate::Engine::home)
/// gives both).
pub fn plan(
    ns: &Name,
    team: &roster_core::id::TeamId,
    agent: AgentId,
    spec: &AgentSpec,
    paths: &HostPaths,
    uid: AgentUid,
) -> Result<ContainerPlan, PlanError> {
    check_host_path(&paths.gateway_dir)?;
    check_host_path(&paths.agent_binary)?;
    let name = container_name(ns, agent);
    let home_volume = volume_name(ns, agent);
    let r = &spec.resources;
    let host = HostLimits::of(spec);
    let memory = host.memory_mib * 1024 * 1024;
    let mounts = vec![
        volume_mount(&home_volume, HOME, false),
        // Read-only: connecting to a socket needs no write access to its file system, and an
        // agent must not be able to replace its socket (or fill the host's disk) through it.
        Mount {
            target: Some(GATEWAY_DIR.into()),
            source: Some(paths.gateway_dir.to_string_lossy().into_owned()),
            typ: Some(MountTypeEnum::BIND),
            read_only: Some(true),
            ..Default::default()
        },
        Mount {
            target: Some(AGENT_BINARY.into()),
            source: Some(paths.agent_binary.to_string_lossy().into_owned()),
            typ: Some(MountTypeEnum::BIND),
            read_only: Some(true),
            ..Default::default()
        },
    ];
    let network = match spec.network {
        NetworkPolicy::None => "none",
    };
    let runtime = spec.runtime.as_str();
    // The agent's own process limit is also its RLIMIT_NPROC, which counts the processes of its
    // uid: the agent's alone, as that uid is its own. Under gVisor it is what stops a fork bomb
    // inside, before the host's pids limit (which also counts the sandbox's user-space kernel,
    // see `HostLimits`) is met.
    let ulimits = Some(vec![ResourcesUlimits {
        name: Some("nproc".into()),
        soft: Some(i64::from(r.pids)),
        hard: Some(i64::from(r.pids)),
    }]);
    let host_config = HostConfig {
        readonly_rootfs: Some(true),
        cap_drop: Some(vec!["ALL".into()]),
        cap_add: Some(Vec::new()),
        // The engine's default seccomp profile applies unless it is overridden; it never is.
        security_opt: Some(vec!["no-new-privileges:true".into()]),
        privileged: Some(false),
        devices: Some(Vec::new()),
        pids_limit: Some(host.pids),
        ulimits,
        memory: Some(memory),
        memory_swap: Some(memory),
        nano_cpus: Some(i64::from(r.cpu_millis) * 1_000_000),
        network_mode: Some(network.into()),
        ipc_mode: Some("private".into()),
        pid_mode: Some(String::new()),
        tmpfs: Some(HashMap::from([(
            "/tmp".to_string(),
            format!("rw,noexec,nosuid,nodev,size={}m,mode=1777", r.tmpfs_mib),
        )])),
        init: Some(true),
        mounts: Some(mounts),
        runtime: Some(runtime.into()),
        // Restarts are the runtime's decision (with backoff, recorded), never the engine's.
        auto_remove: Some(false),
        // Its output is the engine's to keep, on the host's disk: bounded, rotated.
        log_config: Some(HostConfigLogConfig {
            typ: Some("json-file".into()),
            config: Some(HashMap::from([
                ("max-size".to_string(), LOG_MAX_SIZE.to_string()),
                ("max-file".to_string(), LOG_MAX_FILES.to_string()),
            ])),
        }),
        ..Default::default()
    };
    let labels = agent_labels(ns, team, agent);
    let config = Config {
        image: Some(spec.image.to_string()),
        user: Some(uid.user()),
        working_dir: Some(HOME.into()),
        env: Some(vec![
            format!("HOME={HOME}"),
            // No account of the image names the agent's uid: its name is said here.
            "USER=agent".to_string(),
            "LOGNAME=agent".to_string(),
            format!("ROSTER_AGENT_ID={agent}"),
            format!("ROSTER_GATEWAY={GATEWAY_DIR}/gateway.sock"),
        ]),
        labels: Some(labels),
        network_disabled: Some(true),
        // SIGTERM whatever the image says, then SIGKILL after the grace period.
        stop_signal: Some("SIGTERM".into()),
        stop_timeout: Some(STOP_GRACE_SECS),
        host_config: Some(host_config),
        ..Default::default()
    };
    Ok(ContainerPlan {
        name,
        home_volume,
        config,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use roster_core::id::{CountingEntropy, TeamId};
    use roster_core::time::Timestamp;

    fn uid() -> AgentUid {
        AgentUid::new(crate::uid::FIRST + 7).unwrap()
    }

    fn fixture(runtime: RuntimeKind) -> (ContainerPlan, AgentId) {
        let mut e = CountingEntropy::new(1);
        let t = Timestamp::from_millis(1_700_000_000_000);
        let team = TeamId::mint(t, &mut e);
        let agent = AgentId::mint(t, &mut e);
        let mut spec = AgentSpec::base();
        spec.runtime = runtime;
        let paths = HostPaths {
            gateway_dir: PathBuf::from("/var/lib/roster/gateways/a1"),
            agent_binary: PathBuf::from("/usr/lib/roster/roster-agent"),
        };
        let ns = Name::parse("roster").unwrap();
        (
            plan(&ns, &team, agent, &spec, &paths, uid()).unwrap(),
            agent,
        )
    }

    #[test]
    fn every_hardening_default_is_on() {
        let (p, _) = fixture(RuntimeKind::Runc);
        let h = p.config.host_config.as_ref().unwrap();
        assert_eq!(h.readonly_rootfs, Some(true));
        assert_eq!(h.cap_drop.as_deref(), Some(&["ALL".to_string()][..]));
        assert_eq!(h.cap_add.as_deref(), Some(&[][..]));
        assert_eq!(
            h.security_opt.as_deref(),
            Some(&["no-new-privileges:true".to_string()][..])
        );
        assert!(
            !h.security_opt
                .iter()
                .flatten()
                .any(|o| o.contains("seccomp") || o.contains("apparmor")),
            "the default seccomp and AppArmor profiles stay on"
        );
        assert_eq!(h.privileged, Some(false));
        assert_eq!(h.devices.as_deref(), Some(&[][..]));
        assert_eq!(h.pids_limit, Some(128));
        assert_eq!(h.memory, Some(256 * 1024 * 1024));
        assert_eq!(h.memory_swap, h.memory, "no swap beyond the memory limit");
        assert_eq!(h.nano_cpus, Some(1_000_000_000));
        assert_eq!(h.network_mode.as_deref(), Some("none"));
        assert_eq!(p.config.network_disabled, Some(true));
        assert_eq!(h.ipc_mode.as_deref(), Some("private"));
        assert_eq!(
            h.pid_mode.as_deref(),
            Some(""),
            "not the host's PID namespace"
        );
        assert_eq!(h.userns_mode, None, "not the host's user namespace");
        assert_eq!(h.init, Some(true));
        assert_eq!(h.runtime.as_deref(), Some("runc"));
        assert_eq!(
            h.restart_policy, None,
            "the engine never restarts on its own"
        );
        let tmp = h.tmpfs.as_ref().unwrap().get("/tmp").unwrap();
        assert!(
            tmp.contains("size=64m") && tmp.contains("noexec") && tmp.contains("nosuid"),
            "{tmp}"
        );
        assert_eq!(
            p.config.user.as_deref(),
            Some("1879048199:1879048199"),
            "the agent's own uid and gid"
        );
    }

    #[test]
    fn only_its_own_home_gateway_and_the_client_are_mounted() {
        let (p, agent) = fixture(RuntimeKind::Runc);
        let mounts = p.config.host_config.unwrap().mounts.unwrap();
        let seen: Vec<(String, String, bool)> = mounts
            .iter()
            .map(|m| {
                (
                    m.target.clone().unwrap(),
                    m.source.clone().unwrap(),
                    m.read_only.unwrap(),
                )
            })
            .collect();
        assert_eq!(
            seen,
            vec![
                (HOME.into(), format!("roster-roster-{agent}-home"), false),
                (
                    GATEWAY_DIR.into(),
                    "/var/lib/roster/gateways/a1".into(),
                    true
                ),
                (
                    AGENT_BINARY.into(),
                    "/usr/lib/roster/roster-agent".into(),
                    true
                ),
            ]
        );
        assert_eq!(mounts[0].typ, Some(MountTypeEnum::VOLUME));
        assert!(mounts
            .iter()
            .all(|m| !m.source.as_deref().unwrap_or("").contains("docker.sock")));
        assert_eq!(p.name, format!("roster-roster-{agent}"));
        assert_eq!(
            p.config.labels.unwrap().get(labels::AGENT),
            Some(&agent.to_string())
        );
    }

    #[test]
    fn no_image_fills_a_new_home() {
        let (p, _) = fixture(RuntimeKind::Runc);
        let mounts = p
            .config
            .host_config
            .as_ref()
            .unwrap()
            .mounts
            .clone()
            .unwrap();
        assert_eq!(mounts[0].target.as_deref(), Some(HOME));
        assert_eq!(
            mounts[0].volume_options.as_ref().unwrap().no_copy,
            Some(true),
            "the image's /home/agent belongs to another uid"
        );
        assert_eq!(p.config.stop_signal.as_deref(), Some("SIGTERM"));
    }

    #[test]
    fn gvisor_is_chosen_per_agent() {
        let (p, _) = fixture(RuntimeKind::Runsc);
        let h = p.config.host_config.unwrap();
        assert_eq!(h.runtime.as_deref(), Some("runsc"));
        let nproc = &h.ulimits.as_ref().unwrap()[0];
        assert_eq!(nproc.name.as_deref(), Some("nproc"));
        assert_eq!((nproc.soft, nproc.hard), (Some(128), Some(128)));
        assert_eq!(
            h.pids_limit,
            Some(64 + 16 * 128),
            "the host bounds the sandbox, with room for gVisor's own threads"
        );
        assert_eq!(h.memory, Some((256 + 64 + 128) * 1024 * 1024));
        assert_eq!(h.memory_swap, h.memory);
        let (runc, _) = fixture(RuntimeKind::Runc);
        let h = runc.config.host_config.unwrap();
        assert_eq!(
            h.ulimits.as_ref().unwrap()[0].hard,
            Some(128),
            "RLIMIT_NPROC counts the agent's own uid only, under runc too"
        );
        assert_eq!(h.pids_limit, Some(128));
    }

    #[test]
    fn host_paths_an_agent_must_not_see_are_refused() {
        let mut e = CountingEntropy::new(1);
        let t = Timestamp::from_millis(1);
        let team = TeamId::mint(t, &mut e);
        let agent = AgentId::mint(t, &mut e);
        let ns = Name::parse("roster").unwrap();
        for bad in [
            "/",
            "relative/dir",
            "/var/run/docker.sock",
            "/run/docker.sock",
            "/srv/x/../../etc",
            "/proc/1/root",
            "/etc",
            "/run/containerd",
        ] {
            let paths = HostPaths {
                gateway_dir: PathBuf::from(bad),
                agent_binary: PathBuf::from("/usr/lib/roster/roster-agent"),
            };
            let err = plan(&ns, &team, agent, &AgentSpec::base(), &paths, uid()).unwrap_err();
            assert!(
                err.to_string().starts_with("refusing to mount"),
                "{bad}: {err}"
            );
        }
    }
}
