//! `roster bench share`: what the runtime adds to a message crossing teams, and how fast it
//! fans committed events out to JetStream.
//!
//! Latency. A daemon runs in this process with a NATS bus, on a fresh data directory and
//! namespace, with two teams whose share is open and one agent in each (real containers). The
//! bench speaks through the agents' own gateway sockets (from the host side of the bind mount,
//! the same socket the agent's process uses): the receiver subscribes, the sender publishes to
//! the other team, and each message is timed from the sender's request to the receiver's push.
//! That is the whole path: the gateway, `decide` and the durable `ContextShared` record (one
//! flush per message), the publish on NATS, the importing team's inbox with its check where the
//! message arrives, and the receiver's gateway. Messages are paced below the agent's rate limit
//! (200/s), one at a time. The raw baseline is one core-NATS request/reply round trip on the
//! same server (`roster_bus::baseline::request_reply`).
//!
//! Fan-out. A log of `--fanout` committed events (one team's spends) is published by a fresh
//! outbox from the start, timed until JetStream acknowledged the last; the raw baseline
//! publishes the very same bytes and headers, pipelined with the same window, into a stream of
//! its own (`roster_bus::baseline::jetstream_publish`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use roster_core::actor::Actor;
use roster_core::command::Command;
use roster_core::event::Event;
use roster_core::id::TeamId;
use roster_core::ledger::Ledger;
use roster_core::name::Name;
use roster_core::port::{AppendRequest, EventLog, LogRead};
use roster_core::topic::TopicPattern;
use roster_runtime::daemon::Daemon;
use roster_store::{OsEntropy, SledLog};
use serde_json::{json, Value};

use super::hire::{create_team, hire, ms, wait_first_call, with_daemon};
use super::socket::Socket;
use super::{percentile, rate, sample_event};
use crate::args::BenchArgs;

/// Time between two timed messages: under the gateway's 200 requests/s per agent.
const PACE: Duration = Duration::from_micros(5_500);

/// The size of each timed message and of the raw round trip's payload.
const MESSAGE: usize = 256;

pub fn run(args: &BenchArgs) -> anyhow::Result<Value> {
    // A server of our own unless one was named: both figures are measured on it.
    let own = match &args.nats {
        Some(_) => None,
        None => Some(roster_bus::NatsServer::start()?),
    };
    let url = match (&args.nats, &own) {
        (Some(url), _) => url.clone(),
        (None, Some(server)) => roster_bus::BusUrl::parse(&server.url())?,
        (None, None) => anyhow::bail!("no NATS server"),
    };
    println!("\nshare: over NATS at {url}");
    let latency = with_daemon(args, "benchshare", Some(url.clone()), |rt, d, _| {
        latency(args, rt, d, &url)
    })?;
    let fanout = fanout(args, &url)?;
    Ok(json!({ "bench": "share", "latency": latency, "fanout": fanout }))
}

fn latency(
    args: &BenchArgs,
    rt: &tokio::runtime::Runtime,
    d: &Daemon,
    url: &roster_bus::BusUrl,
) -> anyhow::Result<Value> {
    let research = create_team(d, "research")?;
    let product = create_team(d, "product")?;
    let started = Instant::now();
    let sender = hire(d, research, "sender")?;
    let teammate = hire(d, research, "teammate")?;
    let receiver = hire(d, product, "receiver")?;
    for agent in [sender, teammate, receiver] {
        wait_first_call(d, agent, started)?;
    }
    open_share(d, research, product)?;

    let n = args.messages.max(1);
    let mut tx = Socket::open(d, sender)?;
    let mut rx = Socket::open(d, receiver)?;
    let times = timed(&mut tx, &mut rx, n, "findings/daily", Some("product"))?;
    let mut mate = Socket::open(d, teammate)?;
    // A topic the share does not cover: nothing is forwarded or recorded.
    let inside = timed(&mut tx, &mut mate, n, "notes/daily", None)?;
    let client = rt.block_on(roster_bus::connect_now(url, Duration::from_secs(5)))?;
    let mut raw = rt.block_on(roster_bus::baseline::request_reply(&client, n, MESSAGE))?;
    raw.sort();
    // What one durable record costs on this disk, for reading the crossing's figure: each
    // crossing is recorded (one flush) before it is sent.
    let flush_dir = tempfile::tempdir()?;
    let flushes = 200;
    let record = vec![0u8; 300];
    let flush_total = roster_store::baseline::insert_and_flush(
        &flush_dir.path().join("db"),
        &vec![record; flushes],
        1,
    )?;
    let flush_mean = flush_total / flushes as u32;
    let (p50, p99) = (percentile(&times, 0.5), percentile(&times, 0.99));
    let (r50, r99) = (percentile(&raw, 0.5), percentile(&raw, 0.99));
    let ratio = p50.as_secs_f64() / r50.as_secs_f64().max(1e-9);
    println!("  {n} messages of {MESSAGE} B from an agent of one team to an agent of another, one at a time");
    println!(
        "  publish → pushed to the receiver   p50 {:>7.3} ms   p99 {:>7.3} ms",
        ms(p50),
        ms(p99)
    );
    println!(
        "  (within the team, no share, no record: p50 {:>7.3} ms   p99 {:>7.3} ms)",
        ms(percentile(&inside, 0.5)),
        ms(percentile(&inside, 0.99))
    );
    println!(
        "  raw NATS request/reply            p50 {:>7.3} ms   p99 {:>7.3} ms",
        ms(r50),
        ms(r99)
    );
    println!(
        "  (one durable record on this disk, raw sled insert + flush: mean {:>7.3} ms)",
        ms(flush_mean)
    );
    println!("  ratio (p50)                       {ratio:>7.2}×   (target ≤ 5×)");
    Ok(json!({"messages": n, "p50_ms": ms(p50), "p99_ms": ms(p99),
        "raw_p50_ms": ms(r50), "raw_p99_ms": ms(r99), "ratio": ratio,
        "team_p50_ms": ms(percentile(&inside, 0.5)), "team_p99_ms": ms(percentile(&inside, 0.99)),
        "raw_flush_mean_ms": ms(flush_mean)}))
}

/// Times `n` messages (after a warm-up) from `tx`'s agent to `rx`'s, one at a time: from the
/// publish request to the push; sorted. `team`: another team to send to, through the share.
fn timed(
    tx: &mut Socket,
    rx: &mut Socket,
    n: usize,
    topic: &str,
    team: Option<&str>,
) -> anyhow::Result<Vec<Duration>> {
    rx.call(&json!({"id": 0, "method": "subscribe", "params": {"topics": ["**"]}}))?;
    let warmup = (n / 10).max(10);
    let text = "x".repeat(MESSAGE);
    let mut params = json!({"topic": topic, "message": text});
    if let Some(team) = team {
        params["team"] = json!(team);
    }
    let mut times = Vec::with_capacity(n);
    for i in 0..(n + warmup) {
        let request = json!({"id": i + 1, "method": "publish", "params": params});
        let t0 = Instant::now();
        tx.send(&request)?;
        let push = rx.line()?;
        let took = t0.elapsed();
        let answer = tx.line()?;
        if answer.get("ok").is_none() {
            anyhow::bail!("the publish was refused: {answer}");
        }
        if push["push"]["kind"] != "message" {
            anyhow::bail!("the receiver got {push}, not the message");
        }
        if i >= warmup {
            times.push(took);
        }
        std::thread::sleep(PACE.saturating_sub(t0.elapsed()));
    }
    times.sort();
    Ok(times)
}

/// Opens a share from `from` to `to` on `findings/**`, as an operator.
fn open_share(d: &Daemon, from: TeamId, to: TeamId) -> anyhow::Result<()> {
    let actor = super::hire::bench_operator()?;
    let propose = Command::ProposeShare {
        from,
        to,
        topics: TopicPattern::parse("findings/**")?,
    };
    let proposed = d.decide(|app| app.execute(propose, &actor))??;
    let share = proposed
        .iter()
        .find_map(|e| match &e.event {
            Event::ShareProposed { share, .. } => Some(*share),
            _ => None,
        })
        .context("no share proposed")?;
    d.decide(|app| app.execute(Command::AcceptShare { share }, &actor))??;
    Ok(())
}

/// A log of `n` committed events of one team (its creation, then spends).
fn fanout_log(dir: &std::path::Path, n: u64) -> anyhow::Result<Arc<SledLog>> {
    let log = Arc::new(SledLog::open(dir)?);
    let operator = Actor::Operator(Name::parse("bench")?);
    let team = Command::CreateTeam {
        name: Name::parse("fanout")?,
    };
    // The team through the ledger; then raw spends the outbox publishes (they need not fold).
    let created = Ledger::open(Arc::clone(&log))?.execute(
        team,
        &operator,
        roster_runtime::app::now(),
        &mut OsEntropy::new(),
    )?;
    let team = created.first().map(|e| e.team).context("no team created")?;
    let mut version = created.len() as u64;
    let mut i = version;
    while i < n {
        let batch = (n - i).min(1024);
        let events = (i..i + batch)
            .map(sample_event)
            .collect::<anyhow::Result<_>>()?;
        log.append(AppendRequest {
            team,
            expected_version: version,
            events,
            actor: operator.clone(),
            causation: None,
            at: None,
        })?;
        version += batch;
        i += batch;
    }
    Ok(log)
}

fn fanout(args: &BenchArgs, url: &roster_bus::BusUrl) -> anyhow::Result<Value> {
    let n = args.fanout.max(2);
    let tmp = tempfile::tempdir()?;
    let log = fanout_log(&tmp.path().join("log"), n)?;
    let envelopes = log.read(0, usize::try_from(n)?)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let ns = Name::parse(&format!("benchfan{:x}", std::process::id()))?;
    let window = roster_bus::OutboxConfig::default().window;
    let (ours, raw) = rt.block_on(async {
        let client = roster_bus::connect_now(url, Duration::from_secs(5)).await?;
        let started = Instant::now();
        let outbox = roster_bus::Outbox::spawn(log.clone(), client.clone(), ns.clone());
        outbox.published(n).await?;
        let ours = started.elapsed();
        outbox.stop().await;
        let raw_ns = Name::parse(&format!("benchraw{:x}", std::process::id()))?;
        let messages = envelopes
            .iter()
            .map(|e| {
                let subject =
                    roster_bus::subject::event(&raw_ns, &Name::parse("fanout")?, e.event.kind());
                Ok((
                    subject,
                    roster_bus::wire::headers(e),
                    roster_bus::wire::encode(e)?,
                ))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let raw = roster_bus::baseline::jetstream_publish(
            &client,
            &roster_bus::subject::events_stream(&raw_ns),
            &roster_bus::subject::all_events(&raw_ns),
            messages,
            window,
        )
        .await?;
        // The outbox's stream is the bench's own: remove it.
        roster_bus::delete_events_stream(&client, &ns).await?;
        anyhow::Ok((ours, raw))
    })?;
    let (ours_rate, raw_rate) = (rate(n, ours), rate(n, raw));
    println!("  fan-out of {n} committed events to JetStream (window {window})");
    println!("  outbox (read, encode, publish, ack, checkpoint)   {ours_rate:>9.0} events/s");
    println!("  raw pipelined JetStream publish, same bytes        {raw_rate:>9.0} events/s");
    println!(
        "  ratio                                             {:>9.2}×   (target ≥ 20k events/s)",
        ours_rate / raw_rate.max(1e-9)
    );
    Ok(
        json!({"events": n, "events_per_s": ours_rate, "raw_events_per_s": raw_rate,
        "ratio": ours_rate / raw_rate.max(1e-9)}),
    )
}
