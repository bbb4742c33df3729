//! The escape suite on a real engine: every check of DESIGN.md, run inside a real agent
//! container, must hold — under runc, and under runsc where the engine has it. Each check is
//! asserted on its own, and a failure shows what the check saw.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Instant;

use roster_core::event::RuntimeKind;
use roster_sandbox::verify::{run_suite, Check};

const CHECKS: [&str; 10] = [
    "host files unreadable",
    "/proc/1/root confined",
    "no Docker socket",
    "no network",
    "root filesystem read-only",
    "no privilege escalation",
    "fork bomb stopped by the pids limit",
    "memory hog OOM-killed, host unharmed",
    "another agent's home not visible",
    "nothing left behind after removal",
];

/// The check gVisor cannot pass on an engine that runs it with `--ignore-cgroups` (as this
/// project's setup must: under a host cgroup with the agent's limits the sandbox cannot even
/// boot, its own threads count against the pids limit). Its sandbox then has no memory cgroup,
/// and gVisor 2022-12 has no memory limit of its own. (The pids limit holds: the plan also sets
/// it as RLIMIT_NPROC, which gVisor enforces.) The suite must report the gap — ✗ with what it
/// saw — never pass it silently; if it starts to pass, all the better. Empty this list to make
/// the runsc test strict.
const RUNSC_GAPS: [(&str, &str); 1] = [(
    "memory hog OOM-killed, host unharmed",
    "the memory limit is not enforced",
)];

async fn suite(runtime: RuntimeKind) -> Vec<Check> {
    let c = common::ctx().await;
    let t = Instant::now();
    let bb = common::busybox();
    let checks = run_suite(&c.engine, runtime, &bb, &bb, c.dir.path())
        .await
        .unwrap();
    eprintln!("{runtime:?}: escape suite in {:?}", t.elapsed());
    for ch in &checks {
        eprintln!(
            "{} {}: {}",
            if ch.passed { "✓" } else { "✗" },
            ch.name,
            ch.seen
        );
    }
    let names: Vec<&str> = checks.iter().map(|c| c.name).collect();
    assert_eq!(
        names, CHECKS,
        "one check per boundary, in DESIGN.md's order"
    );
    assert!(
        std::fs::read_dir(c.dir.path()).unwrap().next().is_none(),
        "scratch dir left"
    );
    checks
}

/// Asserts each check, naming every one that failed with what it saw.
fn assert_each(checks: &[Check], gaps: &[(&str, &str)]) {
    let mut failed = Vec::new();
    for ch in checks {
        match gaps.iter().find(|(name, _)| *name == ch.name) {
            Some((_, evidence)) if !ch.passed => {
                assert!(
                    ch.seen.contains(evidence),
                    "{}: ✗ without its evidence: {}",
                    ch.name,
                    ch.seen
                );
            }
            _ if !ch.passed => failed.push(format!("✗ {}: {}", ch.name, ch.seen)),
            _ => {}
        }
    }
    assert!(failed.is_empty(), "checks failed:\n{}", failed.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_check_holds_under_runc() {
    assert_each(&suite(RuntimeKind::Runc).await, &[]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_runsc_every_check_holds_but_the_known_gvisor_gap() {
    let c = common::ctx().await;
    if !c.engine.has_runtime(RuntimeKind::Runsc).await.unwrap() {
        eprintln!("runsc is not registered with this engine: the gVisor suite does not apply");
        return;
    }
    assert_each(&suite(RuntimeKind::Runsc).await, &RUNSC_GAPS);
}
