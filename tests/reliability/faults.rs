//! Reliability suite: faults from outside the runtime, while it runs.
//!
//! - NATS stopped and restarted mid-run (its JetStream store kept): commands go on committing,
//!   their events wait in the log; the gateway says at once that context cannot travel, and
//!   records nothing for it; `roster status` says the bus is down. When NATS is back, every
//!   event reaches the stream and a durable outside subscriber exactly once and in order, and
//!   subscriptions made before the outage hear messages again, inside a team and across a share.
//! - NATS restarted without its store (a server without a persistent `-sd`, a container
//!   recreated without its volume): the stream is rebuilt whole, in order, from the log.
//! - An agent's container killed (`docker kill`), removed (`docker rm -f`) or stopped
//!   (`docker stop`) from outside, several times in a row: each death recorded with its reason,
//!   each restart recorded after at least the backoff (1 s, 2 s, 4 s…), the same identity on
//!   the socket, the same home.
//!
//! (A `dockerd` restart under a running daemon is `cli/tests/tomorrow.rs`.)
//!
//! `ROSTER_LONG=1`: more outages, more deaths in a row.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

#[path = "../../cli/tests/common/mod.rs"]
mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::{docker, wait_for, Gateway, Served};
use roster_bus::NatsServer;
use roster_core::time::Timestamp;
use serde_json::{json, Value};

const SOON: Duration = Duration::from_secs(10);
const QUIET: Duration = Duration::from_millis(500);
/// Generous: under load, a container start or a NATS reconnect can take a while.
const LIMIT: Duration = Duration::from_secs(60);

fn status(s: &Served) -> Value {
    serde_json::from_str(s.ok(&["--json", "status"]).trim()).unwrap()
}

fn publish(g: &mut Gateway, topic: &str, text: &str, team: Option<&str>) -> Result<Value, Value> {
    let mut p = json!({ "topic": topic, "message": text });
    if let Some(t) = team {
        p["team"] = json!(t);
    }
    g.call("publish", p)
}

/// The next push is `text` on `topic` from `team`.
fn expect_message(g: &mut Gateway, team: &str, topic: &str, text: &str) {
    let p = g
        .push(SOON)
        .unwrap_or_else(|| panic!("no message `{text}` within {SOON:?}"));
    assert_eq!(
        (&p["kind"], &p["team"], &p["topic"], &p["message"]),
        (&json!("message"), &json!(team), &json!(topic), &json!(text)),
        "{p}"
    );
}

fn expect_nothing(g: &mut Gateway) {
    if let Some(p) = g.push(QUIET) {
        panic!("nothing should have arrived, got {p}");
    }
}

/// The gateway's answer while the bus is down: `internal`, saying so, at once.
fn bus_down(r: Result<Value, Value>) {
    let e = r.expect_err("the bus is down: this cannot succeed");
    assert_eq!(e["code"], "internal", "{e}");
    let why = e["message"].as_str().unwrap();
    assert!(why.contains("bus is not reachable"), "{e}");
}

/// A `roster subscribe` left running, its lines collected by a thread; killed on drop.
struct Subscriber {
    child: Child,
    lines: mpsc::Receiver<String>,
    got: Vec<String>,
    /// Where its stderr goes.
    stderr: std::path::PathBuf,
}

impl Subscriber {
    fn start(s: &Served, args: &[&str]) -> Subscriber {
        let stderr = s
            .dir
            .with_file_name(format!("subscriber-{}.err", common::rand_u32()));
        let mut child = Command::new(env!("CARGO_BIN_EXE_roster"))
            .arg("--data-dir")
            .arg(&s.dir)
            .arg("subscribe")
            .args(args)
            .env_remove("ROSTER_JSON")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .expect("run roster subscribe");
        let out = BufReader::new(child.stdout.take().unwrap());
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in out.lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Subscriber {
            child,
            lines,
            got: Vec::new(),
            stderr,
        }
    }

    /// Waits until it printed `n` lines in all (failing if it exits first); all of them.
    fn until(&mut self, n: usize, limit: Duration) -> &[String] {
        let deadline = std::time::Instant::now() + limit;
        while self.got.len() < n {
            match self.lines.recv_timeout(Duration::from_millis(200)) {
                Ok(l) => self.got.push(l),
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if let Some(st) = self.child.try_wait().unwrap() {
                        panic!(
                            "roster subscribe exited ({st}) after {} of {n} lines",
                            self.got.len()
                        );
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let st = self.child.wait().unwrap();
                    panic!(
                        "roster subscribe exited ({st}) after {} of {n} lines",
                        self.got.len()
                    );
                }
            }
            assert!(
                std::time::Instant::now() < deadline,
                "roster subscribe printed {} of {n} lines in {limit:?}",
                self.got.len()
            );
        }
        &self.got
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The stream as an ordered consumer from position 0 reads it: every line, then nothing more
/// within a second (a duplicate at the end would show).
fn stream_lines(url: &str, ns: &str, n: usize) -> Vec<String> {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let url = roster_bus::BusUrl::parse(url).unwrap();
        let client = roster_bus::connect_now(&url, Duration::from_secs(5))
            .await
            .unwrap();
        let ns = roster_core::name::Name::parse(ns).unwrap();
        let mut sub = roster_bus::EventSubscription::open(&client, &ns, Default::default())
            .await
            .unwrap();
        let mut lines = Vec::new();
        while lines.len() < n {
            let d = tokio::time::timeout(SOON, sub.next())
                .await
                .unwrap_or_else(|_| panic!("the stream holds only {} events", lines.len()))
                .unwrap()
                .unwrap();
            lines.push(String::from_utf8(d.json.to_vec()).unwrap());
        }
        if let Ok(extra) = tokio::time::timeout(Duration::from_secs(1), sub.next()).await {
            panic!("the stream holds more than the log: {extra:?}");
        }
        lines
    })
}

/// Waits until the outbox is connected and has published every event of the log; how many.
fn all_published(s: &Served) -> usize {
    let mut total = 0;
    wait_for("every event to reach JetStream", LIMIT, || {
        let v = status(s);
        total = v["events"].as_u64().unwrap() as usize;
        v["bus_connected"] == true && v["published"] == total
    });
    total
}

fn export(s: &Served) -> Vec<String> {
    common::event_lines(&s.ok(&["export"]))
}

#[test]
fn nats_stopped_and_restarted_mid_run_loses_nothing() {
    let mut nats = NatsServer::start().expect("nats-server is needed: run scripts/setup");
    let url = nats.url();
    let s = Served::with(format!("t{:x}", common::rand_u32()), &["--bus", &url]);
    s.ok(&["team", "create", "research"]);
    s.ok(&["team", "create", "product"]);
    let rlead = s.hire_into("research", "rlead", &[]);
    let scout = s.hire_into("research", "scout", &[]);
    let pm = s.hire_into("product", "pm", &[]);
    let out = s.ok(&[
        "--json",
        "share",
        "propose",
        "--from",
        "research",
        "--to",
        "product",
        "--topics",
        "findings/**",
    ]);
    let share = out
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find_map(|e| {
            e["event"]["ShareProposed"]["share"]
                .as_str()
                .map(str::to_owned)
        })
        .unwrap_or_else(|| panic!("no share in {out}"));
    s.ok(&["share", "accept", &share]);

    let mut g_rlead = Gateway::connect(&s, &rlead);
    let mut g_scout = Gateway::connect(&s, &scout);
    let mut g_pm = Gateway::connect(&s, &pm);
    // Listening since before any outage: scout inside its team, pm across the share.
    g_scout
        .call("subscribe", json!({ "topics": ["**"] }))
        .unwrap();
    g_pm.call("subscribe", json!({ "topics": ["**"] })).unwrap();
    publish(&mut g_rlead, "findings/a", "before", None).unwrap();
    expect_message(&mut g_scout, "research", "findings/a", "before");
    expect_message(&mut g_pm, "research", "findings/a", "before");

    // An outside subscriber, durable, reading all along.
    let mut audit = Subscriber::start(&s, &["--bus", &url, "--ns", &s.ns, "--durable", "audit"]);
    let total = all_published(&s);
    assert_eq!(audit.until(total, LIMIT), &export(&s)[..]);

    let rounds = common::scaled(1, 4);
    for round in 0..rounds {
        nats.kill().unwrap();
        wait_for("the daemon to see NATS gone", LIMIT, || {
            status(&s)["bus_connected"] == false
        });
        let text = s.ok(&["status"]);
        assert!(text.contains("NOT connected"), "{text}");

        // The log is the truth: commands commit, containers start, refusals are recorded.
        let before = s.events().len();
        let team = format!("late-{round}");
        s.ok(&["team", "create", &team]);
        // Names unique across teams: `Served::agent` finds an agent by name alone.
        let newcomer = format!("newcomer-{round}");
        let late = s.hire_into(&team, &newcomer, &[]);
        s.ok(&[
            "grant",
            "research/scout",
            &format!("email.send@mailbox:bob-{round}"),
        ]);
        let e = g_scout
            .call("hire", json!({ "name": "c", "grants": ["email.send@**"] }))
            .unwrap_err();
        assert_eq!(e["code"], "denied", "{e}");
        let events = s.events().len();
        assert!(events >= before + 5, "{before} → {events}");

        // Context cannot travel: said at once, nothing recorded — inside a team, across the
        // share (whose crossing would otherwise be recorded first), and a new listener.
        bus_down(publish(&mut g_rlead, "findings/b", "while down", None));
        bus_down(publish(
            &mut g_scout,
            "findings/b",
            "while down",
            Some("product"),
        ));
        let mut g_late = Gateway::connect(&s, &late);
        bus_down(g_late.call("subscribe", json!({ "topics": ["**"] })));
        // Even where a teammate's subscription already holds the team's feed.
        let mut g_rlead2 = Gateway::connect(&s, &rlead);
        bus_down(g_rlead2.call("subscribe", json!({ "topics": ["**"] })));
        // So does roster-agent inside the container: exit 1, the same message.
        let out = s.run(&[
            "exec",
            &format!("{team}/{newcomer}"),
            "--",
            "roster-agent",
            "share",
            "findings/c",
            "from inside",
        ]);
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("bus is not reachable"),
            "{out:?}"
        );
        assert_eq!(
            s.events().len(),
            events,
            "something was recorded for context"
        );
        let v = status(&s);
        assert!(
            v["published"].as_u64().unwrap() < events as u64,
            "published while NATS was down? {v}"
        );
        expect_nothing(&mut g_scout);
        expect_nothing(&mut g_pm);

        // Back, with its store: everything flows by itself.
        nats.restart().unwrap();
        let total = all_published(&s);
        assert_eq!(total, events);
        let log = export(&s);
        let got: Vec<u64> = audit
            .until(total, LIMIT)
            .iter()
            .map(|l| {
                serde_json::from_str::<Value>(l).unwrap()["seq"]
                    .as_u64()
                    .unwrap()
            })
            .collect();
        assert_eq!(
            got,
            (0..total as u64).collect::<Vec<_>>(),
            "round {round}: the durable subscriber's events are not the log's, in order, once"
        );
        assert_eq!(audit.until(total, LIMIT), &log[..]);
        assert_eq!(stream_lines(&url, &s.ns, total), log);

        // The listeners from before the outage hear again, inside the team and across.
        let msg = format!("after outage {round}");
        publish(&mut g_rlead, "findings/b", &msg, None).unwrap();
        expect_message(&mut g_scout, "research", "findings/b", &msg);
        expect_message(&mut g_pm, "research", "findings/b", &msg);
        let sent = publish(&mut g_scout, "findings/c", &msg, Some("product")).unwrap();
        assert_eq!(sent["delivered"][0]["share"], share.as_str(), "{sent}");
        expect_message(&mut g_pm, "research", "findings/c", &msg);
        expect_nothing(&mut g_scout);
        // And a new listener, refused while NATS was down, can listen now.
        g_late
            .call("subscribe", json!({ "topics": ["**"] }))
            .unwrap();
        let mut g_late2 = Gateway::connect(&s, &late);
        publish(&mut g_late2, "notes", &msg, None).unwrap();
        expect_message(&mut g_late, &team, "notes", &msg);
    }
    // Nothing lost and nothing twice, to the end.
    let total = all_published(&s);
    let log = export(&s);
    assert_eq!(audit.until(total, LIMIT), &log[..]);
    assert_eq!(stream_lines(&url, &s.ns, total), log);
}

#[test]
fn a_nats_server_that_lost_its_store_gets_every_event_again() {
    let mut nats = NatsServer::start().expect("nats-server is needed: run scripts/setup");
    let url = nats.url();
    let s = Served::with(format!("t{:x}", common::rand_u32()), &["--bus", &url]);
    for i in 0..3 {
        s.ok(&["team", "create", &format!("team-{i}")]);
    }
    let mut audit = Subscriber::start(&s, &["--bus", &url, "--ns", &s.ns, "--durable", "audit"]);
    let total = all_published(&s);
    assert_eq!(audit.until(total, LIMIT), &export(&s)[..]);

    nats.kill().unwrap();
    std::fs::remove_dir_all(nats.store_dir()).unwrap();
    s.ok(&["team", "create", "while-down"]);
    nats.restart().unwrap();
    s.ok(&["team", "create", "after"]);
    let total = all_published(&s);
    let log = export(&s);
    assert_eq!(stream_lines(&url, &s.ns, total), log);
    // The server forgot the durable's position: the running subscriber says so and ends
    // (it neither waits in silence nor starts over on its own, printing old events again).
    let mut exited = None;
    wait_for("the durable subscriber to end", LIMIT, || {
        exited = audit.child.try_wait().unwrap();
        exited.is_some()
    });
    assert_eq!(exited.unwrap().code(), Some(1));
    let err = std::fs::read_to_string(&audit.stderr).unwrap();
    assert!(err.contains("`audit` no longer exists"), "{err}");
    // Started again, it reads the whole rebuilt stream.
    let again = s.ok(&[
        "subscribe",
        "--bus",
        &url,
        "--ns",
        &s.ns,
        "--durable",
        "audit",
        "--count",
        &total.to_string(),
    ]);
    assert_eq!(again.lines().collect::<Vec<_>>(), log);
}

/// Something done to an agent's container from outside the runtime.
#[derive(Debug, Clone, Copy)]
enum Blow {
    /// `docker kill`: SIGKILL.
    Kill,
    /// `docker rm -f`: killed and removed — the container is gone.
    Remove,
    /// `docker stop`: SIGTERM (through the container's init), then SIGKILL after 1 s.
    Stop,
}

impl Blow {
    fn deal(self, container: &str) {
        let args: &[&str] = match self {
            Blow::Kill => &["kill", container],
            Blow::Remove => &["rm", "-f", container],
            Blow::Stop => &["stop", "-t", "1", container],
        };
        let out = docker(args);
        assert!(out.status.success(), "docker {args:?}: {out:?}");
    }

    /// The reason the runtime must record: every one of these ends the process by a signal.
    fn reason(self) -> Value {
        match self {
            Blow::Kill | Blow::Remove => json!({ "crashed": { "code": 137 } }),
            // The init forwards SIGTERM to the agent's process, which dies of it.
            Blow::Stop => json!({ "crashed": { "code": 143 } }),
        }
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as i64
}

fn at(e: &Value) -> i64 {
    serde_json::from_value::<Timestamp>(e["at"].clone())
        .unwrap()
        .as_micros()
}

/// The supervisor's backoff before restart number `n` in a row (1 s doubling, at most 60 s).
fn backoff(n: u32) -> i64 {
    (1_000_000i64 << (n - 1).min(6)).min(60_000_000)
}

/// `agent`'s lifecycle events (`AgentStarted`, `AgentStopped`), in log order.
fn lifecycle(s: &Served, agent: &str) -> Vec<Value> {
    s.events()
        .into_iter()
        .filter(|e| {
            ["AgentStarted", "AgentStopped"]
                .iter()
                .any(|k| e["event"][k]["agent"] == agent)
        })
        .collect()
}

/// Deals `blow` to `name`'s container `rounds` times in a row, each as soon as the restarted
/// container runs, and checks what the runtime did about each.
fn blows(s: &Served, name: &str, blow: Blow, rounds: u32) {
    let address = format!("lab/{name}");
    let id = s.agent(name)["id"].as_str().unwrap().to_owned();
    let container = format!("roster-{}-{id}", s.ns);
    s.exec(&address, &["sh", "-c", "echo hired > /home/agent/diary"]);
    for n in 1..=rounds {
        let before = lifecycle(s, &id);
        let old = before.last().unwrap()["event"]["AgentStarted"]["container"]
            .as_str()
            .unwrap_or_else(|| panic!("{name} is not running: {before:?}"))
            .to_owned();
        let dealt = now();
        blow.deal(&container);
        let mut after = Vec::new();
        wait_for(
            &format!("{name}'s death {n} ({blow:?}) and restart to be recorded"),
            LIMIT + Duration::from_micros(backoff(n) as u64),
            || {
                after = lifecycle(s, &id);
                after.len() >= before.len() + 2
            },
        );
        let (stopped, started) = (&after[before.len()], &after[before.len() + 1]);
        assert_eq!(after.len(), before.len() + 2, "{name}: {after:#?}");
        assert_eq!(
            stopped["event"]["AgentStopped"]["reason"],
            blow.reason(),
            "{name}, {blow:?} {n}: {stopped}"
        );
        let new = started["event"]["AgentStarted"]["container"]
            .as_str()
            .unwrap_or_else(|| panic!("{name}: no start after the stop: {started}"));
        assert_ne!(new, old, "{name}: the same container again");
        // The backoff counts from the death the runtime saw, which came after the blow: a
        // lower bound on the gap between the blow and the next start, whatever the machine's
        // speed.
        let gap = at(started) - dealt;
        assert!(
            gap >= backoff(n),
            "{name}: restart {n} came {gap} µs after the {blow:?}, before its backoff of {} µs",
            backoff(n)
        );
        assert!(at(started) > at(stopped), "{stopped} {started}");
        s.wait_up(name);
        // The same agent on its socket, seen from inside the new container; its home kept.
        let me: Value =
            serde_json::from_str(&s.exec(&address, &["roster-agent", "whoami"])).unwrap();
        assert_eq!((&me["id"], &me["name"]), (&json!(id), &json!(name)), "{me}");
        s.exec(
            &address,
            &[
                "sh",
                "-c",
                &format!("echo 'restart {n}' >> /home/agent/diary"),
            ],
        );
    }
    let diary = s.exec(&address, &["cat", "/home/agent/diary"]);
    assert_eq!(
        diary.lines().count(),
        1 + rounds as usize,
        "{name}: {diary}"
    );
    assert_eq!(s.agent(name)["status"], "running", "{name}");
}

#[test]
fn an_agent_container_killed_removed_or_stopped_from_outside_is_restarted_with_backoff() {
    let s = Served::new();
    s.ok(&["team", "create", "lab"]);
    let cases = [
        ("killed", Blow::Kill, common::scaled(3, 6)),
        ("removed", Blow::Remove, common::scaled(2, 4)),
        ("stopped", Blow::Stop, common::scaled(2, 4)),
    ];
    for (name, ..) in cases {
        s.hire(name, &[]);
    }
    // One agent per kind of blow, at once: each has its own backoff.
    std::thread::scope(|scope| {
        for (name, blow, rounds) in cases {
            let s = &s;
            scope.spawn(move || blows(s, name, blow, rounds as u32));
        }
    });
    // Every death and every restart, and nothing else happened to them.
    for (name, _, rounds) in cases {
        let id = s.agent(name)["id"].as_str().unwrap().to_owned();
        let kinds: Vec<&str> = lifecycle(&s, &id)
            .iter()
            .map(|e| {
                if e["event"].get("AgentStarted").is_some() {
                    "start"
                } else {
                    "stop"
                }
            })
            .collect();
        let mut want = vec!["start"];
        for _ in 0..rounds {
            want.extend(["stop", "start"]);
        }
        assert_eq!(kinds, want, "{name}");
    }
}
