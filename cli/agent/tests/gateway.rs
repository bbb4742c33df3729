//! `roster-agent`, the client an agent runs in its container, against a gateway on a real Unix
//! socket.
//!
//! The client is under test here, so the peer is a small server that speaks the protocol
//! honestly and can also misbehave (go silent, hang up), which roster-runtime's gateway never
//! does on purpose; that server has its own tests over real sockets in `runtime/src/gateway`. Every
//! line goes through roster-core's own `decode_request` and every answer through
//! `encode_response`. It answers each method in a fixed way (an echo of the typed call, a
//! refusal of each kind, silence, a hang-up) so that each of the client's paths is reached.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use roster_core::gateway::{decode_request, encode_response, Call, ErrorCode, GatewayError};
use serde_json::{json, Value};

/// The answer the test gateway gives to a decoded call.
fn answer(call: &Call) -> Option<Result<Value, GatewayError>> {
    let refuse = |code, m: &str| Some(Err(GatewayError::new(code, m)));
    match call {
        Call::Whoami => Some(Ok(json!({"id": "agt_test", "name": "scout"}))),
        // The typed call, back: what the client sent, as the runtime read it.
        Call::History(_) => Some(Ok(serde_json::to_value(call).unwrap())),
        Call::Grants => refuse(ErrorCode::Denied, "agent is retired"),
        Call::Hire(p) if p.name.as_str() == "scout" => {
            Some(Ok(serde_json::to_value(call).unwrap()))
        }
        Call::Hire(_) => refuse(ErrorCode::RateLimited, "too many requests"),
        Call::Delegate(_) | Call::Retire(_) => Some(Ok(serde_json::to_value(call).unwrap())),
        Call::Act(p) => match p.action.as_str() {
            "a" => refuse(ErrorCode::Internal, "the runtime failed"),
            "wait.long" => refuse(ErrorCode::Pending, "approval apr_x is waiting"),
            "no.provider" => refuse(ErrorCode::Unavailable, "no tool provider"),
            "tool.broken" => refuse(ErrorCode::ToolFailed, "the provider failed"),
            _ => Some(Ok(serde_json::to_value(call).unwrap())),
        },
        // Never answered: for the client's deadline.
        Call::Subscribe(_) => None,
        _ => refuse(ErrorCode::Internal, "not in this test"),
    }
}

struct Gateway {
    _dir: tempfile::TempDir,
    path: PathBuf,
    /// Every line received, as sent.
    lines: Arc<Mutex<Vec<String>>>,
}

impl Gateway {
    fn start() -> Gateway {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gateway.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&lines);
        // Accepts until the test process ends; each connection on its own thread.
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let seen = Arc::clone(&seen);
                thread::spawn(move || serve(stream, &seen));
            }
        });
        Gateway {
            _dir: dir,
            path,
            lines,
        }
    }

    fn run(&self, args: &[&str]) -> Run {
        run(Some(&self.path), args, None)
    }
}

fn serve(stream: UnixStream, seen: &Mutex<Vec<String>>) {
    let mut out = stream.try_clone().unwrap();
    let mut read = BufReader::new(stream);
    let mut line = Vec::new();
    while read.read_until(b'\n', &mut line).unwrap_or(0) > 0 {
        let text = String::from_utf8_lossy(&line).trim_end().to_owned();
        seen.lock().unwrap().push(text.clone());
        let (id, result) = match decode_request(text.as_bytes()) {
            Err((id, e)) => (id, Some(Err(e))),
            Ok(r) if matches!(r.call, Call::Publish(_)) => {
                // Hang up without answering.
                return;
            }
            Ok(r) => {
                // A line for another request first: the client must wait for its own.
                let other = encode_response(Some(r.id + 1000), &Ok(json!("not yours")));
                let _ = writeln!(out, "{other}");
                (Some(r.id), answer(&r.call))
            }
        };
        match result {
            Some(result) => {
                let _ = writeln!(out, "{}", encode_response(id, &result));
            }
            None => thread::sleep(Duration::from_secs(60)),
        }
        line.clear();
    }
}

#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    /// The JSON on stdout.
    fn ok(&self) -> Value {
        assert_eq!(self.code, 0, "{self:?}");
        assert!(self.stderr.is_empty(), "{self:?}");
        serde_json::from_str(&self.stdout).unwrap()
    }

    /// The error code printed on stderr, after checking the exit code and the shape.
    fn failed(&self, exit: i32) -> String {
        assert_eq!(self.code, exit, "{self:?}");
        assert!(self.stdout.is_empty(), "{self:?}");
        let e: Value = serde_json::from_str(self.stderr.trim_end()).unwrap();
        assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()), "{e}");
        e["code"].as_str().unwrap().to_owned()
    }
}

fn run(socket_env: Option<&Path>, args: &[&str], stdin: Option<&[u8]>) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_roster-agent"));
    cmd.args(args).env_remove("ROSTER_GATEWAY");
    if let Some(p) = socket_env {
        cmd.env("ROSTER_GATEWAY", p);
    }
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    if let Some(bytes) = stdin {
        // The client may stop reading early (too long); that is its right.
        let _ = child.stdin.take().unwrap().write_all(bytes);
    }
    drop(child.stdin.take());
    let Output {
        status,
        stdout,
        stderr,
    } = child.wait_with_output().unwrap();
    Run {
        code: status.code().unwrap_or(-1),
        stdout: String::from_utf8(stdout).unwrap(),
        stderr: String::from_utf8(stderr).unwrap(),
    }
}

#[test]
fn the_answer_is_printed_as_json_and_one_well_formed_request_is_sent() {
    let gw = Gateway::start();
    let me = gw.run(&["whoami"]);
    assert_eq!(me.ok(), json!({"id": "agt_test", "name": "scout"}));
    assert_eq!(me.stdout.lines().count(), 1);
    let pretty = gw.run(&["whoami", "--pretty"]);
    assert_eq!(pretty.ok(), me.ok());
    assert!(pretty.stdout.lines().count() > 1, "{pretty:?}");
    let lines = gw.lines.lock().unwrap().clone();
    assert_eq!(lines.len(), 2, "one line per run: {lines:?}");
    for l in &lines {
        let r = decode_request(l.as_bytes()).unwrap();
        assert_eq!(r.call, Call::Whoami);
    }
}

#[test]
fn history_options_arrive_as_typed_parameters() {
    let gw = Gateway::start();
    let echo = gw.run(&["history", "--from", "5", "--limit", "7"]).ok();
    assert_eq!(
        echo,
        json!({"method": "history", "params": {"from": 5, "limit": 7}})
    );
    let echo = gw.run(&["history"]).ok();
    assert_eq!(
        echo,
        json!({"method": "history", "params": {"from": null, "limit": null}})
    );
    let echo = gw.run(&["call", "history", r#"{"limit":2}"#]).ok();
    assert_eq!(echo["params"]["limit"], 2);
    let echo = run(
        Some(&gw.path),
        &["call", "history", "-"],
        Some(br#"{"from":3}"#),
    )
    .ok();
    assert_eq!(echo["params"]["from"], 3);
}

#[test]
fn each_refusal_has_its_exit_code_and_its_code_on_stderr() {
    let gw = Gateway::start();
    let cases: &[(&[&str], i32, &str)] = &[
        (&["grants"], 3, "denied"),
        (&["call", "hire", r#"{"name":"helper"}"#], 4, "rate_limited"),
        (
            &["call", "act", r#"{"action":"a","resource":"x"}"#],
            1,
            "internal",
        ),
        (&["call", "sudo"], 2, "unknown_method"),
        (&["call", "history", r#"{"from":"x"}"#], 2, "bad_params"),
        (&["call", "history", "[1]"], 2, "bad_params"),
        (&["call", "whoami", r#"{"as":"operator"}"#], 2, "bad_params"),
    ];
    for (args, exit, code) in cases {
        assert_eq!(gw.run(args).failed(*exit), *code, "{args:?}");
    }
}

#[test]
fn bad_usage_exits_2_without_calling() {
    let gw = Gateway::start();
    let cases: &[&[&str]] = &[
        &["call", "hire", "{not json"],
        &["history", "--limit", "many"],
        &["fly"],
        &[],
    ];
    for args in cases {
        assert_eq!(gw.run(args).failed(2), "bad_usage", "{args:?}");
    }
    let big = format!(r#"{{"message":"{}"}}"#, "x".repeat(2 * 1024 * 1024));
    let r = run(
        Some(&gw.path),
        &["call", "publish", "-"],
        Some(big.as_bytes()),
    );
    assert_eq!(r.failed(2), "bad_usage");
    assert!(gw.lines.lock().unwrap().is_empty(), "nothing was sent");
    assert_eq!(gw.run(&["--help"]).code, 0);
}

#[test]
fn a_gateway_that_cannot_be_reached_exits_5() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("gateway.sock");
    let r = run(Some(&missing), &["whoami"], None);
    assert_eq!(r.failed(5), "unreachable");
    assert!(r.stderr.contains("gateway.sock"), "{r:?}");
    // A socket file nobody listens on any more.
    drop(UnixListener::bind(&missing).unwrap());
    assert_eq!(
        run(Some(&missing), &["whoami"], None).failed(5),
        "unreachable"
    );
    // The flag names the socket too, and the default path is used without either.
    let flag = missing.to_str().unwrap();
    assert_eq!(
        run(None, &["--socket", flag, "whoami"], None).failed(5),
        "unreachable"
    );
    let r = run(None, &["whoami"], None);
    if !Path::new("/run/roster/gateway.sock").exists() {
        assert!(r.stderr.contains("/run/roster/gateway.sock"), "{r:?}");
    }
}

#[test]
fn no_answer_is_a_timeout_and_a_hang_up_is_an_error() {
    let gw = Gateway::start();
    let started = Instant::now();
    let r = gw.run(&[
        "--timeout",
        "1",
        "call",
        "subscribe",
        r#"{"topics":["news"]}"#,
    ]);
    assert_eq!(r.failed(1), "timeout");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "the deadline bounds the wait"
    );
    let r = gw.run(&["call", "publish", r#"{"topic":"news","message":"hi"}"#]);
    assert_eq!(r.failed(1), "protocol");
}

#[test]
fn act_sends_typed_parameters_and_its_outcomes_have_their_exit_codes() {
    let gw = Gateway::start();
    let approval = "apr_0192f0c0000070008000000000000001";
    let echo = gw
        .run(&[
            "act",
            "email.send",
            "mailbox:alice",
            "--amount",
            "3",
            "--arg",
            "subject=hi there",
            "--arg",
            "body=a=b",
            "--wait",
            "0",
            "--approval",
            approval,
        ])
        .ok();
    assert_eq!(
        echo,
        json!({"method": "act", "params": {
            "action": "email.send", "resource": "mailbox:alice", "amount": 3,
            "args": {"body": "a=b", "subject": "hi there"}, "timeout_secs": 0,
            "approval": approval, "key": null,
        }})
    );
    let echo = gw
        .run(&["act", "spend.usd", "vendor:acme", "--key", "pay-7"])
        .ok();
    assert_eq!(echo["params"]["key"], "pay-7");
    assert_eq!(echo["params"]["amount"], Value::Null);
    assert_eq!(echo["params"]["timeout_secs"], Value::Null);
    assert_eq!(echo["params"]["args"], json!({}));
    let cases: &[(&[&str], i32, &str)] = &[
        (&["act", "wait.long", "x"], 6, "pending"),
        (&["act", "no.provider", "x"], 7, "unavailable"),
        (&["act", "tool.broken", "x"], 8, "tool_failed"),
        (&["act", "a", "x"], 1, "internal"),
    ];
    for (args, exit, code) in cases {
        assert_eq!(gw.run(args).failed(*exit), *code, "{args:?}");
    }
    let sent = gw.lines.lock().unwrap().len();
    // Bad input is refused before anything is sent.
    for args in [
        &["act", "email.*", "mailbox:alice"][..],
        &["act", "email.send", "mailbox:*"],
        &["act", "email.send", "x", "--amount", "0"],
        &["act", "email.send", "x", "--arg", "Subject=hi"],
        &["act", "email.send", "x", "--arg", "subject"],
        &["act", "email.send", "x", "--arg", "a=1", "--arg", "a=2"],
        &["act", "email.send", "x", "--wait", "3601"],
        &[
            "act",
            "email.send",
            "x",
            "--approval",
            "grt_0192f0c0000070008000000000000001",
        ],
    ] {
        assert_eq!(gw.run(args).failed(2), "bad_usage", "{args:?}");
    }
    assert_eq!(gw.lines.lock().unwrap().len(), sent);
}

#[test]
fn hire_delegate_and_retire_send_typed_parameters_and_bad_ones_never_leave() {
    let gw = Gateway::start();
    let echo = gw
        .run(&[
            "hire",
            "scout",
            "--role",
            "finds things",
            "--runtime",
            "runsc",
            "--disk",
            "512",
            "--grant",
            "email.send@mailbox:alice,budget=5",
            "--grant",
            "news.read@feed:*",
        ])
        .ok();
    assert_eq!(
        echo,
        json!({"method": "hire", "params": {"name": "scout", "role": "finds things",
            "image": null, "runtime": "runsc", "disk_mib": 512,
            "grants": ["email.send@mailbox:alice,budget=5", "news.read@feed:*"]}})
    );
    let agent = "agt_0190c0de000070008000000000000001";
    let grant = "grt_0190c0de000070008000000000000002";
    let echo = gw
        .run(&[
            "delegate",
            agent,
            "email.send@mailbox:alice",
            "--from",
            grant,
        ])
        .ok();
    assert_eq!(
        echo,
        json!({"method": "delegate", "params": {"to": agent,
            "capability": "email.send@mailbox:alice", "from": grant, "key": null}})
    );
    let echo = gw.run(&["retire", agent]).ok();
    assert_eq!(
        echo,
        json!({"method": "retire", "params": {"agent": agent}})
    );
    let sent = gw.lines.lock().unwrap().len();
    for bad in [
        &["hire", "Bad.Name"][..],
        &["hire", "scout", "--grant", "email.send@"],
        &["hire", "scout", "--runtime", "kata"],
        &["hire", "scout", "--disk", "63"],
        &["delegate", "scout", "email.send@mailbox:alice"],
        &["retire", "agt_nothex"],
    ] {
        gw.run(bad).failed(2);
    }
    assert_eq!(
        gw.lines.lock().unwrap().len(),
        sent,
        "a bad command reached the gateway"
    );
}
