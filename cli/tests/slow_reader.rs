//! A client that never reads its answer stalls nobody else: while `roster grants --json` of
//! ~3,000 grants sits in a full socket for a client that does not read, an operator's write
//! through the daemon and an agent's call through its gateway are still answered.
//!
//! Before commands read from snapshots, the listing held the daemon's world exclusively while
//! it wrote its rows, so the write below waited for as long as the reader did not read — here,
//! forever (the test would fail at its 60 s limit).
//!
//! Needs a Docker engine and the static `roster-agent`; `scripts/test` provides both.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use common::{Gateway, Served};
use roster_core::actor::Actor;
use roster_core::capability::Capability;
use roster_core::command::Command;
use roster_core::id::AgentId;
use roster_core::name::Name;
use serde_json::{json, Value};

/// Grants given to the agent: enough rows that they cannot all wait in the socket's buffers and
/// the daemon's output queue, so the listing is still writing when the others are asked.
const GRANTS: usize = 3_000;

/// Issues `n` root grants to `agent` on the stopped daemon's store, in one append.
fn grant_many(dir: &std::path::Path, agent: AgentId, n: usize) {
    let grants = (0..n).map(|i| Command::Grant {
        to: agent,
        capability: Capability::parse(&format!("doc.read@doc:shelf-{i}/**")).unwrap(),
        from: None,
        key: None,
    });
    let op = Actor::Operator(Name::parse("tester").unwrap());
    common::commit_at_once(dir, &op, 9, grants);
}

/// Runs `f` on a thread of its own and waits at most a minute for it: a stalled call fails the
/// test instead of hanging it.
fn within_a_minute<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(60))
        .unwrap_or_else(|_| {
            panic!("{what} waited a minute behind a client that does not read its answer")
        })
}

#[test]
fn a_client_that_never_reads_delays_no_write_and_no_agent() {
    let mut s = Served::new();
    s.ok(&["team", "create", "lab"]);
    let agent = s.hire_into("lab", "reader", &[]);
    s.stop();
    grant_many(&s.dir, agent.parse().unwrap(), GRANTS);
    s.start();
    s.wait_up("reader");

    // The slow client: asks for every grant as JSON, then reads nothing.
    let mut slow = UnixStream::connect(s.dir.join("admin.sock")).unwrap();
    let request = json!({
        "request": {"op": "grants", "agent": null}, "operator": "tester", "cwd": "/",
    });
    writeln!(slow, "{request}").unwrap();
    // Long enough for the daemon to fill the socket and its queue of frames and block there.
    std::thread::sleep(Duration::from_secs(2));

    let dir = s.dir.clone();
    let started = Instant::now();
    within_a_minute("`roster team create`", move || {
        common::ok_in(&dir, &["team", "create", "elsewhere"])
    });
    let write = started.elapsed();

    let mut gateway = Gateway::connect(&s, &agent);
    let started = Instant::now();
    let me = within_a_minute("the agent's `whoami`", move || {
        gateway.call("whoami", Value::Null).unwrap()
    });
    let call = started.elapsed();
    assert_eq!(me["name"], "reader", "{me}");
    println!("with a client not reading: team create {write:?}, whoami {call:?}");

    // The slow client was mid-answer all along: it reads every row now, then the exit code.
    slow.set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut rows = 0;
    let mut exit = None;
    for line in BufReader::new(&slow).lines() {
        let frame: Value = serde_json::from_str(&line.unwrap()).unwrap();
        if frame["item"]["item"] == "grant" {
            rows += 1;
        } else if let Some(end) = frame.get("end") {
            exit = end["exit"].as_u64();
            break;
        }
    }
    assert_eq!(exit, Some(0));
    assert_eq!(rows, GRANTS, "every grant of the snapshot, one row each");
}
