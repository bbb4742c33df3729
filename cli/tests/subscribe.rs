//! `roster subscribe` end to end, through the real binary: on a NATS stream fed by the real
//! outbox (durable resumes without gap or duplicate, signals end it cleanly, an unreachable
//! server is an error, not a hang) and on the in-process bus (the data directory's own log).
//! Every line must be byte for byte the event's `roster export` line.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use roster_bus::{BusUrl, NatsServer, Outbox};
use roster_core::port::{Checkpoints, LogRead};
use roster_store::SledLog;

fn roster(dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_roster"));
    c.arg("--data-dir")
        .arg(dir)
        .arg("--as")
        .arg("tester")
        .env_remove("ROSTER_JSON")
        .env_remove("ROSTER_BUS")
        .env_remove("ROSTER_NS");
    c
}

/// Runs to the end, with a hang guard (the command must finish by itself).
fn run(dir: &Path, args: &[&str]) -> Output {
    let child = roster(dir)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run roster");
    finish(child, args)
}

fn finish(mut child: Child, args: &[&str]) -> Output {
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("roster {args:?} did not finish");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn ok(dir: &Path, args: &[&str]) -> String {
    let out = run(dir, args);
    assert!(
        out.status.success(),
        "roster {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A data directory holding `teams` TeamCreated events; returns its `roster export` event
/// lines.
fn data_dir(dir: &Path, teams: usize) -> Vec<String> {
    ok(dir, &["init"]);
    for i in 0..teams {
        ok(dir, &["team", "create", &format!("team-{i}")]);
    }
    common::event_lines(&ok(dir, &["export"]))
}

fn lines(text: &str) -> Vec<String> {
    text.lines().map(str::to_owned).collect()
}

fn server() -> NatsServer {
    NatsServer::start().unwrap_or_else(|e| panic!("this test needs a real NATS server: {e}"))
}

/// Publishes the data directory's whole log with the real outbox (no `roster` runs meanwhile).
fn publish(dir: &Path, server: &NatsServer) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let log = Arc::new(SledLog::open(&dir.join("log")).unwrap());
        let url = BusUrl::parse(&server.url()).unwrap();
        let client = roster_bus::connect_now(&url, Duration::from_secs(5))
            .await
            .unwrap();
        let ns = roster_core::name::Name::parse("roster").unwrap();
        let outbox = Outbox::spawn(log.clone(), client, ns);
        tokio::time::timeout(Duration::from_secs(60), outbox.published(log.len()))
            .await
            .expect("the outbox published in time")
            .unwrap();
        outbox.stop().await;
    });
}

#[test]
fn a_durable_nats_subscription_resumes_without_gap_or_duplicate() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let export = data_dir(&dir, 8);
    let server = server();
    publish(&dir, &server);
    let url = server.url();
    let sub = |count: &str| {
        ok(
            &dir,
            &[
                "subscribe",
                "--bus",
                &url,
                "--durable",
                "x",
                "--count",
                count,
            ],
        )
    };

    assert_eq!(lines(&sub("3")), export[0..3]);
    assert_eq!(lines(&sub("3")), export[3..6]);
    assert_eq!(lines(&sub("2")), export[6..8]);

    // More events, published later: the durable goes on from where it stopped.
    ok(&dir, &["team", "create", "late"]);
    let export = common::event_lines(&ok(&dir, &["export"]));
    publish(&dir, &server);
    assert_eq!(lines(&sub("1")), export[8..9]);

    // An ordered subscription from a position, with a kind filter: the same lines.
    let from = ok(
        &dir,
        &[
            "subscribe",
            "--bus",
            &url,
            "--type",
            "TeamCreated",
            "--from",
            "5",
            "--count",
            "4",
        ],
    );
    assert_eq!(lines(&from), export[5..9]);

    // The same durable with another filter is refused, with the reason.
    let out = run(
        &dir,
        &[
            "subscribe",
            "--bus",
            &url,
            "--durable",
            "x",
            "--team",
            "late",
            "--count",
            "1",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("durable subscription `x` exists"),
        "{stderr}"
    );
}

#[test]
fn a_signal_ends_a_nats_subscriber_with_success() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let export = data_dir(&dir, 2);
    let server = server();
    publish(&dir, &server);
    let mut child = roster(&dir)
        .args(["subscribe", "--bus", &server.url()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    for want in &export {
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        assert_eq!(line.trim_end(), want);
    }
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let out = finish(child, &["subscribe (until SIGTERM)"]);
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn an_unreachable_nats_server_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("nats://127.0.0.1:{port}");
    let out = run(tmp.path(), &["subscribe", "--bus", &url, "--count", "1"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("cannot reach NATS at {url}")),
        "{stderr}"
    );
}

#[test]
fn the_in_process_bus_follows_the_data_directorys_log() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let export = data_dir(&dir, 6);
    // No bus configured: the in-process one, reading the log itself.
    let sub = |args: &[&str]| {
        let mut all = vec!["subscribe"];
        all.extend_from_slice(args);
        lines(&ok(&dir, &all))
    };
    assert_eq!(sub(&["--durable", "m", "--count", "2"]), export[0..2]);
    assert_eq!(sub(&["--durable", "m", "--count", "3"]), export[2..5]);
    assert_eq!(sub(&["--count", "2", "--from", "4"]), export[4..6]);
    assert_eq!(
        sub(&["--team", "team-3", "--type", "TeamCreated", "--count", "1"]),
        export[3..4]
    );
    // `--bus memory` in roster.toml is the same; the durable resumes after the last line.
    std::fs::write(dir.join("roster.toml"), "[serve]\nbus = \"memory\"\n").unwrap();
    assert_eq!(sub(&["--durable", "m", "--count", "1"]), export[5..6]);
    let log = SledLog::open(&dir.join("log")).unwrap();
    assert_eq!(log.checkpoint("consumer/m").unwrap(), Some(6));
}

#[test]
fn a_nats_bus_in_roster_toml_is_used() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let export = data_dir(&dir, 3);
    let server = server();
    publish(&dir, &server);
    std::fs::write(
        dir.join("roster.toml"),
        format!("[serve]\nbus = \"{}\"\n", server.url()),
    )
    .unwrap();
    // The log is not where these lines come from: the stream is.
    std::fs::write(dir.join("namespace"), "roster\n").unwrap();
    assert_eq!(lines(&ok(&dir, &["subscribe", "--count", "3"])), export);
    // `--ns` wins over the data directory's namespace.
    std::fs::write(dir.join("namespace"), "elsewhere\n").unwrap();
    assert_eq!(
        lines(&ok(&dir, &["subscribe", "--ns", "roster", "--count", "3"])),
        export
    );
}

/// A message someone else published into the stream between two events (no position, not an
/// event) is not printed: stderr says which message was refused and why, and every real event
/// is printed, byte for byte.
#[test]
fn a_forged_message_in_the_stream_is_refused_on_stderr_and_not_printed() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let export = data_dir(&dir, 2);
    let server = server();
    publish(&dir, &server);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let url = BusUrl::parse(&server.url()).unwrap();
        let client = roster_bus::connect_now(&url, Duration::from_secs(5))
            .await
            .unwrap();
        // A request: JetStream answers once the message is stored.
        client
            .request("roster.events.team-0.TeamCreated", "{\"forged\":1}".into())
            .await
            .unwrap();
    });
    ok(&dir, &["team", "create", "late"]);
    let export_all = common::event_lines(&ok(&dir, &["export"]));
    assert_eq!(export_all[..2], export[..]);
    publish(&dir, &server);

    let out = run(&dir, &["subscribe", "--bus", &server.url(), "--count", "3"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(lines(&String::from_utf8(out.stdout).unwrap()), export_all);
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("refused message 3 of the events stream (subject roster.events.team-0.TeamCreated): it has no valid Roster-Seq header; not printed"),
        "{stderr}"
    );
}

/// Real events published by someone else as pretty-printed JSON (several lines each) with a
/// field the envelope does not have: each is printed as the checked envelope, one line byte
/// for byte its `roster export` line, never the bytes as sent.
#[test]
fn an_event_is_printed_as_its_canonical_line_not_as_sent() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let export = data_dir(&dir, 2);
    let server = server();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let log = SledLog::open(&dir.join("log")).unwrap();
        let url = BusUrl::parse(&server.url()).unwrap();
        let client = roster_bus::connect_now(&url, Duration::from_secs(5))
            .await
            .unwrap();
        // Opening a subscription makes the stream.
        roster_bus::EventSubscription::open(
            &client,
            &roster_core::name::Name::parse("roster").unwrap(),
            roster_bus::SubscribeOptions::default(),
        )
        .await
        .unwrap();
        for e in log.read(0, 2).unwrap() {
            let mut json = serde_json::to_value(&e).unwrap();
            json["note"] = serde_json::json!("{\"seq\":7,\"forged\":true}");
            let pretty = serde_json::to_string_pretty(&json).unwrap();
            assert!(pretty.lines().count() > 5);
            client
                .request_with_headers(
                    format!("roster.events.team-{}.TeamCreated", e.seq),
                    roster_bus::wire::headers(&e),
                    pretty.into(),
                )
                .await
                .unwrap();
        }
    });
    let out = run(&dir, &["subscribe", "--bus", &server.url(), "--count", "2"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(lines(&String::from_utf8(out.stdout).unwrap()), export);
}
