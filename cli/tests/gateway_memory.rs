//! No agent can make the daemon hold memory for it: two agents without a single grant, each on
//! every connection it may open, ask for `history` pages as fast as the gateway takes them and
//! never read an answer; then one of them opens every connection it may with a line of a
//! mebibyte that never ends (slowloris). Checked against the real `roster serve`:
//! - the daemon's resident set grows by at most [`GROWTH_MAX_KIB`] during the flood (a page is
//!   cut at 512 KiB, answers waiting for a peer or being made for it are bounded in bytes, per
//!   connection and per agent, and a connection whose answers are not read is not read either);
//! - every line that never ends is cut off after the line timeout (shortened here through
//!   `ROSTER_GATEWAY_LINE_TIMEOUT_MS`), while a connection that only waits, with nothing
//!   half-sent, stays open and is answered;
//! - once the agents hang up, the resident set comes back within [`AFTER_MAX_KIB`] of where it
//!   started.
//!
//! Before the budgets (a queue of 64 lines per connection, pages of 1,000 events, here ~16 MB),
//! the same flood took the daemon from ~205 MiB to 394–550 MiB in 6 s and was still climbing,
//! and not one of the 16 unfinished lines was cut off.
//!
//! Needs a Docker engine and the static `roster-agent`; `scripts/test` provides both.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{rss_kib, wait_for, Gateway, Served};
use roster_core::actor::Actor;
use roster_core::capability::{Action, Amount, Resource};
use roster_core::command::Command;
use roster_core::gateway::MAX_LINE;
use roster_core::id::AgentId;
use roster_core::name::Name;
use serde_json::{json, Value};

/// Events in the team's history: more than a page of 1,000.
const EVENTS: usize = 1_100;

/// The argument each event records (an agent may send 64 KiB): a page of 1,000 events is
/// ~16 MB.
const ARG: usize = 16 * 1024;

/// Agents flooding, and connections each (the gateway's cap per agent).
const AGENTS: usize = 2;
const CONNECTIONS: usize = 16;

/// How long the flood lasts.
const FLOOD: Duration = Duration::from_secs(6);

/// The line timeout the daemon runs with here (30 s by default).
const LINE_TIMEOUT_MS: u64 = 1_000;

/// The most the daemon's resident set may grow while the agents flood it: what two agents'
/// budgets allow, with room for the allocator.
const GROWTH_MAX_KIB: u64 = 64 * 1024;

/// How far above where it started the resident set may stay once the agents are gone.
const AFTER_MAX_KIB: u64 = 32 * 1024;

/// How long after the agents hang up the resident set is read again: the gateway hands what
/// they freed back to the system 2 s after the last connection closed (`gateway/out.rs`).
const SETTLE: Duration = Duration::from_secs(3);

/// Records `n` calls of `agent` waiting for an approval, each with an argument of [`ARG`]
/// bytes, on the stopped daemon's store, in one append: the history the flooders ask for.
fn fill_history(dir: &Path, agent: AgentId, n: usize) {
    let acts = (0..n).map(|i| Command::Act {
        action: Action::parse("report.file").unwrap(),
        resource: Resource::parse(&format!("desk:report-{i}")).unwrap(),
        amount: Amount::new(1).unwrap(),
        args: [(Name::parse("body").unwrap(), "x".repeat(ARG))].into(),
        approval: None,
        key: None,
    });
    common::commit_at_once(dir, &Actor::Agent(agent), 7, acts);
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// `kib` over `base`, in MiB (negative when below).
fn over(kib: u64, base: u64) -> f64 {
    (kib as f64 - base as f64) / 1024.0
}

/// The daemon's resident set, sampled every 100 ms for `how_long`: the highest seen.
fn peak_over(pid: u32, how_long: Duration) -> u64 {
    let until = Instant::now() + how_long;
    let mut peak = rss_kib(pid);
    while Instant::now() < until {
        std::thread::sleep(Duration::from_millis(100));
        peak = peak.max(rss_kib(pid));
    }
    peak
}

/// A client that asks for pages of history as fast as the socket takes them and reads nothing.
struct Flooder {
    stream: UnixStream,
    thread: std::thread::JoinHandle<()>,
}

fn flood(path: &Path, stop: &Arc<AtomicBool>) -> Flooder {
    let stream = UnixStream::connect(path).unwrap();
    let mut writer = stream.try_clone().unwrap();
    let stop = stop.clone();
    let thread = std::thread::spawn(move || {
        let mut batch = Vec::new();
        for id in 0..64 {
            let req = json!({"id": id, "method": "history", "params": {"limit": 1000}});
            batch.extend_from_slice(format!("{req}\n").as_bytes());
        }
        // Blocks once the gateway stops reading; ends when the socket is shut down.
        while !stop.load(Ordering::Relaxed) && writer.write_all(&batch).is_ok() {}
    });
    Flooder { stream, thread }
}

/// A connection the gateway serves (one of the flood's may still hold its slot for a moment
/// after it hung up: then the gateway refuses the new one, and it is tried again).
fn served_connection(path: &Path) -> UnixStream {
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        let mut c = UnixStream::connect(path).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut answer = String::new();
        let asked = c.write_all(b"{\"id\":1,\"method\":\"whoami\"}\n").is_ok();
        let mut reader = std::io::BufReader::new(c.try_clone().unwrap());
        if asked && std::io::BufRead::read_line(&mut reader, &mut answer).is_ok() {
            let answer: Value = serde_json::from_str(&answer).unwrap_or(Value::Null);
            if answer["ok"].is_object() {
                return c;
            }
        }
        assert!(Instant::now() < until, "no connection served: {answer}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Whether the gateway closes `stream` within `limit`, reading (and keeping the last line of)
/// whatever it says first.
fn closed_within(stream: &mut UnixStream, limit: Duration) -> (bool, String) {
    let until = Instant::now() + limit;
    let mut said = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < until {
        stream
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        match stream.read(&mut buf) {
            Ok(0) => return (true, String::from_utf8_lossy(&said).trim().to_owned()),
            Ok(n) => said.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return (true, String::from_utf8_lossy(&said).trim().to_owned()),
        }
    }
    (false, String::from_utf8_lossy(&said).trim().to_owned())
}

#[test]
fn agents_that_never_read_or_never_end_a_line_cannot_grow_the_daemon() {
    // Inherited by the `roster serve` below (this binary runs only this test).
    std::env::set_var(
        "ROSTER_GATEWAY_LINE_TIMEOUT_MS",
        LINE_TIMEOUT_MS.to_string(),
    );
    let mut s = Served::new();
    s.ok(&["team", "create", "lab"]);
    let holder = s.hire_into("lab", "holder", &["--grant", "report.file@*,approval"]);
    let greedy: Vec<String> = (0..AGENTS)
        .map(|i| s.hire_into("lab", &format!("greedy-{i}"), &[]))
        .collect();
    s.stop();
    fill_history(&s.dir, holder.parse().unwrap(), EVENTS);
    s.start();
    let socket =
        |agent: &str| -> PathBuf { s.dir.join("gateways").join(agent).join("gateway.sock") };
    wait_for("the gateways", Duration::from_secs(60), || {
        greedy
            .iter()
            .all(|a| UnixStream::connect(socket(a)).is_ok())
    });

    // A reader that does read: what a page weighs, and the daemon warmed up by one.
    let mut reader = Gateway::connect(&s, &greedy[0]);
    let started = Instant::now();
    let page = reader
        .call("history", json!({"limit": 1000}))
        .expect("a page of history");
    let page_bytes = page.to_string().len();
    let page_events = page["events"].as_array().unwrap().len();
    println!(
        "a page: {page_events} events, {:.2} MB as JSON, read in {:?}; next {}, version {}",
        page_bytes as f64 / 1e6,
        started.elapsed(),
        page["next"],
        page["version"]
    );
    drop(reader);
    std::thread::sleep(Duration::from_secs(1));
    let pid = s.pid();
    let baseline = rss_kib(pid);

    // The flood: every connection of both agents, nothing ever read.
    let stop = Arc::new(AtomicBool::new(false));
    let flooders: Vec<Flooder> = greedy
        .iter()
        .flat_map(|a| (0..CONNECTIONS).map(move |_| a))
        .map(|a| flood(&socket(a), &stop))
        .collect();
    let peak = peak_over(pid, FLOOD);
    stop.store(true, Ordering::Relaxed);
    // The flood was served, then held back: pages wait on the connections that got room (which
    // ones depends on the timing), and come once the agent reads them.
    for own in flooders.chunks(CONNECTIONS) {
        let mut pages = 0;
        for f in own {
            f.stream
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            let mut lines = std::io::BufReader::new(f.stream.try_clone().unwrap());
            let mut line = String::new();
            if std::io::BufRead::read_line(&mut lines, &mut line).is_ok_and(|n| n > 0) {
                let page: Value = serde_json::from_str(&line).unwrap();
                assert!(page["ok"]["events"].is_array(), "not a page: {line:.200}");
                pages += 1;
            }
        }
        assert!(
            pages > 0,
            "none of an agent's connections gave a page once it read"
        );
    }
    for f in &flooders {
        let _ = f.stream.shutdown(std::net::Shutdown::Both);
    }
    for f in flooders {
        f.thread.join().unwrap();
    }
    std::thread::sleep(SETTLE);
    let after_flood = rss_kib(pid);
    println!(
        "flood of {AGENTS} agents x {CONNECTIONS} connections for {FLOOD:?}, nothing read: daemon RSS baseline {:.1} MiB, peak {:.1} MiB ({:+.1}), {SETTLE:?} after they hung up {:.1} MiB ({:+.1})",
        mib(baseline),
        mib(peak),
        over(peak, baseline),
        mib(after_flood),
        over(after_flood, baseline)
    );

    // Slowloris: a mebibyte without its newline on every connection of one agent, while a
    // connection of the other only waits (as a subscriber would).
    let mut waiting = Gateway::connect(&s, &greedy[1]);
    assert_eq!(
        waiting.call("whoami", Value::Null).unwrap()["name"],
        "greedy-1"
    );
    let mut slow: Vec<UnixStream> = (0..CONNECTIONS)
        .map(|_| {
            let mut c = served_connection(&socket(&greedy[0]));
            c.write_all(&vec![b' '; MAX_LINE]).unwrap();
            c
        })
        .collect();
    let held = peak_over(pid, Duration::from_millis(LINE_TIMEOUT_MS / 2));
    let limit = Duration::from_millis(LINE_TIMEOUT_MS * 10);
    let cut: Vec<(bool, String)> = slow.iter_mut().map(|c| closed_within(c, limit)).collect();
    let closed = cut.iter().filter(|(closed, _)| *closed).count();
    drop(slow);
    // Three line timeouts later, the connection that only waited is still served.
    std::thread::sleep(SETTLE.max(Duration::from_millis(LINE_TIMEOUT_MS * 3)));
    let still = waiting.call("whoami", Value::Null);
    let after = rss_kib(pid);
    println!(
        "slowloris, {CONNECTIONS} lines of {MAX_LINE} bytes never ended: daemon RSS {:.1} MiB while held ({:+.1}); {closed} cut off within {limit:?}, told {:?}; {SETTLE:?} later {:.1} MiB ({:+.1} from the baseline)",
        mib(held),
        over(held, baseline),
        cut[0].1,
        mib(after),
        over(after, baseline)
    );

    assert!(
        peak <= baseline + GROWTH_MAX_KIB,
        "two agents that never read grew the daemon from {:.1} MiB to {:.1} MiB",
        mib(baseline),
        mib(peak)
    );
    assert!(
        after_flood <= baseline + AFTER_MAX_KIB,
        "the daemon kept what it held for agents that hung up: {:.1} MiB, from {:.1} MiB",
        mib(after_flood),
        mib(baseline)
    );
    assert_eq!(
        closed, CONNECTIONS,
        "lines that never ended were held past the line timeout: {cut:?}"
    );
    assert!(
        cut.iter().all(|(_, said)| said.contains("invalid_json")),
        "a line that never ended is cut off with an answer saying why: {cut:?}"
    );
    assert_eq!(
        still.expect("the waiting connection is served")["name"],
        "greedy-1",
        "a connection with nothing half-sent is not cut"
    );
    assert!(
        after <= baseline + AFTER_MAX_KIB,
        "the daemon kept what it held for the half-sent lines: {:.1} MiB, from {:.1} MiB",
        mib(after),
        mib(baseline)
    );
    // Nothing recorded by any of it: these were reads and broken lines.
    assert_eq!(s.count("AccessDenied"), 0);
}
