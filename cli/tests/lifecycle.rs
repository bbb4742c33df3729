//! Issue 22 against the real daemon and Docker engine: a lifecycle decision is in force when it
//! is answered. (The interleavings of starts, stops, deaths, engine restarts and daemon kills
//! are explored by the supervisor's simulation, `roster_runtime::daemon::sim`; here, what only
//! the real sockets and engine show.)

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{Gateway, Served};
use serde_json::{json, Value};

/// Rounds: each retires one listening, talking agent while its teammate talks.
const ROUNDS: usize = 4;

/// Pushes read from `g` until the connection closes or stays quiet for `quiet` after `stop`.
fn listen(mut g: Gateway, stop: Arc<AtomicBool>) -> Vec<Value> {
    let mut heard = Vec::new();
    loop {
        match g.line_unless_closed(Duration::from_millis(300)) {
            Ok(Some(line)) => heard.push(line.get("push").cloned().unwrap_or(line)),
            Ok(None) if stop.load(Ordering::SeqCst) => return heard,
            Ok(None) => {}
            Err(()) => return heard,
        }
    }
}

/// Publishes numbered messages on `g` until `stop` (or the connection closes); those answered ok.
fn talk(mut g: Gateway, who: &'static str, stop: Arc<AtomicBool>) -> Vec<String> {
    let mut said = Vec::new();
    for i in 0.. {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let text = format!("{who}-{i}");
        let Ok(id) = g.try_send("publish", json!({ "topic": "notes", "message": text })) else {
            break;
        };
        match g.line_unless_closed(Duration::from_secs(10)) {
            Ok(Some(a)) if a["id"] == id && a.get("ok").is_some() => said.push(text),
            // Its bucket ran dry: it talks as fast as the gateway lets it.
            Ok(Some(a)) if a["id"] == id && a["error"]["code"] == "rate_limited" => {
                std::thread::sleep(Duration::from_millis(50));
            }
            Ok(Some(a)) if a["id"] == id => assert_eq!(a["error"]["code"], "denied", "{a}"),
            Ok(Some(other)) => panic!("an answer to another request: {other}"),
            Ok(None) => panic!("no answer to {who}'s publish"),
            Err(()) => break,
        }
    }
    said
}

/// When a push or an event was stamped.
fn at(v: &Value) -> roster_core::time::Timestamp {
    serde_json::from_value(v["at"].clone()).unwrap_or_else(|e| panic!("no time in {v}: {e}"))
}

#[test]
fn a_retired_agent_hears_and_says_nothing_from_its_retirement_on() {
    let s = Served::new();
    s.ok(&["team", "create", "lab"]);
    for round in 0..ROUNDS {
        let ears = s.hire_into("lab", &format!("ears{round}"), &[]);
        let mouth = s.hire_into("lab", &format!("mouth{round}"), &[]);
        s.wait_up(&format!("ears{round}"));
        s.wait_up(&format!("mouth{round}"));
        let subscribed = |agent: &str| {
            let mut g = Gateway::connect(&s, agent);
            g.call("subscribe", json!({ "topics": ["**"] }))
                .expect("subscribed");
            g
        };
        let stop = Arc::new(AtomicBool::new(false));
        let (ears_hear, mouth_hears) = (subscribed(&ears), subscribed(&mouth));
        let threads = (
            std::thread::spawn({
                let stop = stop.clone();
                move || listen(ears_hear, stop)
            }),
            std::thread::spawn({
                let stop = stop.clone();
                move || listen(mouth_hears, stop)
            }),
            std::thread::spawn({
                let (g, stop) = (Gateway::connect(&s, &ears), stop.clone());
                move || talk(g, "ears", stop)
            }),
            std::thread::spawn({
                let (g, stop) = (Gateway::connect(&s, &mouth), stop.clone());
                move || talk(g, "mouth", stop)
            }),
        );
        std::thread::sleep(Duration::from_millis(300));
        s.ok(&["retire", &format!("lab/ears{round}")]);
        std::thread::sleep(Duration::from_millis(700));
        stop.store(true, Ordering::SeqCst);
        let (ears_heard, mouth_heard) = (threads.0.join().unwrap(), threads.1.join().unwrap());
        let (ears_said, mouth_said) = (threads.2.join().unwrap(), threads.3.join().unwrap());
        let retired_at = s
            .ok(&["--json", "log"])
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .find(|e| e["event"]["AgentRetired"]["agent"] == ears.as_str())
            .map(|e| at(&e))
            .expect("the retirement is on the log");
        // Both talked, and the teammate went on after the retirement.
        assert!(
            !ears_said.is_empty() && !mouth_said.is_empty(),
            "round {round}"
        );
        let mouth_after: Vec<&Value> = mouth_heard
            .iter()
            .filter(|p| p["sender"] == mouth.as_str() && at(p) > retired_at)
            .collect();
        assert!(
            !mouth_after.is_empty(),
            "round {round}: nothing was said after the retirement"
        );
        // Nothing stamped after the retirement reached the retired agent...
        for p in &ears_heard {
            assert!(
                at(p) <= retired_at,
                "round {round}: retired at {retired_at}, still told {p}"
            );
        }
        // ... and nothing it said after it reached anyone.
        for p in mouth_heard.iter().filter(|p| p["sender"] == ears.as_str()) {
            assert!(
                at(p) <= retired_at,
                "round {round}: retired at {retired_at}, still heard from: {p}"
            );
        }
        // Its socket is gone: a new connection is refused.
        let path = s.dir.join("gateways").join(&ears).join("gateway.sock");
        assert!(
            std::os::unix::net::UnixStream::connect(&path).is_err(),
            "round {round}: a retired agent's socket still accepts"
        );
        println!(
            "round {round}: ears said {}, heard {}; mouth said {}, heard {} ({} after the retirement)",
            ears_said.len(),
            ears_heard.len(),
            mouth_said.len(),
            mouth_heard.len(),
            mouth_after.len()
        );
    }
}
