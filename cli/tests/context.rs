//! Context between agents, end to end on the real engine, with each bus: the in-process one
//! and a real `nats-server`. Inside a team messages flow freely; across teams only through a
//! share both teams opened, only on topics it covers, and not after it closed. Every crossing
//! is recorded (never its payload), and every refused one too.
//!
//! Needs Docker, the static `roster-agent` and `nats-server` (`scripts/test` provides them);
//! without them these tests fail, loudly.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{Gateway, Served};
use roster_bus::NatsServer;
use serde_json::{json, Value};

const QUIET: Duration = Duration::from_millis(500);
const SOON: Duration = Duration::from_secs(10);

struct Teams {
    rlead: String,
    scout: String,
    plead: String,
    pm: String,
}

fn teams(s: &Served) -> Teams {
    s.ok(&["team", "create", "research"]);
    s.ok(&["team", "create", "product"]);
    let rlead = s.hire_into(
        "research",
        "rlead",
        &[
            "--grant",
            "share.propose@team:research",
            "--grant",
            "share.close@team:research",
        ],
    );
    let scout = s.hire_into("research", "scout", &[]);
    let plead = s.hire_into(
        "product",
        "plead",
        &["--grant", "share.accept@team:product"],
    );
    let pm = s.hire_into("product", "pm", &[]);
    Teams {
        rlead,
        scout,
        plead,
        pm,
    }
}

fn publish(
    g: &mut Gateway,
    topic: &str,
    message: &str,
    team: Option<&str>,
) -> Result<Value, Value> {
    let mut p = json!({ "topic": topic, "message": message });
    if let Some(t) = team {
        p["team"] = json!(t);
    }
    g.call("publish", p)
}

fn expect_message(g: &mut Gateway, team: &str, topic: &str, text: &str) -> Value {
    let p = g
        .push(SOON)
        .unwrap_or_else(|| panic!("no message `{text}` within {SOON:?}"));
    assert_eq!(p["kind"], "message", "{p}");
    assert_eq!(p["team"], team, "{p}");
    assert_eq!(p["topic"], topic, "{p}");
    assert_eq!(p["message"], text, "{p}");
    p
}

fn expect_nothing(g: &mut Gateway) {
    if let Some(p) = g.push(QUIET) {
        panic!("nothing should have arrived, got {p}");
    }
}

fn denied(r: Result<Value, Value>) -> String {
    let e = r.expect_err("should have been refused");
    assert_eq!(e["code"], "denied", "{e}");
    e["message"].as_str().unwrap().to_owned()
}

/// The scenarios every bus must pass; the agents, and the share (closed by then).
fn scenarios(s: &Served) -> (Teams, String) {
    let t = teams(s);
    let mut rlead = Gateway::connect(s, &t.rlead);
    let mut scout = Gateway::connect(s, &t.scout);
    let mut plead = Gateway::connect(s, &t.plead);
    let mut pm = Gateway::connect(s, &t.pm);
    scout
        .call("subscribe", json!({ "topics": ["findings/**"] }))
        .unwrap();
    pm.call("subscribe", json!({ "topics": ["**"] })).unwrap();

    // Inside a team: free, unrecorded, and only for the team.
    publish(&mut rlead, "findings/daily", "water is wet", None).unwrap();
    expect_message(&mut scout, "research", "findings/daily", "water is wet");
    expect_nothing(&mut pm);
    // A subscription's patterns filter.
    publish(&mut rlead, "gossip", "not for scout", None).unwrap();
    expect_nothing(&mut scout);

    // Across teams, nothing flows without a share; the refusal is recorded.
    let why = denied(publish(
        &mut rlead,
        "findings/daily",
        "early",
        Some("product"),
    ));
    assert!(why.contains("no open share"), "{why}");
    assert_eq!(s.count("AccessDenied"), 1);
    // A team that does not exist is refused the same way (and recorded).
    denied(publish(&mut rlead, "findings/daily", "x", Some("nobody")));
    assert_eq!(s.count("AccessDenied"), 2);

    // Proposed but not accepted: still nothing.
    let proposed = rlead
        .call(
            "share_propose",
            json!({ "to": "product", "topics": "findings/**" }),
        )
        .unwrap();
    // The use of the grant (`ActionPerformed`), then the proposal.
    let share = proposed["events"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|e| e["event"]["ShareProposed"]["share"].as_str())
        .unwrap_or_else(|| panic!("no share in {proposed}"))
        .to_owned();
    denied(publish(
        &mut rlead,
        "findings/daily",
        "still early",
        Some("product"),
    ));
    // Only the importing side accepts; the exporter cannot accept its own offer.
    denied(rlead.call("share_accept", json!({ "share": share })));
    plead
        .call("share_accept", json!({ "share": share }))
        .unwrap();
    let listed = pm.call("shares", Value::Null).unwrap();
    assert_eq!(listed["shares"][0]["state"], "open", "{listed}");

    // Open: a matching topic crosses, recorded with its digest and size, not its text.
    let secret = "the launch moves to friday";
    let sent = publish(&mut scout, "findings/launch", secret, Some("product")).unwrap();
    assert_eq!(sent["delivered"][0]["team"], "product", "{sent}");
    assert_eq!(sent["delivered"][0]["share"], share.as_str(), "{sent}");
    assert_eq!(sent["delivered"].as_array().unwrap().len(), 1, "{sent}");
    let p = expect_message(&mut pm, "research", "findings/launch", secret);
    assert_eq!(p["share"], share.as_str(), "{p}");
    assert_eq!(p["sender"], t.scout.as_str(), "{p}");
    expect_nothing(&mut scout);
    let log = s.ok(&["--json", "log"]);
    assert!(!log.contains(secret), "the payload reached the log");
    let crossing = s
        .events()
        .into_iter()
        .find_map(|e| e["event"].get("ContextShared").cloned())
        .expect("the crossing is recorded");
    assert_eq!(crossing["size"], secret.len(), "{crossing}");
    assert_eq!(crossing["topic"], "findings/launch", "{crossing}");
    // A topic the share does not cover stays home.
    denied(publish(&mut scout, "gossip/launch", "no", Some("product")));
    denied(publish(&mut scout, "findingsx/a", "no", Some("product")));
    // Nothing flows back: a share has a direction.
    denied(publish(
        &mut pm,
        "findings/launch",
        "reply",
        Some("research"),
    ));
    expect_nothing(&mut pm);
    expect_nothing(&mut scout);
    // A message to the team itself is forwarded through the open share when its topic matches
    // (and recorded), and stays home when it does not.
    let sent = publish(&mut rlead, "findings/weekly", "forwarded", None).unwrap();
    assert_eq!(sent["delivered"][0]["team"], "research", "{sent}");
    assert_eq!(sent["delivered"][1]["team"], "product", "{sent}");
    expect_message(&mut scout, "research", "findings/weekly", "forwarded");
    expect_message(&mut pm, "research", "findings/weekly", "forwarded");
    let sent = publish(&mut rlead, "gossip/weekly", "home only", None).unwrap();
    assert_eq!(sent["delivered"].as_array().unwrap().len(), 1, "{sent}");
    expect_nothing(&mut pm);

    // Names and topics are validated before anything happens: no subject injection.
    for (topic, team) in [
        ("findings.daily", None),
        ("findings/*", None),
        ("findings/>", None),
        ("a b", None),
        ("findings/daily", Some("prod.uct")),
        ("findings/daily", Some("*")),
    ] {
        let e = publish(&mut rlead, topic, "x", team).expect_err(topic);
        assert_eq!(e["code"], "bad_params", "{topic} {team:?}: {e}");
    }
    let e = publish(&mut rlead, "big", &"x".repeat(64 * 1024 + 1), None).unwrap_err();
    assert_eq!(e["code"], "bad_params", "{e}");

    // Closing stops the next message at once.
    let denials = s.count("AccessDenied");
    s.ok(&["share", "close", &share]);
    denied(publish(
        &mut scout,
        "findings/launch",
        "after close",
        Some("product"),
    ));
    expect_nothing(&mut pm);
    assert_eq!(s.count("AccessDenied"), denials + 1);
    let refusal = s
        .events()
        .into_iter()
        .rev()
        .find_map(|e| e["event"].get("AccessDenied").cloned())
        .unwrap();
    assert_eq!(
        (&refusal["agent"], &refusal["action"], &refusal["resource"]),
        (
            &json!(t.scout),
            &json!("context.share"),
            &json!("team:product")
        ),
        "{refusal}"
    );
    assert_eq!(s.count("ContextShared"), 2);
    let shares = s.ok(&["shares"]);
    assert!(shares.contains("closed"), "{shares}");

    // From inside a container, with roster-agent: the same rules.
    let out = s.run(&[
        "exec",
        "research/scout",
        "--",
        "roster-agent",
        "share",
        "findings/x",
        "hello",
        "--team",
        "product",
    ]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    s.exec(
        "research/scout",
        &["roster-agent", "share", "findings/x", "hello team"],
    );
    expect_message(&mut scout, "research", "findings/x", "hello team");
    // `roster-agent listen` inside product's container prints what arrives. It subscribes at
    // some point after it starts, so the team's lead says the same thing until it is heard
    // (inside a team, repeating costs no record).
    let dir = s.dir.clone();
    let listener = std::thread::spawn(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_roster"))
            .arg("--data-dir")
            .arg(dir)
            .args([
                "exec",
                "product/pm",
                "--",
                "roster-agent",
                "listen",
                "plans/*",
                "--count",
                "1",
            ])
            .output()
            .unwrap()
    });
    let started = std::time::Instant::now();
    while !listener.is_finished() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "listen heard nothing in 60 s"
        );
        publish(&mut plead, "plans/q3", "ship it", None).unwrap();
        std::thread::sleep(Duration::from_millis(200));
    }
    let out = listener.join().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let heard: Value = serde_json::from_str(String::from_utf8_lossy(&out.stdout).trim()).unwrap();
    assert_eq!(heard["message"], "ship it", "{heard}");
    assert_eq!(heard["team"], "product", "{heard}");
    (t, share)
}

#[test]
fn context_sharing_with_the_in_process_bus() {
    let s = Served::new();
    scenarios(&s);
}

#[test]
fn context_sharing_over_nats() {
    let nats = NatsServer::start().expect("nats-server is needed: run scripts/setup");
    let url = nats.url();
    let s = Served::with(format!("t{:x}", common::rand_u32()), &["--bus", &url]);
    let (t, share) = scenarios(&s);

    // Checked again where it arrives: a message put on the bus by anything but this runtime
    // (forged, or a replay of one already delivered) reaches nobody, and blames nobody. (A
    // crossing whose share closed on the way is refused and recorded: see the unit tests of
    // `daemon::context`.)
    let mut pm = Gateway::connect(&s, &t.pm);
    pm.call("subscribe", json!({ "topics": ["**"] })).unwrap();
    let denials = s.count("AccessDenied");
    let forged: roster_bus::ContextMessage = serde_json::from_value(json!({
        "to": "product",
        "from": "research",
        "sender": t.scout,
        "topic": "findings/launch",
        "message": "smuggled",
        "share": share,
        "record": "evt_0190c0de000070008000000000000000",
        "at": "2026-01-01T00:00:00Z",
    }))
    .unwrap();
    // And a message to product in the name of one of its own agents, which never sent it.
    let forged_inside: roster_bus::ContextMessage = serde_json::from_value(json!({
        "to": "product",
        "from": "product",
        "sender": t.pm,
        "topic": "plans/q4",
        "message": "smuggled too",
        "share": null,
        "record": null,
        "at": "2026-01-01T00:00:00Z",
    }))
    .unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let bus_url = roster_bus::BusUrl::parse(&url).unwrap();
        let client = roster_bus::connect(&bus_url).await.unwrap();
        let bus = roster_bus::CtxBus::nats(
            client.clone(),
            roster_core::name::Name::parse(&s.ns).unwrap(),
        );
        bus.publish(forged).await.unwrap();
        bus.publish(forged_inside).await.unwrap();
        client.flush().await.unwrap();
    });
    expect_nothing(&mut pm);
    assert_eq!(s.count("AccessDenied"), denials);
}

#[test]
fn the_runtime_works_through_a_nats_outage_and_every_event_reaches_the_stream_once() {
    let mut nats = NatsServer::start().expect("nats-server is needed: run scripts/setup");
    let url = nats.url();
    let s = Served::with(format!("t{:x}", common::rand_u32()), &["--bus", &url]);
    s.ok(&["team", "create", "lab"]);
    let a = s.hire_into("lab", "a", &[]);

    // NATS goes away: hiring, answers and refusals go on, their events wait in the log.
    nats.kill().unwrap();
    let b = s.hire_into("lab", "b", &[]);
    let mut ga = Gateway::connect(&s, &a);
    let mut gb = Gateway::connect(&s, &b);
    ga.call("whoami", Value::Null).unwrap();
    denied(ga.call("hire", json!({ "name": "c", "grants": ["email.send@**"] })));
    let status = s.ok(&["status"]);
    assert!(status.contains("NOT connected"), "{status}");
    // Context cannot travel without the bus: it says so at once, and nothing is recorded.
    let events = s.events().len();
    let e = publish(&mut ga, "news", "while down", None).unwrap_err();
    assert_eq!(e["code"], "internal", "{e}");
    assert!(
        e["message"].as_str().unwrap().contains("not reachable"),
        "{e}"
    );
    let e = gb
        .call("subscribe", json!({ "topics": ["**"] }))
        .unwrap_err();
    assert_eq!(e["code"], "internal", "{e}");
    assert_eq!(s.events().len(), events);

    // It comes back: publishing resumes by itself.
    nats.restart().unwrap();
    let total = s.events().len();
    common::wait_for(
        "every event to reach JetStream",
        Duration::from_secs(60),
        || {
            let v: Value = serde_json::from_str(s.ok(&["--json", "status"]).trim()).unwrap();
            v["published"] == total && v["bus_connected"] == true
        },
    );
    // Context flows again too.
    gb.call("subscribe", json!({ "topics": ["**"] })).unwrap();
    publish(&mut ga, "back", "hello again", None).unwrap();
    expect_message(&mut gb, "lab", "back", "hello again");

    // An outside subscriber sees every event exactly once, in order.
    let out = s.ok(&[
        "subscribe",
        "--bus",
        &url,
        "--ns",
        &s.ns,
        "--count",
        &total.to_string(),
    ]);
    let seqs: Vec<u64> = out
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["seq"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(seqs, (0..total as u64).collect::<Vec<_>>());
}
