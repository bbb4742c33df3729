//! Issue 22 against the real daemon and Docker engine: a lifecycle decision is in force when it
//! is answered. (The interleavings of starts, stops, deaths, engine restarts and daemon kills
//! are explored by the supervisor's simulation, `roster_runtime::daemon::sim`; here, what only
//! the real sockets and engine show.)

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{crash_engine, docker, rand_u32, restart_engine, scaled, wait_for, Gateway, Served};
use serde_json::{json, Value};

/// Rounds: each retires one listening, talking agent while its teammate talks (the window the
/// old code left open was a few milliseconds: several rounds to catch it).
fn rounds() -> usize {
    scaled(8, 16)
}

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
    for round in 0..rounds() {
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

/// Each agent's lifecycle events, in order: `started` or the stop reason.
fn lifecycles(s: &Served) -> std::collections::HashMap<String, Vec<String>> {
    let mut out: std::collections::HashMap<String, Vec<String>> = Default::default();
    for e in s.events() {
        if let Some(x) = e["event"].get("AgentStarted") {
            out.entry(x["agent"].as_str().unwrap().into())
                .or_default()
                .push("started".into());
        }
        if let Some(x) = e["event"].get("AgentStopped") {
            out.entry(x["agent"].as_str().unwrap().into())
                .or_default()
                .push(x["reason"].to_string().trim_matches('"').to_owned());
        }
    }
    out
}

/// Agents of team `lab` named `prefix0..n`, hired with `extra`; their ids.
fn hire_many(s: &Served, prefix: &str, n: usize, extra: &[&str]) -> Vec<String> {
    (0..n)
        .map(|i| s.hire_into("lab", &format!("{prefix}{i}"), extra))
        .collect()
}

#[test]
fn an_engine_restart_records_each_death_and_each_start_once() {
    let s = Served::new();
    s.ok(&["team", "create", "lab"]);
    let n = scaled(8, 12);
    let ids = hire_many(&s, "a", n, &[]);
    for i in 0..n {
        s.wait_up(&format!("a{i}"));
    }
    for round in 0..scaled(2, 4) {
        let (started, stopped) = (s.count("AgentStarted"), s.count("AgentStopped"));
        restart_engine();
        wait_for(
            "every agent started again",
            Duration::from_secs(180),
            || s.count("AgentStarted") >= started + n,
        );
        // A second record would come within the supervisor's next passes.
        std::thread::sleep(Duration::from_secs(3));
        assert_eq!(
            s.count("AgentStarted"),
            started + n,
            "round {round}: one start each"
        );
        assert_eq!(
            s.count("AgentStopped"),
            stopped + n,
            "round {round}: one death each"
        );
        let lives = lifecycles(&s);
        for id in &ids {
            let life = &lives[id];
            assert_eq!(
                life.last().map(String::as_str),
                Some("started"),
                "{id}: {life:?}"
            );
            // Its death this round is the engine's doing, not a crash.
            assert_eq!(
                life.get(life.len().wrapping_sub(2)).map(String::as_str),
                Some("engine_restarted"),
                "{id}: {life:?}"
            );
            assert!(
                life.windows(2).all(|w| w[0] != w[1] || w[0] != "started"),
                "{id} started twice in a row: {life:?}"
            );
        }
        for i in 0..n {
            assert_eq!(
                s.agent(&format!("a{i}"))["status"],
                "running",
                "round {round}"
            );
        }
    }
}

#[test]
fn an_engine_killed_and_started_again_records_it_as_its_restart() {
    // dockerd SIGKILLed: its event stream ends without a word of the containers, which run on
    // until it comes back and kills them (Docker without live-restore). The reconcile finds
    // them dead: their deaths are the engine's, not crashes.
    let s = Served::new();
    s.ok(&["team", "create", "lab"]);
    let n = scaled(4, 8);
    let ids = hire_many(&s, "k", n, &[]);
    for i in 0..n {
        s.wait_up(&format!("k{i}"));
    }
    let (started, stopped) = (s.count("AgentStarted"), s.count("AgentStopped"));
    crash_engine();
    wait_for(
        "every agent started again",
        Duration::from_secs(180),
        || s.count("AgentStarted") >= started + n,
    );
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(s.count("AgentStarted"), started + n, "one start each");
    assert_eq!(s.count("AgentStopped"), stopped + n, "one death each");
    let lives = lifecycles(&s);
    for id in &ids {
        let life = &lives[id];
        assert_eq!(
            life.as_slice(),
            ["started", "engine_restarted", "started"],
            "{id}"
        );
    }
}

#[test]
fn a_run_past_its_timeout_is_stopped_once_and_stays_stopped() {
    let s = Served::new();
    s.ok(&["team", "create", "lab"]);
    let n = scaled(6, 12);
    let ids: Vec<String> = (0..n)
        .map(|i| {
            let timeout = (1 + i % 3).to_string();
            s.hire_into("lab", &format!("t{i}"), &["--timeout", &timeout])
        })
        .collect();
    for round in 1..=2 {
        wait_for("every run to time out", Duration::from_secs(120), || {
            let lives = lifecycles(&s);
            ids.iter().all(|id| {
                lives.get(id).is_some_and(|l| {
                    l.iter().filter(|r| r.as_str() == "timed_out").count() == round
                })
            })
        });
        // Stopped at its timeout, it is not started again by the runtime.
        std::thread::sleep(Duration::from_secs(4));
        let lives = lifecycles(&s);
        for id in &ids {
            let expected: Vec<&str> = std::iter::repeat_n(["started", "timed_out"], round)
                .flatten()
                .collect();
            assert_eq!(lives[id], expected, "{id}, round {round}");
        }
        if round == 1 {
            for i in 0..n {
                s.ok(&["start", &format!("lab/t{i}")]);
            }
        }
    }
}

#[test]
fn a_purge_racing_a_start_leaves_no_container_and_no_home() {
    let s = Served::new();
    s.ok(&["team", "create", "lab"]);
    let n = scaled(12, 24);
    let mut purged = Vec::new();
    for i in 0..n {
        // Retired the moment its hire commits (its start may be under way), then purged.
        let id = s.hire_into("lab", &format!("p{i}"), &[]);
        s.ok(&["retire", &id]);
        s.ok(&["purge", &id]);
        purged.push(id);
    }
    // Whatever was under way has finished by now.
    std::thread::sleep(Duration::from_secs(5));
    let names = |args: &[&str]| -> String { String::from_utf8(docker(args).stdout).unwrap() };
    let volumes = names(&["volume", "ls", "-q"]);
    let containers = names(&["ps", "-a", "--format", "{{.Names}}"]);
    for id in &purged {
        assert!(
            !volumes.contains(id.as_str()),
            "{id}'s home survived its purge"
        );
        assert!(
            !containers.contains(id.as_str()),
            "{id}'s container survived its purge"
        );
    }
}

#[test]
fn a_daemon_killed_during_a_stop_finishes_it_after_its_restart() {
    let mut s = Served::new();
    s.ok(&["team", "create", "lab"]);
    let n = scaled(4, 8);
    let ids = hire_many(&s, "k", n, &[]);
    for (i, id) in ids.iter().enumerate() {
        s.wait_up(&format!("k{i}"));
        let stopping = std::process::Command::new(env!("CARGO_BIN_EXE_roster"))
            .arg("--data-dir")
            .arg(&s.dir)
            .args(["stop", id])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // Killed at a random moment of the stop, or (every other agent) the moment its
        // signal has landed: the container is down, the daemon has not said so yet.
        if i % 2 == 0 {
            std::thread::sleep(Duration::from_millis(u64::from(rand_u32() % 400)));
        } else {
            let name = format!("roster-{}-{id}", s.ns);
            wait_for("the stop's signal to land", Duration::from_secs(30), || {
                let out = docker(&["inspect", "-f", "{{.State.Running}}", &name]);
                String::from_utf8_lossy(&out.stdout).trim() == "false"
            });
        }
        s.kill();
        let _ = stopping.wait_with_output();
        s.start();
        // Settled: a stop on the log holds; none is recorded as a crash.
        std::thread::sleep(Duration::from_secs(4));
        let life = lifecycles(&s).remove(id).unwrap_or_default();
        assert!(
            life.iter().all(|r| r == "started" || r == "requested"),
            "{id}: roster's own stop recorded as something else: {life:?}"
        );
        let agent = s.agent(&format!("k{i}"));
        if life.last().map(String::as_str) == Some("requested") {
            assert_eq!(agent["status"], "stopped (on request)", "{agent}");
            assert!(
                !agent["container"]
                    .as_str()
                    .unwrap_or_default()
                    .starts_with("up"),
                "{id} runs although its stop is on the log: {agent}"
            );
        } else {
            // The daemon died before it decided the stop: nothing happened.
            assert_eq!(life.last().map(String::as_str), Some("started"), "{life:?}");
            assert_eq!(agent["status"], "running", "{agent}");
        }
    }
}

#[test]
fn an_oom_kill_of_an_execd_process_is_not_taken_for_the_agents_death() {
    let s = Served::new();
    s.ok(&["team", "create", "lab"]);
    let id = s.hire_into("lab", "hog", &["--memory", "32"]);
    s.wait_up("hog");
    // A process run in it eats past the limit and is OOM-killed; the agent lives on.
    let out = s.run(&[
        "exec",
        "lab/hog",
        "--",
        "sh",
        "-c",
        "head -c 200m /dev/zero | tail",
    ]);
    assert!(!out.status.success(), "the hog was not killed");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(s.agent("hog")["status"], "running");
    // Then it is killed from outside: a crash, not an OOM kill.
    let stopped = s.count("AgentStopped");
    assert!(docker(&["kill", &format!("roster-{}-{id}", s.ns)])
        .status
        .success());
    wait_for("the death recorded", Duration::from_secs(30), || {
        s.count("AgentStopped") > stopped
    });
    let life = lifecycles(&s).remove(&id).unwrap();
    let death = life.iter().rev().find(|r| *r != "started").unwrap();
    assert!(death.contains("crashed"), "recorded as {death}: {life:?}");
}
