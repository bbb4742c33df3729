//! The escape suite: `roster sandbox verify` and the sandbox tests run it to show, inside a real
//! agent container, that each boundary of DESIGN.md ("Sandbox") holds.
//!
//! It makes two throwaway agents with the normal [`plan`] and the base image — fresh ids, this
//! engine's namespace, an extra `roster.verify=RUN` label, gateway directories of their own under
//! the caller's scratch directory — writes a marker into the second agent's home and one on the
//! host, then runs each check with busybox `sh` inside the first agent's container. Every check
//! asserts a denial or a confinement and reports what it saw; a check that cannot pass (gVisor
//! without host cgroups, for instance) fails with what it saw, never a pretended pass. The last
//! check removes both agents and looks for anything they left.
//!
//! The throwaways are removed by a [`Sweep`] guard, so they go also when the suite fails half-way
//! or its future is dropped.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use roster_core::event::{AgentSpec, Resources, RuntimeKind};
use roster_core::id::{AgentId, Entropy, TeamId};
use roster_core::time::Timestamp;

use crate::engine::Engine;
use crate::error::SandboxError;
use crate::exec::ExecOutput;
use crate::plan::{plan, ContainerPlan, HostPaths};
use crate::sweep::Sweep;
use crate::uid::AgentUid;

mod checks;

/// The label marking the escape suite's throwaway containers and volumes with its run.
pub const VERIFY_LABEL: &str = "roster.verify";

/// One check of the suite: what it asserts, whether it held, and what was seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// What is asserted ("no network").
    pub name: &'static str,
    /// Whether the denial or confinement held.
    pub passed: bool,
    /// What the check saw, in one line.
    pub seen: String,
}

/// The limits of the suite's throwaway agents: small, so the memory hog and the fork bomb hit
/// them quickly.
pub const SUITE_RESOURCES: Resources = Resources {
    cpu_millis: 1000,
    memory_mib: 32,
    pids: 64,
    tmpfs_mib: 16,
    timeout_secs: None,
};

/// The home disk of the suite's throwaway agents, in MiB: small, so filling it is quick.
pub const SUITE_DISK_MIB: u32 = 64;

/// Random bytes from the OS, or from the clock and the process id where `/dev/urandom` cannot be
/// read (uniqueness is all the suite needs).
fn random<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    let read = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut out));
    if read.is_err() {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let seed = nanos ^ (u128::from(std::process::id()) << 64);
        for (i, b) in out.iter_mut().enumerate() {
            *b = (seed >> ((i % 16) * 8)) as u8 ^ (i as u8).wrapping_mul(151);
        }
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

struct OsRandom;

impl Entropy for OsRandom {
    fn bytes10(&mut self) -> [u8; 10] {
        random()
    }
}

fn now() -> Timestamp {
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    Timestamp::from_millis(millis)
}

/// What the checks need to know about the run.
pub(crate) struct Suite<'a> {
    engine: &'a Engine,
    runtime: RuntimeKind,
    run: String,
    /// The agent whose container the checks run in.
    probe: AgentId,
    /// The probe's own host uid, as its home's preparation gave it.
    probe_uid: AgentUid,
    /// The other agent, whose home must stay invisible.
    other: AgentId,
    /// The other agent's host uid.
    other_uid: AgentUid,
    other_volume: String,
    /// The marker file in the other agent's home, and its content.
    other_marker: String,
    other_token: String,
    /// A marker on the host (next to, not inside, the gateway directories), and its content.
    host_marker: PathBuf,
    host_token: String,
    run_dir: PathBuf,
}

impl Suite<'_> {
    /// Runs a busybox shell script in `agent`'s container, giving up after `secs`.
    async fn sh_in(&self, agent: AgentId, script: &str, secs: u64) -> Result<ExecOutput, String> {
        let cmd = vec!["sh".to_string(), "-c".to_string(), script.to_string()];
        match tokio::time::timeout(
            Duration::from_secs(secs),
            self.engine.exec(agent, cmd, None),
        )
        .await
        {
            Ok(Ok(out)) => Ok(out),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("no answer within {secs} s")),
        }
    }

    /// Runs a script in the probe agent's container.
    async fn sh(&self, script: &str, secs: u64) -> Result<ExecOutput, String> {
        self.sh_in(self.probe, script, secs).await
    }
}

/// Makes one throwaway agent's home and plan, labelled with the run.
async fn throwaway(
    engine: &Engine,
    team: &TeamId,
    runtime: RuntimeKind,
    run: &str,
    gateway_dir: PathBuf,
    agent_binary: &Path,
) -> Result<(AgentId, ContainerPlan, AgentUid), SandboxError> {
    let agent = AgentId::mint(now(), &mut OsRandom);
    let mut spec = AgentSpec::base();
    spec.runtime = runtime;
    spec.resources = SUITE_RESOURCES;
    let paths = HostPaths {
        gateway_dir,
        agent_binary: agent_binary.to_owned(),
    };
    let label = HashMap::from([(VERIFY_LABEL.to_string(), run.to_string())]);
    let home = engine.home(team, agent, &label, SUITE_DISK_MIB).await?;
    let mut p = plan(engine.ns(), team, agent, &spec, &paths, home.uid)?;
    p.config
        .labels
        .get_or_insert_with(Default::default)
        .extend(label);
    Ok((agent, p, home.uid))
}

/// Creates a directory and everything above it, saying which on failure.
fn mkdir(dir: &Path) -> Result<(), SandboxError> {
    std::fs::create_dir_all(dir)
        .map_err(|e| SandboxError::io(format!("creating {}", dir.display()), e))
}

/// Runs the escape suite under `runtime`: builds the base image if needed (from `busybox` and
/// `agent_binary`), starts two throwaway agents with their gateway directories under
/// `scratch_dir`, runs every check, removes everything, and returns one [`Check`] per boundary.
/// An error means the suite could not run (no engine, no such runtime, a build failure) — not
/// that a boundary failed, which is a `Check` with `passed: false`.
pub async fn run_suite(
    engine: &Engine,
    runtime: RuntimeKind,
    agent_binary: &Path,
    busybox: &Path,
    scratch_dir: &Path,
) -> Result<Vec<Check>, SandboxError> {
    engine.require_runtime(runtime.as_str()).await?;
    engine.ensure_base_image(busybox, agent_binary).await?;
    let run = hex(&random::<6>());
    let run_dir = scratch_dir.join(format!("roster-verify-{run}"));
    let mut sweep = Sweep::new(format!("{VERIFY_LABEL}={run}"));
    sweep.dir(&run_dir);
    let gw_probe = run_dir.join("gateway-1");
    let gw_other = run_dir.join("gateway-2");
    mkdir(&gw_probe)?;
    mkdir(&gw_other)?;
    let host_marker = run_dir.join(format!("host-marker-{run}"));
    let host_token = format!("roster-host-{}", hex(&random::<8>()));
    std::fs::write(&host_marker, &host_token)
        .map_err(|e| SandboxError::io(format!("writing {}", host_marker.display()), e))?;

    // Homes get disks where the host allows, kept with the run (an engine with disks of its
    // own keeps them there).
    let with_disks;
    let engine = match (engine.disks(), crate::disk::Disks::usable()) {
        (None, Ok(())) => {
            with_disks = engine
                .clone()
                .with_disks(crate::disk::Disks::new(run_dir.join("homes")));
            &with_disks
        }
        _ => engine,
    };
    let team = TeamId::mint(now(), &mut OsRandom);
    let (probe, probe_plan, probe_uid) =
        throwaway(engine, &team, runtime, &run, gw_probe, agent_binary).await?;
    let (other, other_plan, other_uid) =
        throwaway(engine, &team, runtime, &run, gw_other, agent_binary).await?;
    for (agent, p) in [(probe, &probe_plan), (other, &other_plan)] {
        engine.create(p).await?;
        engine.start(agent).await?;
    }
    let suite = Suite {
        engine,
        runtime,
        probe,
        probe_uid,
        other,
        other_uid,
        other_volume: other_plan.home_volume.clone(),
        other_marker: format!("roster-marker-{run}"),
        other_token: format!("roster-home-{}", hex(&random::<8>())),
        host_marker,
        host_token,
        run_dir,
        run,
    };
    let mut out = checks::run_all(&suite).await;
    out.push(checks::nothing_left(&suite, sweep).await);
    Ok(out)
}
