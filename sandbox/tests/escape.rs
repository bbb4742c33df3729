//! The escape suite on a real engine: every check of DESIGN.md, run inside a real agent
//! container, must hold — under runc, and under runsc where the engine has it. Each check is
//! asserted on its own, and a failure shows what the check saw.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Instant;

use roster_core::event::RuntimeKind;
use roster_sandbox::verify::{run_suite, Check};
use roster_sandbox::SandboxError;

const CHECKS: [&str; 12] = [
    "host files unreadable",
    "/proc/1/root confined",
    "no Docker socket",
    "no network",
    "root filesystem read-only",
    "no privilege escalation",
    "its own host uid, used by nothing else",
    "home bounded in bytes and files",
    "fork bomb stopped by the pids limit",
    "memory hog OOM-killed, host unharmed",
    "another agent's home not visible",
    "nothing left behind after removal",
];

async fn suite(runtime: RuntimeKind) -> Result<Vec<Check>, SandboxError> {
    let c = common::ctx().await;
    let t = Instant::now();
    let bb = common::busybox();
    let checks = run_suite(&c.engine, runtime, &bb, &bb, c.dir.path()).await?;
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
    Ok(checks)
}

/// Asserts each check, naming every one that failed with what it saw.
fn assert_each(checks: &[Check]) {
    let failed: Vec<String> = checks
        .iter()
        .filter(|ch| !ch.passed)
        .map(|ch| format!("✗ {}: {}", ch.name, ch.seen))
        .collect();
    assert!(failed.is_empty(), "checks failed:\n{}", failed.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_check_holds_under_runc() {
    assert_each(&suite(RuntimeKind::Runc).await.unwrap());
}

/// Where gVisor is installed, the engine must have it (scripts/setup registers it) and every
/// check must hold; where it is not, asking for it is refused before anything is created.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_check_holds_under_runsc_where_gvisor_is_installed() {
    let c = common::ctx().await;
    let installed = std::path::Path::new("/usr/bin/runsc").exists();
    let registered = c.engine.has_runtime(RuntimeKind::Runsc).await.unwrap();
    if !installed && !registered {
        let bb = common::busybox();
        let refused = run_suite(&c.engine, RuntimeKind::Runsc, &bb, &bb, c.dir.path()).await;
        assert!(
            matches!(
                refused,
                Err(roster_sandbox::SandboxError::RuntimeMissing { .. })
            ),
            "{refused:?}"
        );
        return;
    }
    assert!(
        registered,
        "runsc is installed but the engine does not have it: run scripts/setup"
    );
    // Where gVisor cannot boot inside cgroups, scripts/setup registers it with
    // --ignore-cgroups; agents must then be refused, never run without their limits.
    match suite(RuntimeKind::Runsc).await {
        Ok(checks) => assert_each(&checks),
        Err(e) => {
            assert!(matches!(e, SandboxError::RuntimeUnconfined { .. }), "{e}");
            eprintln!("runsc is registered unconfined on this machine, and refused: {e}");
        }
    }
}
