//! `roster bench scale`: a fleet of agents on one machine — how long until all run, what each
//! costs the daemon, how fast the gateway answers all of them at once, and whether an agent that
//! floods its gateway can starve a quiet one.
//!
//! A daemon runs in this process on a fresh data directory and namespace (as for `hire`). The
//! bench speaks through the agents' own gateway sockets, from the host side of the bind mount:
//! the socket the agent's process uses, the same identity and the same path through the
//! gateway. Each agent's own process (`roster-agent idle` in the base image) idles meanwhile.
//!
//! 1. Start. The raw baseline first: `--fleet` containers of the same image and plan created and
//!    started at once straight through the engine's API, timed until the last start returned,
//!    then removed. Then the fleet is hired into 4 teams and timed from the first hire until
//!    every agent has made its first gateway call (its process is up and reached the runtime).
//! 2. Memory: the daemon's resident set with no agent and with the fleet running, per agent.
//! 3. Load: one client per agent, all at once, each making `--calls` `whoami` round trips one
//!    after the other (after 3 untimed ones of its own: the first touch of a client thread's
//!    memory in this process is not the gateway's cost). Every answer must be this agent's own, none refused, none missing. The
//!    raw baseline is the same clients against bare Unix sockets answered by a task on the same
//!    runtime with a line of the same size (no decoding, no world, no rate limit).
//! 4. Flood: a quiet agent's `whoami` round trips, paced, first with every other agent silent,
//!    then while `--flooders` agents send requests as fast as their sockets take them (far above
//!    their rate limit, so they are held back). The quiet agent's p99 under flood is compared with
//!    its own p99 idle (target ≤ 2×), and the daemon's memory after the flood with before. What
//!    the machine itself gives is measured the same way: the same paced calls to a bare socket
//!    of step 3, idle and under the same flood (the flood's own clients, threads of this
//!    process, share the two cores with everything else).

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use anyhow::Context;
use roster_core::event::AgentSpec;
use roster_core::id::AgentId;
use roster_core::name::Name;
use roster_runtime::daemon::Daemon;
use roster_sandbox::plan::{plan, HostPaths};
use roster_sandbox::Engine;
use serde_json::{json, Value};

use super::hire::{create_team, hire, ms, rss_kib, wait_first_call, with_daemon};
use super::percentile;
use super::socket::Socket;
use crate::args::BenchArgs;

/// Teams the fleet is hired into.
const TEAMS: usize = 4;

/// Round trips of the quiet agent, idle and under flood.
const QUIET_CALLS: usize = 500;

/// Untimed round trips each load client makes before the clients start together.
const WARMUP: usize = 3;

/// Time between two of the quiet agent's calls: an agent at work (100 calls a second, half its
/// rate limit), not a flood.
const QUIET_PACE: Duration = Duration::from_millis(10);

pub fn run(args: &BenchArgs) -> anyhow::Result<Value> {
    with_daemon(args, "benchscale", None, |rt, d, data| {
        let raw_engine = rt.block_on(Engine::connect(Name::parse(&format!(
            "{}-raw",
            d.supervisor().engine.ns()
        ))?))?;
        let result = measure(args, rt, d, &raw_engine, data);
        let cleanup = rt.block_on(super::hire::remove_all(&raw_engine));
        let value = result?;
        cleanup?;
        Ok(value)
    })
}

fn measure(
    args: &BenchArgs,
    rt: &tokio::runtime::Runtime,
    d: &Daemon,
    raw_engine: &Engine,
    data: &Path,
) -> anyhow::Result<Value> {
    let fleet = args.fleet.max(2);
    println!("\nscale: {fleet} agents in {TEAMS} teams on this machine");

    // 1. The raw baseline: the same containers, created and started at once, then removed.
    let raw_start = raw_fleet(rt, d, raw_engine, data, fleet)?;
    rt.block_on(super::hire::remove_all(raw_engine))?;

    // 2. Memory before, then the fleet, timed until every agent has called.
    std::thread::sleep(Duration::from_secs(1));
    let rss_before = rss_kib()?;
    let mut teams = Vec::with_capacity(TEAMS);
    for t in 0..TEAMS {
        teams.push(create_team(d, &format!("team-{t}"))?);
    }
    let started = Instant::now();
    let mut agents = Vec::with_capacity(fleet);
    for i in 0..fleet {
        agents.push(hire(d, teams[i % TEAMS], &format!("agent-{i}"))?);
    }
    let hired = started.elapsed();
    let mut last = started;
    for agent in &agents {
        last = last.max(wait_first_call(d, *agent, started)?);
    }
    let all_running = last - started;
    std::thread::sleep(Duration::from_secs(2));
    let rss_running = rss_kib()?;
    let per_agent = (rss_running as f64 - rss_before as f64) / fleet as f64 / 1024.0;
    let start_ratio = all_running.as_secs_f64() / raw_start.as_secs_f64().max(1e-9);
    println!(
        "  hire → all {fleet} running (first call made)   {:>8.1} s   (hires committed in {:.1} s)",
        all_running.as_secs_f64(),
        hired.as_secs_f64()
    );
    println!(
        "  raw create + start of {fleet} at once          {:>8.1} s",
        raw_start.as_secs_f64()
    );
    println!("  ratio                                   {start_ratio:>8.2}×");
    println!(
        "  daemon RSS {:.1} MiB with no agent, {:.1} MiB with {fleet} running: {per_agent:.3} MiB per agent   (target ≤ 2 MiB)",
        mib(rss_before),
        mib(rss_running),
    );

    // 3. Every agent at once, against the raw transport with the same clients.
    let sockets: Vec<PathBuf> = agents.iter().map(|a| Socket::path(d, *a)).collect();
    let calls = args.calls.max(1);
    let ours = load(&sockets, &agents, calls)?;
    let raw_dir = tempfile::tempdir()?;
    let raw_sockets = raw_servers(rt, raw_dir.path(), fleet, ours.answer_len)?;
    let raw = load(&raw_sockets, &[], calls)?;
    let (p50, p99) = (percentile(&ours.times, 0.5), percentile(&ours.times, 0.99));
    let (r50, r99) = (percentile(&raw.times, 0.5), percentile(&raw.times, 0.99));
    let load_ratio = p99.as_secs_f64() / r99.as_secs_f64().max(1e-9);
    println!("  {fleet} agents at once, {calls} whoami round trips each, one after the other:");
    println!(
        "    gateway   p50 {:>7.2} ms   p99 {:>7.2} ms   {:>7.0} calls/s   refused {}   lost {}   (target p99 ≤ 20 ms)",
        ms(p50),
        ms(p99),
        ours.per_sec,
        ours.refused,
        ours.lost
    );
    println!(
        "    raw       p50 {:>7.2} ms   p99 {:>7.2} ms   {:>7.0} calls/s",
        ms(r50),
        ms(r99),
        raw.per_sec
    );
    println!("    ratio (p99) {load_ratio:>6.2}×");

    // 4. A quiet agent, idle and while the others flood.
    let flooders = args.flooders.min(fleet - 1);
    let (quiet, bare) = (&sockets[0], &raw_sockets[0]);
    let rss_before_flood = rss_kib()?;
    let idle = quiet_calls(quiet, Some(agents[0]), QUIET_CALLS)?;
    let bare_idle = quiet_calls(bare, None, QUIET_CALLS)?;
    let flooded = &sockets[1..=flooders];
    let flood = flooding(flooded, || quiet_calls(quiet, Some(agents[0]), QUIET_CALLS))?;
    let bare_flood = flooding(flooded, || quiet_calls(bare, None, QUIET_CALLS))?;
    std::thread::sleep(Duration::from_secs(2));
    let rss_after_flood = rss_kib()?;
    let (i50, i99) = (percentile(&idle, 0.5), percentile(&idle, 0.99));
    let (f50, f99) = (
        percentile(&flood.quiet, 0.5),
        percentile(&flood.quiet, 0.99),
    );
    let flood_ratio = f99.as_secs_f64() / i99.as_secs_f64().max(1e-9);
    let (bi50, bi99) = (percentile(&bare_idle, 0.5), percentile(&bare_idle, 0.99));
    let (bf50, bf99) = (
        percentile(&bare_flood.quiet, 0.5),
        percentile(&bare_flood.quiet, 0.99),
    );
    let bare_ratio = bf99.as_secs_f64() / bi99.as_secs_f64().max(1e-9);
    println!("  a quiet agent ({QUIET_CALLS} whoami, one every {QUIET_PACE:?}) while {flooders} agents flood their gateways:");
    println!(
        "    under flood   p50 {:>7.3} ms   p99 {:>7.3} ms   (the flood: {} answered, {} rate-limited, {:.0}/s)",
        ms(f50),
        ms(f99),
        flood.answered,
        flood.limited,
        flood.answered as f64 / flood.took.as_secs_f64().max(1e-9)
    );
    println!(
        "    idle          p50 {:>7.3} ms   p99 {:>7.3} ms",
        ms(i50),
        ms(i99)
    );
    println!("    ratio (p99)   {flood_ratio:>7.2}×   (target ≤ 2×)");
    println!("    the machine itself: the same calls to a bare socket on the same runtime");
    println!(
        "      under the same flood   p50 {:>7.3} ms   p99 {:>7.3} ms",
        ms(bf50),
        ms(bf99)
    );
    println!(
        "      idle                   p50 {:>7.3} ms   p99 {:>7.3} ms   ratio (p99) {bare_ratio:.2}×",
        ms(bi50),
        ms(bi99)
    );
    println!(
        "    daemon RSS {:.1} MiB before the flood, {:.1} MiB after",
        mib(rss_before_flood),
        mib(rss_after_flood)
    );

    Ok(json!({
        "bench": "scale", "agents": fleet, "teams": TEAMS,
        "all_running_s": all_running.as_secs_f64(), "hires_committed_s": hired.as_secs_f64(),
        "raw_start_s": raw_start.as_secs_f64(), "start_ratio": start_ratio,
        "rss_mib_before": mib(rss_before), "rss_mib": mib(rss_running), "mib_per_agent": per_agent,
        "load": {
            "calls_per_agent": calls, "p50_ms": ms(p50), "p99_ms": ms(p99),
            "calls_per_s": ours.per_sec, "refused": ours.refused, "lost": ours.lost,
            "raw_p50_ms": ms(r50), "raw_p99_ms": ms(r99), "raw_calls_per_s": raw.per_sec,
            "ratio_p99": load_ratio,
        },
        "flood": {
            "flooders": flooders, "quiet_calls": QUIET_CALLS,
            "p50_ms": ms(f50), "p99_ms": ms(f99), "idle_p50_ms": ms(i50), "idle_p99_ms": ms(i99),
            "ratio_p99": flood_ratio, "flood_answered": flood.answered,
            "flood_rate_limited": flood.limited,
            "bare_p50_ms": ms(bf50), "bare_p99_ms": ms(bf99),
            "bare_idle_p50_ms": ms(bi50), "bare_idle_p99_ms": ms(bi99),
            "bare_ratio_p99": bare_ratio,
            "rss_mib_before": mib(rss_before_flood), "rss_mib_after": mib(rss_after_flood),
        },
    }))
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// Creates and starts `n` containers of the base image at once, straight through the engine;
/// returns how long until the last start returned.
fn raw_fleet(
    rt: &tokio::runtime::Runtime,
    d: &Daemon,
    raw_engine: &Engine,
    data: &Path,
    n: usize,
) -> anyhow::Result<Duration> {
    let paths = HostPaths {
        gateway_dir: data.join("raw-gateway"),
        agent_binary: d.supervisor().agent_binary.clone(),
    };
    std::fs::create_dir_all(&paths.gateway_dir)?;
    let team = roster_core::id::TeamId::mint(
        roster_runtime::app::now(),
        &mut roster_store::OsEntropy::new(),
    );
    let mut plans = Vec::with_capacity(n);
    for i in 0..n {
        let agent = AgentId::mint(
            roster_runtime::app::now(),
            &mut roster_store::OsEntropy::new(),
        );
        plans.push(plan(
            raw_engine.ns(),
            &team,
            agent,
            &AgentSpec::base(),
            &paths,
            roster_sandbox::uid::baseline(i),
        )?);
    }
    let started = Instant::now();
    rt.block_on(async {
        let mut set = tokio::task::JoinSet::new();
        for p in plans {
            let engine = raw_engine.clone();
            set.spawn(async move { engine.raw_create_and_start(&p).await });
        }
        while let Some(r) = set.join_next().await {
            r??;
        }
        anyhow::Ok(())
    })?;
    Ok(started.elapsed())
}

/// What the clients of a load measured.
struct Load {
    /// Every round trip, sorted.
    times: Vec<Duration>,
    /// Round trips a second, all clients together.
    per_sec: f64,
    /// Answers that were errors.
    refused: u64,
    /// Requests that got no answer.
    lost: u64,
    /// The length of one answer line (for the raw baseline's).
    answer_len: usize,
}

/// One client per socket, all at once, each making `calls` `whoami` round trips one after the
/// other. With `agents`, each answer must name that socket's agent.
fn load(sockets: &[PathBuf], agents: &[AgentId], calls: usize) -> anyhow::Result<Load> {
    let barrier = Arc::new(Barrier::new(sockets.len() + 1));
    let refused = Arc::new(AtomicU64::new(0));
    let lost = Arc::new(AtomicU64::new(0));
    let mut threads = Vec::with_capacity(sockets.len());
    for (i, path) in sockets.iter().enumerate() {
        let (path, barrier) = (path.clone(), barrier.clone());
        let (refused, lost) = (refused.clone(), lost.clone());
        let agent = agents.get(i).map(|a| json!(a));
        threads.push(std::thread::spawn(move || -> anyhow::Result<_> {
            let mut client = Socket::connect(&path)?;
            let mut times = Vec::with_capacity(calls);
            let mut answer_len = 0;
            // Untimed, one client at a time: the connection and this thread's allocations
            // warmed, so the run measures the gateway, not the first touch of this process's
            // memory (raw runs the same).
            let warmed = (0..WARMUP).try_for_each(|id| whoami(&mut client, id).map(drop));
            barrier.wait();
            warmed?;
            for id in 0..calls {
                let t = Instant::now();
                match whoami(&mut client, id) {
                    Ok(answer) => {
                        times.push(t.elapsed());
                        answer_len = client.line_len();
                        let ok = answer.get("ok");
                        let mine = match &agent {
                            Some(agent) => ok.is_some_and(|ok| ok["id"] == *agent),
                            None => ok.is_some(),
                        };
                        if !mine {
                            refused.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Err(_) => {
                        lost.fetch_add((calls - id) as u64, Ordering::Relaxed);
                        break;
                    }
                }
            }
            Ok((times, answer_len))
        }));
    }
    barrier.wait();
    let started = Instant::now();
    let mut times = Vec::with_capacity(sockets.len() * calls);
    let mut answer_len = 0;
    for t in threads {
        let (mut own, len) = t
            .join()
            .map_err(|_| anyhow::anyhow!("a load client panicked"))??;
        times.append(&mut own);
        answer_len = answer_len.max(len);
    }
    let took = started.elapsed();
    times.sort();
    Ok(Load {
        per_sec: times.len() as f64 / took.as_secs_f64().max(1e-9),
        times,
        refused: refused.load(Ordering::Relaxed),
        lost: lost.load(Ordering::Relaxed),
        answer_len,
    })
}

/// `n` bare Unix sockets in `dir`, each answering every line with a line of `len` bytes, served
/// by tasks on `rt`.
fn raw_servers(
    rt: &tokio::runtime::Runtime,
    dir: &Path,
    n: usize,
    len: usize,
) -> anyhow::Result<Vec<PathBuf>> {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
    let mut answer = format!(
        "{{\"id\":0,\"ok\":\"{}\"}}",
        "x".repeat(len.saturating_sub(20))
    );
    answer.push('\n');
    let answer: Arc<[u8]> = answer.into_bytes().into();
    let mut paths = Vec::with_capacity(n);
    for i in 0..n {
        let path = dir.join(format!("raw-{i}.sock"));
        let listener = {
            let _guard = rt.enter();
            tokio::net::UnixListener::bind(&path)?
        };
        let answer = answer.clone();
        rt.spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let answer = answer.clone();
                tokio::spawn(async move {
                    let (r, mut w) = stream.into_split();
                    let mut lines = tokio::io::BufReader::new(r).lines();
                    while let Ok(Some(_)) = lines.next_line().await {
                        if w.write_all(&answer).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        paths.push(path);
    }
    Ok(paths)
}

/// A quiet client's `n` round trips through `socket`, one every [`QUIET_PACE`]; sorted. With
/// `agent`, every answer must be that agent's own.
fn quiet_calls(socket: &Path, agent: Option<AgentId>, n: usize) -> anyhow::Result<Vec<Duration>> {
    let mut client = Socket::connect(socket)?;
    let mut times = Vec::with_capacity(n);
    for id in 0..n {
        let t = Instant::now();
        let answer = whoami(&mut client, id)?;
        times.push(t.elapsed());
        let Some(ok) = answer.get("ok") else {
            anyhow::bail!("the quiet agent was refused: {answer}");
        };
        if agent.is_some_and(|a| ok["id"] != json!(a)) {
            anyhow::bail!("the quiet agent was answered as another: {answer}");
        }
        std::thread::sleep(QUIET_PACE.saturating_sub(t.elapsed()));
    }
    times.sort();
    Ok(times)
}

/// What a flood measured.
struct Flood {
    /// The quiet agent's round trips under it, sorted.
    quiet: Vec<Duration>,
    /// Flood requests answered with a result.
    answered: u64,
    /// Flood requests answered `rate_limited`.
    limited: u64,
    /// How long it lasted.
    took: Duration,
}

/// Runs `f` while each of `sockets` is flooded: a writer sending `whoami` as fast as the socket
/// takes it and a reader counting the answers.
fn flooding(
    sockets: &[PathBuf],
    f: impl FnOnce() -> anyhow::Result<Vec<Duration>>,
) -> anyhow::Result<Flood> {
    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicU64::new(0));
    let limited = Arc::new(AtomicU64::new(0));
    let mut threads = Vec::new();
    let mut streams = Vec::new();
    for path in sockets {
        let stream = UnixStream::connect(path)
            .with_context(|| format!("cannot connect to {}", path.display()))?;
        let mut writer = stream.try_clone()?;
        streams.push(stream.try_clone()?);
        let reader = BufReader::new(stream);
        let writing = stop.clone();
        threads.push(std::thread::spawn(move || {
            let request = b"{\"id\":1,\"method\":\"whoami\"}\n".repeat(64);
            // Blocks while the gateway holds this agent back; ends when the socket is shut.
            while !writing.load(Ordering::Relaxed) && writer.write_all(&request).is_ok() {}
        }));
        let (answered, limited) = (answered.clone(), limited.clone());
        threads.push(std::thread::spawn(move || {
            for line in reader.lines() {
                let Ok(line) = line else { return };
                if line.contains("\"rate_limited\"") {
                    limited.fetch_add(1, Ordering::Relaxed);
                } else if line.contains("\"ok\"") {
                    answered.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    // Let the flood reach its pace before the quiet agent starts.
    std::thread::sleep(Duration::from_secs(1));
    let (a0, l0) = (
        answered.load(Ordering::Relaxed),
        limited.load(Ordering::Relaxed),
    );
    let started = Instant::now();
    let quiet = f();
    let took = started.elapsed();
    let (a1, l1) = (
        answered.load(Ordering::Relaxed),
        limited.load(Ordering::Relaxed),
    );
    stop.store(true, Ordering::Relaxed);
    for s in &streams {
        let _ = s.shutdown(std::net::Shutdown::Both);
    }
    for t in threads {
        let _ = t.join();
    }
    Ok(Flood {
        quiet: quiet?,
        answered: a1 - a0,
        limited: l1 - l0,
        took,
    })
}

/// One `whoami` round trip, refused or not: its answer.
fn whoami(client: &mut Socket, id: usize) -> anyhow::Result<Value> {
    client.send(&json!({ "id": id, "method": "whoami" }))?;
    client.line()
}
