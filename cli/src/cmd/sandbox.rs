//! `sandbox verify`: the hardening suite, straight to the engine, in a namespace of its own.

use std::path::PathBuf;

use roster_core::event::RuntimeKind;
use serde_json::json;

use crate::error::CliError;
use crate::output::Out;

pub(super) fn verify(
    runtime: RuntimeKind,
    agent_binary: Option<PathBuf>,
    busybox: PathBuf,
    out: Out,
) -> anyhow::Result<()> {
    let agent_binary = match agent_binary {
        Some(p) => p,
        None => roster_runtime::daemon::find_agent_binary().ok_or_else(|| {
            CliError::Input(
                "no static roster-agent found: build it with scripts/build-agent and pass \
                 --agent-binary (or set ROSTER_AGENT_BINARY)"
                    .into(),
            )
        })?,
    };
    // The suite mounts it: an absolute path, whatever the working directory.
    let agent_binary = std::path::absolute(&agent_binary)?;
    let busybox = std::path::absolute(&busybox)?;
    let scratch = tempfile::tempdir()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let checks = rt.block_on(async {
        let ns = roster_core::name::Name::parse("roster-verify")?;
        let engine = roster_sandbox::Engine::connect(ns).await?;
        anyhow::Ok(
            roster_sandbox::verify::run_suite(
                &engine,
                runtime,
                &agent_binary,
                &busybox,
                scratch.path(),
            )
            .await?,
        )
    })?;
    let failed = checks.iter().filter(|c| !c.passed).count();
    for c in &checks {
        if out.json {
            out.json_line(&json!({"check": c.name, "passed": c.passed, "seen": c.seen}))?;
        } else {
            let mark = if c.passed { "✓" } else { "✗" };
            out.line(format!("{mark} {:<32} {}", c.name, c.seen))?;
        }
    }
    if !out.json {
        let rt = runtime.as_str();
        out.line(format!(
            "{} of {} checks held under {rt}",
            checks.len() - failed,
            checks.len()
        ))?;
    }
    if failed > 0 {
        return Err(CliError::Reported(1).into());
    }
    Ok(())
}
