//! Reliability suite, load: 100 agents flood their gateways at once, round after round, while a
//! quiet agent goes on working.
//!
//! Each flooding agent's client (on the agent's own socket, the path its process uses) sends
//! requests as fast as the socket takes them — `whoami`, `grants`, `history` and a line that is
//! not JSON, over and over — and one in ten never reads its answers. Checked, each round:
//! - the quiet agent is never starved: every one of its calls is answered, as itself, while the
//!   flood goes on (the flood stops only once the quiet agent is done, so a starved agent would
//!   hold the test until its limit);
//! - a flooding agent slows only itself: the requests it got served are at most its bucket's
//!   burst plus its rate for the time it flooded (the rest were answered `rate_limited`, or not
//!   read at all);
//! - the daemon's memory is bounded: its resident set after the last round is within a margin
//!   of what it was after the first, so rounds do not pile up (a reader that never reads must
//!   not make the daemon queue its answers);
//! - nothing was recorded (these are reads and bad lines), and the daemon still serves its
//!   operator.
//!
//! Timing is measured and printed (the quiet agent's p50/p99 idle and under flood) but not
//! asserted: `roster bench scale` reports it against its target, on a quiet machine.
//!
//! Needs Docker and the static `roster-agent` (`scripts/test` provides both); without them it
//! fails, loudly. Short form: 100 flooders, 3 rounds; long form (`ROSTER_LONG=1`): 10 rounds.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

#[path = "../../cli/tests/common/mod.rs"]
mod common;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{rss_kib, scaled, wait_for, Gateway, Served};
use serde_json::Value;

/// The gateway's default limits (`Limits::default()` in runtime/src/gateway/server.rs).
const PER_SEC: f64 = 200.0;
const BURST: f64 = 400.0;

/// Flooding agents.
const FLOODERS: usize = 100;

/// The quiet agent's calls per round, one every [`QUIET_PACE`].
const QUIET_CALLS: usize = 300;
/// Under its rate limit (200/s): the quiet agent is an agent at work, not a flood.
const QUIET_PACE: Duration = Duration::from_millis(6);

/// How much the daemon's resident set may differ between the first round and the last: the
/// allocator's slack, not a round's worth of anything. A leak of one queued answer per flooded
/// request would be hundreds of MiB.
const MEMORY_MARGIN_KIB: u64 = 24 * 1024;

/// What one flooding client saw.
#[derive(Debug, Default)]
struct Seen {
    served: AtomicU64,
    limited: AtomicU64,
}

struct Flooder {
    stream: UnixStream,
    seen: Arc<Seen>,
    since: Instant,
    threads: Vec<std::thread::JoinHandle<()>>,
}

/// Starts flooding `path`: a writer as fast as the socket takes it, and (when `reads`) a reader
/// counting the answers.
fn flood(path: &PathBuf, reads: bool, stop: &Arc<AtomicBool>) -> Flooder {
    let stream = UnixStream::connect(path).unwrap();
    let seen = Arc::new(Seen::default());
    let mut threads = Vec::new();
    let mut writer = stream.try_clone().unwrap();
    let stop = stop.clone();
    threads.push(std::thread::spawn(move || {
        let mut batch = Vec::new();
        for i in 0..32 {
            let method = ["whoami", "grants", "history"][i % 3];
            batch.extend_from_slice(format!("{{\"id\":{i},\"method\":\"{method}\"}}\n").as_bytes());
            if i % 8 == 7 {
                batch.extend_from_slice(b"this is not a request\n");
            }
        }
        // Blocks while the gateway holds this agent back; ends when the socket is shut.
        while !stop.load(Ordering::Relaxed) && writer.write_all(&batch).is_ok() {}
    }));
    if reads {
        let reader = BufReader::new(stream.try_clone().unwrap());
        let seen = seen.clone();
        threads.push(std::thread::spawn(move || {
            // Not parsed: a flooding client that decodes every answer (history pages are large)
            // would take the machine from the daemon it measures. Nothing but a rate-limited
            // answer carries `"code":"rate_limited"` (this team's history records no such text).
            for line in reader.lines() {
                let Ok(line) = line else { return };
                if line.contains("\"code\":\"rate_limited\"") {
                    seen.limited.fetch_add(1, Ordering::Relaxed);
                } else {
                    seen.served.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    Flooder {
        stream,
        seen,
        since: Instant::now(),
        threads,
    }
}

/// The quiet agent's calls: each answered, as itself. Their round trips, sorted.
fn quiet_calls(gw: &mut Gateway, me: &str) -> Vec<Duration> {
    let mut times = Vec::with_capacity(QUIET_CALLS);
    for _ in 0..QUIET_CALLS {
        let t = Instant::now();
        let who = gw
            .call("whoami", Value::Null)
            .unwrap_or_else(|e| panic!("the quiet agent was refused: {e}"));
        times.push(t.elapsed());
        assert_eq!(who["id"], me, "the quiet agent was answered as another");
        std::thread::sleep(QUIET_PACE.saturating_sub(t.elapsed()));
    }
    times.sort();
    times
}

fn p(sorted: &[Duration], q: f64) -> f64 {
    let i = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i].as_secs_f64() * 1e3
}

#[test]
fn a_hundred_flooding_agents_cannot_starve_a_quiet_one_or_grow_the_daemon() {
    let s = Served::new();
    s.ok(&["team", "create", "crowd"]);
    s.ok(&["hire", "--team", "crowd", "--name", "quiet"]);
    for i in 0..FLOODERS {
        s.ok(&["hire", "--team", "crowd", "--name", &format!("flood-{i}")]);
    }
    wait_for(
        "every agent's container to run",
        Duration::from_secs(300),
        || {
            let agents = s.json(&["agents"]);
            agents.len() == FLOODERS + 1
                && agents
                    .iter()
                    .all(|a| a["container"].as_str().is_some_and(|c| c.starts_with("up")))
        },
    );
    let agents = s.json(&["agents"]);
    let id_of = |name: &str| {
        agents.iter().find(|a| a["name"] == name).unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let quiet = id_of("quiet");
    let sockets: Vec<PathBuf> = (0..FLOODERS)
        .map(|i| {
            s.dir
                .join("gateways")
                .join(id_of(&format!("flood-{i}")))
                .join("gateway.sock")
        })
        .collect();
    let events_before = s.events().len();
    let mut gw = Gateway::connect(&s, &quiet);
    let idle = quiet_calls(&mut gw, &quiet);
    eprintln!(
        "quiet agent idle: p50 {:.3} ms, p99 {:.3} ms",
        p(&idle, 0.5),
        p(&idle, 0.99)
    );

    let rounds = scaled(3, 10);
    let mut rss = Vec::with_capacity(rounds);
    for round in 0..rounds {
        let stop = Arc::new(AtomicBool::new(false));
        let flooders: Vec<Flooder> = sockets
            .iter()
            .enumerate()
            .map(|(i, path)| flood(path, i % 10 != 0, &stop))
            .collect();
        std::thread::sleep(Duration::from_secs(1));
        let under = quiet_calls(&mut gw, &quiet);
        stop.store(true, Ordering::Relaxed);
        for f in &flooders {
            let _ = f.stream.shutdown(std::net::Shutdown::Both);
        }
        let mut served = 0;
        let mut limited = 0;
        for f in flooders {
            let flooded = f.since.elapsed().as_secs_f64();
            for t in f.threads {
                t.join().unwrap();
            }
            let n = f.seen.served.load(Ordering::Relaxed);
            // The bucket's own bound, with 10% for the clock's grain: slowness can only lower
            // the count, never raise it.
            let bound = (BURST + PER_SEC * flooded) * 1.1;
            assert!(
                (n as f64) <= bound,
                "a flooding agent was served {n} requests in {flooded:.1} s: more than its limit allows ({bound:.0})"
            );
            served += n;
            limited += f.seen.limited.load(Ordering::Relaxed);
        }
        // Let the daemon finish what the closed connections left, then weigh it.
        std::thread::sleep(Duration::from_secs(2));
        let kib = rss_kib(s.pid());
        rss.push(kib);
        eprintln!(
            "round {round}: quiet agent under flood p50 {:.3} ms, p99 {:.3} ms ({:.1}× idle p99); flood served {served}, rate-limited {limited}; daemon RSS {:.1} MiB",
            p(&under, 0.5),
            p(&under, 0.99),
            p(&under, 0.99) / p(&idle, 0.99).max(1e-9),
            kib as f64 / 1024.0
        );
    }
    let (first, last) = (rss[0], *rss.last().unwrap());
    assert!(
        last <= first + MEMORY_MARGIN_KIB,
        "the daemon grew from {:.1} MiB after the first flood to {:.1} MiB after the last: {rss:?} KiB",
        first as f64 / 1024.0,
        last as f64 / 1024.0
    );
    assert_eq!(
        s.events().len(),
        events_before,
        "reads and bad lines recorded something"
    );
    // Still serving its operator and every agent.
    assert_eq!(s.json(&["agents"]).len(), FLOODERS + 1);
    let mut again = Gateway::connect(&s, &id_of("flood-0"));
    assert_eq!(
        again.call("whoami", Value::Null).unwrap()["name"],
        "flood-0"
    );
}
