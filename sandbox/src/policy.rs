//! The last checks before the engine is asked to create an agent's container.
//!
//! [`crate::plan::plan`] already makes only hardened configurations, and the spec types have no
//! field that could widen one. These checks are the second line: [`check_config`] re-reads the
//! final configuration and refuses anything but exactly the three mounts of a plan and the
//! hardening flags, so a future edit of `plan.rs` that widens the sandbox fails loudly; and
//! [`check_image`] refuses images that would widen it from their side — a `VOLUME` (the engine
//! would add an anonymous volume nobody manages) or a `roster.*` label (which would pose as the
//! runtime's bookkeeping).

use std::collections::HashMap;
use std::path::Path;

use bollard::models::{ImageConfig, MountTypeEnum};

use crate::error::SandboxError;
use crate::plan::{check_host_path, ContainerPlan, AGENT_BINARY, GATEWAY_DIR, HOME};

/// Refuses a container configuration that is not exactly a hardened plan: three mounts (the
/// agent's own home volume, its gateway directory, the read-only client), no binds, no anonymous
/// volumes, no devices, no added capability, no privileged mode, no host namespace, no network.
pub fn check_config(plan: &ContainerPlan) -> Result<(), SandboxError> {
    let refuse = |why: String| {
        Err(SandboxError::ConfigRefused {
            container: plan.name.clone(),
            why,
        })
    };
    let c = &plan.config;
    let Some(h) = &c.host_config else {
        return refuse("it has no host configuration".into());
    };
    let mounts = h.mounts.as_deref().unwrap_or_default();
    let want = [
        (HOME, MountTypeEnum::VOLUME, false),
        (GATEWAY_DIR, MountTypeEnum::BIND, true),
        (AGENT_BINARY, MountTypeEnum::BIND, true),
    ];
    if mounts.len() != want.len() {
        return refuse(format!("it has {} mounts, not exactly 3", mounts.len()));
    }
    for (m, (target, typ, ro)) in mounts.iter().zip(want) {
        if m.target.as_deref() != Some(target) || m.typ != Some(typ) {
            return refuse(format!("unexpected mount {:?} at {:?}", m.typ, m.target));
        }
        if m.read_only.unwrap_or(false) != ro {
            return refuse(format!("mount {target} has the wrong read-only flag"));
        }
        let source = m.source.as_deref().unwrap_or_default();
        match typ {
            MountTypeEnum::VOLUME if source != plan.home_volume => {
                return refuse(format!("{HOME} mounts volume {source:?}, not its own home"));
            }
            MountTypeEnum::BIND => {
                if let Err(e) = check_host_path(Path::new(source)) {
                    return refuse(e.to_string());
                }
                if m.bind_options
                    .as_ref()
                    .and_then(|b| b.propagation)
                    .is_some()
                {
                    return refuse(format!("mount {target} sets a propagation mode"));
                }
            }
            _ => {}
        }
    }
    let nonempty = |v: &Option<Vec<String>>| v.as_ref().is_some_and(|v| !v.is_empty());
    let host_ns = |v: &Option<String>| v.as_deref().is_some_and(|v| v.starts_with("host"));
    let widening = [
        (nonempty(&h.binds), "it has bind mounts outside the plan"),
        (
            nonempty(&h.group_add),
            "it adds groups (gateway sockets are their agents' groups')",
        ),
        (
            c.volumes.as_ref().is_some_and(|v| !v.is_empty()),
            "it declares anonymous volumes",
        ),
        (
            nonempty(&h.volumes_from),
            "it mounts another container's volumes",
        ),
        (
            h.devices.as_ref().is_some_and(|d| !d.is_empty())
                || h.device_requests.as_ref().is_some_and(|d| !d.is_empty())
                || nonempty(&h.device_cgroup_rules),
            "it gives access to devices",
        ),
        (
            h.privileged != Some(false),
            "it is not explicitly unprivileged",
        ),
        (nonempty(&h.cap_add), "it adds capabilities"),
        (
            h.cap_drop.as_deref() != Some(&["ALL".to_string()][..]),
            "it does not drop all capabilities",
        ),
        (
            h.security_opt.as_deref() != Some(&["no-new-privileges:true".to_string()][..]),
            "its security options are not exactly no-new-privileges",
        ),
        (
            h.readonly_rootfs != Some(true),
            "its root filesystem is writable",
        ),
        (
            h.network_mode.as_deref() != Some("none") || c.network_disabled != Some(true),
            "it has a network",
        ),
        (
            host_ns(&h.pid_mode)
                || host_ns(&h.ipc_mode)
                || host_ns(&h.uts_mode)
                || host_ns(&h.userns_mode)
                || host_ns(&h.cgroupns_mode.map(|m| m.to_string())),
            "it shares a host namespace",
        ),
        (
            h.pids_limit.is_none_or(|p| p <= 0),
            "it has no process limit",
        ),
        (
            h.memory.is_none_or(|m| m <= 0) || h.memory_swap != h.memory,
            "its memory (and memory+swap) is not limited",
        ),
        (
            h.oom_kill_disable == Some(true),
            "it disables the OOM killer",
        ),
        (h.init != Some(true), "it has no init process"),
        (
            h.log_config.as_ref().is_none_or(|l| {
                l.typ.as_deref() != Some("json-file")
                    || l.config
                        .as_ref()
                        .is_none_or(|c| !c.contains_key("max-size") || !c.contains_key("max-file"))
            }),
            "its output is not kept bounded (json-file with max-size and max-file)",
        ),
        (
            h.tmpfs
                .as_ref()
                .is_some_and(|t| t.keys().any(|k| k != "/tmp")),
            "it has a tmpfs other than /tmp",
        ),
        (
            h.port_bindings.as_ref().is_some_and(|p| !p.is_empty())
                || h.publish_all_ports == Some(true),
            "it publishes ports",
        ),
        (
            nonempty(&h.extra_hosts) || nonempty(&h.links),
            "it links to other hosts",
        ),
        (
            h.sysctls.as_ref().is_some_and(|s| !s.is_empty()),
            "it sets kernel parameters",
        ),
        (
            h.ulimits.as_ref().is_some_and(|u| {
                u.iter().any(|l| {
                    l.name.as_deref() != Some("nproc")
                        || l.hard.is_none_or(|n| n <= 0 || Some(n) > h.pids_limit)
                        || l.soft > l.hard
                })
            }),
            "its resource limits are not just the process limit",
        ),
        (
            !matches!(h.runtime.as_deref(), Some("runc") | Some("runsc")),
            "its runtime is neither runc nor runsc",
        ),
        (
            c.user.as_deref().is_none_or(|u| {
                u.split_once(':').is_none_or(|(uid, gid)| {
                    uid != gid || crate::uid::AgentUid::parse(uid).is_none()
                })
            }),
            "it does not run as an agent's own host uid (never root, nor a host account)",
        ),
    ];
    match widening.iter().find(|(bad, _)| *bad) {
        Some((_, why)) => refuse((*why).to_string()),
        None => Ok(()),
    }
}

/// Refuses an image that declares something widening an agent's sandbox: a `VOLUME` (an
/// anonymous volume outside the plan) or a label in the runtime's `roster.` namespace (other than
/// the base image's own `roster.base.` labels).
pub fn check_image(image: &str, config: Option<&ImageConfig>) -> Result<(), SandboxError> {
    let refuse = |why: String| {
        Err(SandboxError::ImageRefused {
            image: image.to_string(),
            why,
        })
    };
    let Some(config) = config else {
        return Ok(());
    };
    if let Some(volumes) = config.volumes.as_ref().filter(|v| !v.is_empty()) {
        let mut paths: Vec<&str> = volumes.keys().map(String::as_str).collect();
        paths.sort_unstable();
        return refuse(format!(
            "it declares VOLUME {}, which the engine would fill with an anonymous volume outside \
             the agent's sandbox",
            paths.join(", ")
        ));
    }
    let empty = HashMap::new();
    let mut keys: Vec<&String> = config
        .labels
        .as_ref()
        .unwrap_or(&empty)
        .keys()
        .filter(|k| k.starts_with("roster.") && !k.starts_with("roster.base."))
        .collect();
    keys.sort_unstable();
    if let Some(k) = keys.first() {
        return refuse(format!(
            "it carries the label {k}, which only the runtime sets"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{plan, HostPaths};
    use bollard::models::{HostConfig, Mount};
    use roster_core::event::AgentSpec;
    use roster_core::id::{AgentId, CountingEntropy, TeamId};
    use roster_core::name::Name;
    use roster_core::time::Timestamp;
    use std::path::PathBuf;

    fn fixture() -> ContainerPlan {
        fixture_on(roster_core::event::RuntimeKind::Runc)
    }

    fn fixture_on(runtime: roster_core::event::RuntimeKind) -> ContainerPlan {
        let mut spec = AgentSpec::base();
        spec.runtime = runtime;
        let mut e = CountingEntropy::new(1);
        let t = Timestamp::from_millis(1_700_000_000_000);
        let paths = HostPaths {
            gateway_dir: PathBuf::from("/srv/roster/gw/a"),
            agent_binary: PathBuf::from("/srv/roster/roster-agent"),
        };
        plan(
            &Name::parse("roster").unwrap(),
            &TeamId::mint(t, &mut e),
            AgentId::mint(t, &mut e),
            &spec,
            &paths,
            crate::uid::AgentUid::new(crate::uid::FIRST).unwrap(),
        )
        .unwrap()
    }

    fn refused(edit: impl FnOnce(&mut ContainerPlan)) -> String {
        let mut p = fixture();
        edit(&mut p);
        match check_config(&p) {
            Err(SandboxError::ConfigRefused { why, .. }) => why,
            other => panic!("not refused: {other:?}"),
        }
    }

    fn host(p: &mut ContainerPlan) -> &mut HostConfig {
        p.config.host_config.as_mut().unwrap()
    }

    #[test]
    fn a_plan_passes() {
        check_config(&fixture()).unwrap();
        check_config(&fixture_on(roster_core::event::RuntimeKind::Runsc)).unwrap();
    }

    #[test]
    fn an_extra_or_changed_mount_is_refused() {
        let sock = Mount {
            target: Some("/var/run/docker.sock".into()),
            source: Some("/var/run/docker.sock".into()),
            typ: Some(MountTypeEnum::BIND),
            ..Default::default()
        };
        let s = sock.clone();
        assert!(refused(|p| host(p).mounts.as_mut().unwrap().push(s)).contains("not exactly 3"));
        let s = sock.clone();
        assert!(refused(|p| host(p).mounts.as_mut().unwrap()[1] = s).contains("unexpected mount"));
        assert!(refused(|p| {
            host(p).mounts.as_mut().unwrap()[1].source = Some("/var/run/docker.sock".into());
        })
        .contains("engine's socket"));
        assert!(refused(|p| {
            host(p).mounts.as_mut().unwrap()[0].source = Some("roster-x-other-home".into());
        })
        .contains("not its own home"));
        assert!(
            refused(|p| host(p).mounts.as_mut().unwrap()[1].read_only = Some(false))
                .contains("read-only")
        );
        assert!(
            refused(|p| host(p).mounts.as_mut().unwrap()[2].read_only = Some(false))
                .contains("read-only")
        );
        assert!(refused(|p| host(p).binds = Some(vec!["/:/host".into()])).contains("bind"));
        assert!(refused(|p| {
            p.config.volumes = Some(HashMap::from([("/data".to_string(), HashMap::new())]));
        })
        .contains("anonymous"));
    }

    #[test]
    fn every_widening_flag_is_refused() {
        type Edit = fn(&mut ContainerPlan);
        let cases: &[(Edit, &str)] = &[
            (|p| host(p).privileged = Some(true), "unprivileged"),
            (
                |p| host(p).cap_add = Some(vec!["SYS_ADMIN".into()]),
                "adds capabilities",
            ),
            (|p| host(p).cap_drop = Some(vec![]), "drop all"),
            (
                |p| host(p).security_opt = Some(vec!["seccomp=unconfined".into()]),
                "security",
            ),
            (|p| host(p).readonly_rootfs = Some(false), "writable"),
            (|p| host(p).network_mode = Some("host".into()), "network"),
            (|p| p.config.network_disabled = Some(false), "network"),
            (|p| host(p).pid_mode = Some("host".into()), "host namespace"),
            (
                |p| host(p).userns_mode = Some("host".into()),
                "host namespace",
            ),
            (|p| host(p).pids_limit = Some(-1), "process limit"),
            (|p| host(p).memory_swap = Some(-1), "memory"),
            (|p| host(p).oom_kill_disable = Some(true), "OOM"),
            (|p| host(p).init = Some(false), "init"),
            (|p| host(p).log_config = None, "output"),
            (|p| host(p).publish_all_ports = Some(true), "ports"),
            (|p| host(p).runtime = Some("kata".into()), "runtime"),
            (
                |p| {
                    host(p).ulimits = Some(vec![bollard::models::ResourcesUlimits {
                        name: Some("nofile".into()),
                        soft: Some(1 << 20),
                        hard: Some(1 << 20),
                    }]);
                },
                "resource limits",
            ),
            (
                |p| host(p).group_add = Some(vec!["0".into()]),
                "adds groups",
            ),
            (|p| p.config.user = Some("0:0".into()), "root"),
            (|p| p.config.user = None, "root"),
            (|p| p.config.user = Some("1000:1000".into()), "host account"),
            (
                |p| p.config.user = Some("1879048192:0".into()),
                "own host uid",
            ),
            (
                |p| p.config.user = Some("1879048192".into()),
                "own host uid",
            ),
            (
                |p| {
                    host(p).devices = Some(vec![bollard::models::DeviceMapping {
                        path_on_host: Some("/dev/kvm".into()),
                        ..Default::default()
                    }]);
                },
                "devices",
            ),
        ];
        for (edit, want) in cases {
            let why = refused(edit);
            assert!(why.contains(want), "{why} (wanted {want})");
        }
    }

    #[test]
    fn images_with_volumes_or_roster_labels_are_refused() {
        check_image("x", None).unwrap();
        let mut c = ImageConfig::default();
        check_image("x", Some(&c)).unwrap();
        c.labels = Some(HashMap::from([(
            "roster.base.digest".to_string(),
            "ab".to_string(),
        )]));
        check_image("x", Some(&c)).unwrap();
        c.volumes = Some(HashMap::from([("/data".to_string(), HashMap::new())]));
        let e = check_image("x", Some(&c)).unwrap_err().to_string();
        assert!(e.contains("VOLUME /data"), "{e}");
        c.volumes = None;
        c.labels = Some(HashMap::from([("roster.ns".to_string(), "a".to_string())]));
        let e = check_image("x", Some(&c)).unwrap_err().to_string();
        assert!(e.contains("roster.ns"), "{e}");
    }
}
