//! `roster bench hire`: what the runtime adds to starting an agent, and what it costs to keep
//! one running.
//!
//! A daemon runs in this process on a fresh data directory and namespace. First `--agents`
//! agents are hired and run at once, and the daemon's resident memory is compared with before
//! (no agent). Then, with them still running, each timed hire goes
//! the whole way — `decide`, append (durable), the supervisor's start (home volume, hardened
//! container, gateway socket), the container's start, and the agent's own first call through its
//! socket (the base image's `roster-agent idle` makes one as it starts) — and is timed until the
//! daemon has answered that call. The raw baseline, alternated with it, creates and starts a
//! container of the same image with the same plan straight through the engine's API (no checks,
//! no home preparation: `Engine::raw_create_and_start`).

use std::time::{Duration, Instant};

use roster_core::actor::Actor;
use roster_core::command::Command;
use roster_core::event::{AgentSpec, Event};
use roster_core::id::{AgentId, TeamId};
use roster_core::name::{Label, Name};
use roster_runtime::daemon::{self, Daemon};
use roster_sandbox::plan::{plan, HostPaths};
use roster_sandbox::Engine;
use serde_json::{json, Value};

use super::percentile;
use crate::args::BenchArgs;

/// How long one agent may take to make its first call before the bench gives up.
const FIRST_CALL_LIMIT: Duration = Duration::from_secs(60);

pub fn run(args: &BenchArgs) -> anyhow::Result<Value> {
    with_daemon(args, "bench", None, |rt, d, data| {
        let raw_engine = rt.block_on(Engine::connect(Name::parse(&format!(
            "{}-raw",
            d.supervisor().engine.ns()
        ))?))?;
        let result = measure(args, rt, d, &raw_engine, data);
        let cleanup = rt.block_on(remove_all(&raw_engine));
        let value = result?;
        cleanup?;
        Ok(value)
    })
}

/// Runs `f` with a daemon started in this process on a fresh data directory and namespace
/// (`PREFIX` + this process's id), with `bus`; then stops it and removes every container and
/// home of its namespace, whatever `f` returned.
pub(super) fn with_daemon<T>(
    args: &BenchArgs,
    prefix: &str,
    bus: Option<roster_bus::BusUrl>,
    f: impl FnOnce(&tokio::runtime::Runtime, &Daemon, &std::path::Path) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let tmp = tempfile::tempdir()?;
    let data = tmp.path().join("data");
    roster_runtime::admin::init_data_dir(&data)?;
    let ns = Name::parse(&format!("{prefix}{:x}", std::process::id()))?;
    let serve = roster_runtime::ServeOptions {
        agent_binary: args.agent_binary.clone(),
        busybox: Some(args.busybox.clone()),
        ns: Some(ns.clone()),
        bus,
        take_over: false,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let running = rt.block_on(daemon::start(&data, &serve))?;
    let d = running.daemon.clone();
    let result = f(&rt, &d, &data);
    // Stop the daemon first (its supervisor would restart what is removed), then clean up.
    let engine = rt.block_on(Engine::connect(ns))?;
    rt.block_on(running.shutdown());
    let cleanup = rt.block_on(remove_all(&engine));
    // Home disks hold their space while attached, even once deleted with the directory.
    roster_sandbox::disk::detach_under(&data);
    let value = result?;
    cleanup?;
    Ok(value)
}

/// Removes every container and home of `engine`'s namespace, those of agents that never got a
/// container included.
pub(super) async fn remove_all(engine: &Engine) -> anyhow::Result<()> {
    for f in engine.list().await? {
        if let Ok(agent) = f.agent {
            engine.remove(agent).await?;
            engine.remove_home(agent).await?;
        }
    }
    let label = format!("{}={}", roster_sandbox::plan::labels::NS, engine.ns());
    roster_sandbox::sweep::Sweep::new(label).run(engine).await?;
    Ok(())
}

fn measure(
    args: &BenchArgs,
    rt: &tokio::runtime::Runtime,
    d: &Daemon,
    raw_engine: &Engine,
    data: &std::path::Path,
) -> anyhow::Result<Value> {
    let team = create_team(d, "bench")?;

    // Memory first, from a daemon running no agent: its resident set with `agents` running.
    // The figure includes everything an agent costs the daemon (its slot, gateway socket and
    // task, its place in the world and the log's cache), and the allocator's slack.
    let agents = args.agents.max(1);
    std::thread::sleep(Duration::from_secs(1));
    let before = rss_kib()?;
    let started = Instant::now();
    let mut batch = Vec::with_capacity(agents);
    for i in 0..agents {
        batch.push(hire(d, team, &format!("idle-{i}"))?);
    }
    for agent in &batch {
        wait_first_call(d, *agent, started)?;
    }
    // Let allocations settle (gateway tasks, engine event bookkeeping).
    std::thread::sleep(Duration::from_secs(2));
    let after = rss_kib()?;
    let per_agent = (after as f64 - before as f64) / agents as f64 / 1024.0;
    println!(
        "\nmemory: daemon RSS {:.1} MiB with no agent, {:.1} MiB with {agents} running: {per_agent:.3} MiB per agent   (target ≤ 2 MiB)",
        before as f64 / 1024.0,
        after as f64 / 1024.0,
    );

    // Then the timed hires, with those agents still running.
    let hires = args.hires.max(1);
    let mut ours = Vec::with_capacity(hires);
    let mut raw = Vec::with_capacity(hires);
    let raw_paths = HostPaths {
        gateway_dir: data.join("raw-gateway"),
        agent_binary: d.supervisor().agent_binary.clone(),
    };
    std::fs::create_dir_all(&raw_paths.gateway_dir)?;
    for i in 0..hires {
        // Alternate, so that drift on a shared machine hits both alike.
        let started = Instant::now();
        let agent = hire(d, team, &format!("timed-{i}"))?;
        ours.push(wait_first_call(d, agent, started)? - started);

        let raw_agent = AgentId::mint(
            roster_runtime::app::now(),
            &mut roster_store::OsEntropy::new(),
        );
        let p = plan(
            raw_engine.ns(),
            &team,
            raw_agent,
            &AgentSpec::base(),
            &raw_paths,
            roster_sandbox::uid::baseline(i),
        )?;
        let started = Instant::now();
        rt.block_on(raw_engine.raw_create_and_start(&p))?;
        raw.push(started.elapsed());
    }
    ours.sort();
    raw.sort();
    let (p50, p95) = (percentile(&ours, 0.5), percentile(&ours, 0.95));
    let (r50, r95) = (percentile(&raw, 0.5), percentile(&raw, 0.95));
    let ratio = p50.as_secs_f64() / r50.as_secs_f64().max(1e-9);
    println!("\nhire: {hires} hires through the daemon ({agents} agents running), each alternated with a raw create + start");
    println!(
        "  hire → first gateway call   p50 {:>7.0} ms   p95 {:>7.0} ms",
        ms(p50),
        ms(p95)
    );
    println!(
        "  raw create + start          p50 {:>7.0} ms   p95 {:>7.0} ms",
        ms(r50),
        ms(r95)
    );
    println!("  ratio (p50)                 {ratio:>7.2}×   (target ≤ 1.3×)");
    Ok(
        json!({"bench": "hire", "hires": hires, "p50_ms": ms(p50), "p95_ms": ms(p95),
        "raw_p50_ms": ms(r50), "raw_p95_ms": ms(r95), "ratio": ratio,
        "agents_running": agents, "rss_mib_before": before as f64 / 1024.0,
        "rss_mib": after as f64 / 1024.0, "mib_per_agent": per_agent}),
    )
}

pub(super) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// This process's resident set size, in KiB.
pub(super) fn rss_kib() -> anyhow::Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no VmRSS in /proc/self/status"))
}

/// The operator the benches act as.
pub(super) fn bench_operator() -> anyhow::Result<Actor> {
    Ok(Actor::Operator(Name::parse("bench")?))
}

pub(super) fn create_team(d: &Daemon, name: &str) -> anyhow::Result<TeamId> {
    let command = Command::CreateTeam {
        name: Name::parse(name)?,
    };
    let operator = bench_operator()?;
    let envs = d.decide(|app| app.execute(command, &operator))??;
    envs.first()
        .map(|e| e.team)
        .ok_or_else(|| anyhow::anyhow!("no team created"))
}

pub(super) fn hire(d: &Daemon, team: TeamId, name: &str) -> anyhow::Result<AgentId> {
    let command = Command::Hire {
        team,
        name: Name::parse(name)?,
        role: Label::default(),
        spec: AgentSpec::base(),
        // The smallest disk: each is allocated whole, and a fleet of the default 1 GiB would
        // measure the host's disk, not the hire.
        disk: roster_core::limits::DiskMib::new(roster_core::limits::DiskMib::MIN)?,
        grants: Vec::new(),
    };
    let operator = bench_operator()?;
    let envs = d.decide(|app| app.execute(command, &operator))??;
    d.poke();
    envs.iter()
        .find_map(|e| match &e.event {
            Event::AgentHired { agent, .. } => Some(*agent),
            _ => None,
        })
        .ok_or_else(|| anyhow::anyhow!("the hire recorded no agent"))
}

/// Waits for `agent`'s first answered gateway call; returns when the daemon answered it.
pub(super) fn wait_first_call(
    d: &Daemon,
    agent: AgentId,
    since: Instant,
) -> anyhow::Result<Instant> {
    loop {
        if let Some(at) = d.first_call(agent) {
            return Ok(at);
        }
        if since.elapsed() > FIRST_CALL_LIMIT {
            anyhow::bail!("{agent} made no gateway call within {FIRST_CALL_LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}
