//! `roster bench`: each figure is printed next to a raw baseline measured in the same run on the
//! same machine, and their ratio. Shared, noisy machines make absolute times unreliable; the
//! ratio is the figure to compare across machines.
//!
//! - `append`: durable appends through `roster-store` (group commit) from N concurrent writers,
//!   vs sled batch-insert + flush of the very same record bytes, batched as the group commit could
//!   at best (writers × batch per flush).
//! - `replay`: read + verify + decode + fold a realistic log into a `World`, vs sled iterate +
//!   postcard decode of the same records (opening, with its integrity checks, is timed apart).
//! - `authorize`: `World::authorize` latency in a world with many grants, vs a bare scan of the
//!   agent's grants for a matching pattern (no chain, expiry or budget checks).
//! - `hire` (module `hire`): from `hire` to the agent's first answered gateway call, through a
//!   real daemon and engine, vs creating + starting the same container directly; and the
//!   daemon's own memory per running agent.
//! - `share` (module `share`): an agent's `publish` to another team's agent through an open
//!   share over NATS, vs a raw NATS request/reply on the same server; and the outbox's fan-out
//!   of committed events to JetStream, vs raw pipelined JetStream publishing of the same bytes.
//! - `scale` (module `scale`): a fleet of 200 agents in 4 teams — until all run vs raw create +
//!   start of as many, memory per agent, gateway round trips from all at once vs bare sockets,
//!   and a quiet agent's round trips while 100 others flood vs the same agent idle.

mod hire;
mod scale;
mod share;
mod socket;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use roster_core::actor::Actor;
use roster_core::capability::{Action, Capability, Resource, ONE};
use roster_core::command::{decide, Command, Decision};
use roster_core::event::{AgentSpec, Event};
use roster_core::id::{AgentId, CountingEntropy, GrantId, TeamId};
use roster_core::ledger::Ledger;
use roster_core::name::{Label, Name};
use roster_core::port::{AppendRequest, EventLog, LogRead};
use roster_core::time::Timestamp;
use roster_core::world::World;
use roster_runtime::app::now;
use roster_store::record;
use roster_store::{MemLog, SledLog};
use serde_json::{json, Value};

use crate::args::{BenchArgs, BenchWhich};
use crate::output::Out;

/// Runs the chosen benchmarks.
pub fn run(args: BenchArgs, out: Out) -> anyhow::Result<()> {
    let mut results = Vec::new();
    let all = args.which == BenchWhich::All;
    println!("roster bench on {} ({} cores)", host(), cores());
    if all || args.which == BenchWhich::Append {
        results.push(append(&args)?);
    }
    if all || args.which == BenchWhich::Replay {
        results.push(replay(&args)?);
    }
    if all || args.which == BenchWhich::Authorize {
        results.push(authorize(&args)?);
    }
    if all || args.which == BenchWhich::Hire {
        results.push(hire::run(&args)?);
    }
    if all || args.which == BenchWhich::Share {
        results.push(share::run(&args)?);
    }
    if all || args.which == BenchWhich::Scale {
        results.push(scale::run(&args)?);
    }
    if out.json {
        for r in &results {
            out.json_line(r)?;
        }
    }
    if let Some(path) = &args.out {
        let text: String = results.iter().map(|r| format!("{r}\n")).collect();
        std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

fn host() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown cpu".into())
}

fn cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

fn rate(n: u64, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64().max(1e-9)
}

fn name(s: &str) -> anyhow::Result<Name> {
    Name::parse(s).map_err(Into::into)
}

fn cap(s: &str) -> anyhow::Result<Capability> {
    Capability::parse(s).map_err(Into::into)
}

/// A typical event: a spend through a two-grant chain.
fn sample_event(i: u64) -> anyhow::Result<Event> {
    let mut e = CountingEntropy::new(i);
    let t = Timestamp::from_millis(1_700_000_000_000);
    Ok(Event::ActionPerformed {
        agent: AgentId::mint(t, &mut e),
        action: Action::parse("spend.usd")?,
        resource: Resource::parse("vendor:acme")?,
        amount: ONE,
        chain: vec![GrantId::mint(t, &mut e), GrantId::mint(t, &mut e)],
        approval: None,
    })
}

fn append(args: &BenchArgs) -> anyhow::Result<Value> {
    let tmp = tempfile::tempdir()?;
    let writers = args.writers.max(1);
    let batch = args.batch.max(1);
    let per_writer = (args.events / writers as u64).max(1);
    let log = Arc::new(SledLog::open(&tmp.path().join("log"))?);
    let started = Instant::now();
    let handles: Vec<_> = (0..writers)
        .map(|w| {
            let log = Arc::clone(&log);
            std::thread::spawn(move || -> anyhow::Result<u64> {
                let team = TeamId::mint(now(), &mut CountingEntropy::new(w as u64 * 1_000_003));
                let mut version = 0u64;
                let mut written = 0u64;
                while written < per_writer {
                    let n = (per_writer - written).min(batch as u64);
                    let events = (0..n)
                        .map(|i| sample_event(written + i))
                        .collect::<anyhow::Result<Vec<_>>>()?;
                    let done = log.append(AppendRequest {
                        at: None,
                        team,
                        expected_version: version,
                        events,
                        actor: Actor::Runtime,
                        causation: None,
                    })?;
                    version += done.len() as u64;
                    written += n;
                }
                Ok(written)
            })
        })
        .collect();
    let mut total = 0;
    for h in handles {
        total += h
            .join()
            .map_err(|_| anyhow::anyhow!("a writer thread panicked"))??;
    }
    let ours = started.elapsed();
    let flushes = log.flush_count();
    // The same bytes, raw: sled batch insert + flush, writers × batch records per flush.
    let records = records_of(&log)?;
    drop(log);
    let per_flush = writers * batch;
    let raw =
        roster_store::baseline::insert_and_flush(&tmp.path().join("raw"), &records, per_flush)?;
    let (ours_rate, raw_rate) = (rate(total, ours), rate(total, raw));
    let bytes: usize = records.iter().map(Vec::len).sum();
    println!("\nappend: {total} events ({} bytes/record avg), {writers} writers × {batch} events per append, durable (flushed) before acknowledged", bytes / records.len().max(1));
    println!(
        "  roster-store append      {:>10.0} events/s   ({:.0} events per flush: group commit)",
        ours_rate,
        total as f64 / flushes.max(1) as f64
    );
    println!(
        "  raw sled batch + flush   {:>10.0} events/s   ({per_flush} records per flush)",
        raw_rate
    );
    // The target is for batched appends; a writer's single events are bound by flushes.
    let target = if batch >= 2 {
        "target ≥ 0.8×, ≥ 50k events/s"
    } else {
        "no target: single-event appends wait for their flush"
    };
    println!(
        "  ratio                    {:>10.2}×   ({target})",
        ours_rate / raw_rate
    );
    Ok(
        json!({"bench": "append", "events": total, "writers": writers, "batch": batch,
        "events_per_sec": ours_rate, "flushes": flushes, "raw_events_per_sec": raw_rate, "ratio": ours_rate / raw_rate}),
    )
}

/// Builds a log that folds: 4 teams, 25 agents each with root grants, then spends until `n`
/// (500 decided on one world and committed as one append, as a busy runtime's group would be).
fn build_realistic_log(log: Arc<SledLog>, n: u64) -> anyhow::Result<()> {
    let mut ledger = Ledger::open(log)?;
    let mut entropy = CountingEntropy::new(42);
    let op = Actor::Operator(name("bench")?);
    let t0 = now();
    let mut agents = Vec::new();
    for t in 0..4 {
        let team_name = name(&format!("team-{t}"))?;
        let created = ledger.execute(
            Command::CreateTeam { name: team_name },
            &op,
            t0,
            &mut entropy,
        )?;
        let team = created.first().map(|e| e.team).context("team")?;
        for a in 0..25 {
            let cmd = Command::Hire {
                team,
                name: name(&format!("agent-{a}"))?,
                role: Label::parse("bench")?,
                spec: AgentSpec::base(),
                disk: roster_core::limits::DiskMib::default(),
                grants: vec![cap("spend.usd@**")?, cap(&format!("email.*@mailbox:{a}"))?],
            };
            ledger.execute(cmd, &op, t0, &mut entropy)?;
        }
        agents.extend(
            ledger
                .world()
                .agents()
                .filter(|x| x.team == team)
                .map(|x| (x.id, team)),
        );
    }
    let action = Action::parse("spend.usd")?;
    let resource = Resource::parse("vendor:acme")?;
    let mut i = 0usize;
    while ledger.world().next_seq() < n {
        let (agent, team) = agents[i % agents.len()];
        i += 1;
        let actor = Actor::Agent(agent);
        let mut events = Vec::with_capacity(500);
        for _ in 0..500 {
            let cmd = Command::Act {
                action: action.clone(),
                resource: resource.clone(),
                amount: ONE,
                args: Default::default(),
                approval: None,
                key: None,
            };
            let d = decide(ledger.world(), cmd, &actor, t0, &mut entropy)
                .map_err(|r| anyhow::anyhow!("{r}"))?;
            events.extend(d.events);
        }
        let batch = Decision {
            team,
            expected_version: ledger.world().team_version(team),
            events,
        };
        ledger.commit(batch, &actor, t0)?;
    }
    Ok(())
}

fn replay(args: &BenchArgs) -> anyhow::Result<Value> {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("log");
    {
        build_realistic_log(Arc::new(SledLog::open(&dir)?), args.events)?;
    }
    // Ours, cold: open (with its integrity checks) + read + verify every hash + decode + fold.
    // Then warm: the same read + verify + decode + fold again, with sled's cache filled.
    let started = Instant::now();
    let log = SledLog::open(&dir)?;
    let (total, _) = fold_all(&log)?;
    let ours_cold = started.elapsed();
    let started = Instant::now();
    fold_all(&log)?;
    let ours_warm = started.elapsed();
    // Raw: the same record bytes in a bare sled tree, opened, iterated and postcard-decoded,
    // cold then warm.
    let records = records_of(&log)?;
    drop(log);
    let raw_dir = tmp.path().join("raw");
    roster_store::baseline::insert_and_flush(&raw_dir, &records, 8192)?;
    drop(records);
    let raw = roster_store::baseline::iterate_and_decode(&raw_dir)?;
    let (decoded, raw_cold, raw_warm) = (raw.records, raw.cold, raw.warm);
    let r = |n, d| rate(n, d);
    let (oc, ow, rc, rw) = (
        r(total, ours_cold),
        r(total, ours_warm),
        r(decoded, raw_cold),
        r(decoded, raw_warm),
    );
    println!("\nreplay: {total} events (4 teams, 100 agents, spends)");
    println!("                                            cold (incl. open)     warm");
    println!("  roster: read + verify + decode + fold  {oc:>10.0} events/s {ow:>10.0} events/s");
    println!("  raw sled iterate + decode              {rc:>10.0} events/s {rw:>10.0} events/s");
    println!("  ratio                                  {:>10.2}×          {:>10.2}×   (target ≥ 0.5×, ≥ 500k events/s)", oc / rc, ow / rw);
    Ok(json!({"bench": "replay", "events": total,
        "cold_events_per_sec": oc, "raw_cold_events_per_sec": rc, "cold_ratio": oc / rc,
        "events_per_sec": ow, "raw_events_per_sec": rw, "ratio": ow / rw}))
}

/// Reads, verifies, decodes and folds the whole log; returns the event count.
fn fold_all(log: &SledLog) -> anyhow::Result<(u64, World)> {
    let mut world = World::new();
    let mut next = 0;
    loop {
        let chunk = log.read(next, 8192)?;
        if chunk.is_empty() {
            return Ok((world.next_seq(), world));
        }
        next += chunk.len() as u64;
        for e in &chunk {
            world.apply(e)?;
        }
    }
}

/// Every record of the log, as the store writes it (for the raw baselines).
fn records_of(log: &SledLog) -> anyhow::Result<Vec<Vec<u8>>> {
    let mut records = Vec::with_capacity(usize::try_from(log.len()).unwrap_or(0));
    loop {
        let chunk = log.read(records.len() as u64, 8192)?;
        if chunk.is_empty() {
            return Ok(records);
        }
        records.extend(chunk.iter().map(record::encode));
    }
}

/// A world with `grants` grants: agents with 10 grants each, a third of them hired by another
/// agent with derived (attenuated) grants, so chains are up to 3 long. Recorded in memory.
fn authz_world(grants: usize) -> anyhow::Result<(World, Vec<AgentId>)> {
    let mut ledger = Ledger::open(Arc::new(MemLog::new()))?;
    let mut entropy = CountingEntropy::new(7);
    let op = Actor::Operator(name("bench")?);
    let t0 = Timestamp::from_millis(1_700_000_000_000);
    let mut apply = |ledger: &mut Ledger<MemLog>, cmd: Command, actor: &Actor| {
        ledger.execute(cmd, actor, t0, &mut entropy).map(drop)
    };
    apply(
        &mut ledger,
        Command::CreateTeam {
            name: name("bench")?,
        },
        &op,
    )?;
    let team = ledger
        .world()
        .team_named(&name("bench")?)
        .map(|t| t.id)
        .context("team")?;
    let per_agent = 10;
    let agents_n = (grants / per_agent).max(1);
    let mut agents = Vec::with_capacity(agents_n);
    for i in 0..agents_n {
        let lead = i % 3 == 0 || agents.is_empty();
        let grants = if lead {
            vec![
                cap("agent.hire@team:bench,budget=1000000")?,
                cap(&format!("email.*@mailbox:a{i}/**"))?,
                cap("spend.usd@**,budget=1000000000")?,
                cap(&format!("repo.push@repo:org{}/*", i % 50))?,
                cap(&format!("repo.pull@repo:org{}/**", i % 50))?,
                cap(&format!("kv.*@bucket:b{i}/*"))?,
                cap("calendar.read@calendar:*")?,
                cap(&format!("doc.write@doc:d{i}/**,approval"))?,
                cap("search.query@**")?,
                cap(&format!("chat.post@channel:c{}", i % 20))?,
            ]
        } else {
            let j = i - i % 3;
            vec![
                cap("agent.hire@team:bench,budget=10")?,
                cap(&format!("email.send@mailbox:a{j}/*"))?,
                cap("spend.usd@vendor:*,budget=1000")?,
                cap(&format!("repo.push@repo:org{}/x", j % 50))?,
                cap(&format!("repo.pull@repo:org{}/**", j % 50))?,
                cap(&format!("kv.get@bucket:b{j}/*"))?,
                cap("calendar.read@calendar:team")?,
                cap(&format!("doc.write@doc:d{j}/notes,approval"))?,
                cap("search.query@web:*")?,
                cap(&format!("chat.post@channel:c{}", j % 20))?,
            ]
        };
        let actor = if lead {
            op.clone()
        } else {
            Actor::Agent(agents[i - i % 3])
        };
        let cmd = Command::Hire {
            team,
            name: name(&format!("a{i}"))?,
            role: Label::parse("")?,
            spec: AgentSpec::base(),
            disk: roster_core::limits::DiskMib::default(),
            grants,
        };
        apply(&mut ledger, cmd, &actor)?;
        let id = ledger
            .world()
            .agent_named(team, &name(&format!("a{i}"))?)
            .map(|a| a.id)
            .context("agent")?;
        agents.push(id);
    }
    Ok((ledger.world().clone(), agents))
}

pub(crate) fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).copied().unwrap_or_default()
}

fn authorize(args: &BenchArgs) -> anyhow::Result<Value> {
    let (world, agents) = authz_world(args.grants)?;
    let grants = world.grants().count();
    let queries: Vec<(AgentId, Action, Resource)> = (0..4096usize)
        .map(|q| {
            let a = agents[(q * 7919) % agents.len()];
            let (act, res) = match q % 6 {
                0 => (
                    "email.send",
                    format!("mailbox:a{}/inbox", (q * 7919) % agents.len()),
                ),
                1 => ("spend.usd", "vendor:acme".to_string()),
                2 => ("repo.push", format!("repo:org{}/x", q % 50)),
                3 => ("kv.get", format!("bucket:b{}/k", q % 97)),
                4 => ("search.query", "web:news".to_string()),
                _ => ("admin.delete", "cluster:prod".to_string()),
            };
            Ok((a, Action::parse(act)?, Resource::parse(&res)?))
        })
        .collect::<anyhow::Result<_>>()?;
    let t = Timestamp::from_millis(1_700_000_000_000);
    let rounds = 50;
    let measure = |f: &dyn Fn(&(AgentId, Action, Resource)) -> bool| {
        let mut samples = Vec::with_capacity(queries.len() * rounds);
        let mut allowed = 0usize;
        for _ in 0..rounds {
            for q in &queries {
                let s = Instant::now();
                let ok = std::hint::black_box(f(q));
                samples.push(s.elapsed());
                allowed += usize::from(ok);
            }
        }
        samples.sort();
        (samples, allowed)
    };
    let (ours, allowed) = measure(&|(a, act, res)| {
        matches!(
            world.authorize(*a, act, res, ONE, t),
            roster_core::authz::Authorization::Allow { .. }
        )
    });
    let (raw, _) =
        measure(&|(a, act, res)| world.grants_of(*a).any(|g| g.capability.matches(act, res)));
    let (p50, p99, r50, r99) = (
        percentile(&ours, 0.5),
        percentile(&ours, 0.99),
        percentile(&raw, 0.5),
        percentile(&raw, 0.99),
    );
    let ratio = p50.as_secs_f64() / r50.as_secs_f64().max(1e-12);
    println!(
        "\nauthorize: {grants} grants, {} agents, {} calls ({:.0}% allowed)",
        agents.len(),
        ours.len(),
        100.0 * allowed as f64 / ours.len() as f64
    );
    println!(
        "  World::authorize          p50 {:>7.2} µs   p99 {:>7.2} µs",
        micros(p50),
        micros(p99)
    );
    println!(
        "  bare pattern scan         p50 {:>7.2} µs   p99 {:>7.2} µs",
        micros(r50),
        micros(r99)
    );
    println!(
        "  ratio (p50)               {:>7.2}×   (target p50 ≤ 2 µs)",
        ratio
    );
    Ok(
        json!({"bench": "authorize", "grants": grants, "p50_us": micros(p50), "p99_us": micros(p99),
        "raw_p50_us": micros(r50), "raw_p99_us": micros(r99), "ratio": ratio}),
    )
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}
