//! `roster serve` end to end, on a real Docker engine: an agent hired through the CLI runs
//! hardened in its container, talks to the runtime only through its socket, keeps its home
//! across every kind of restart, and its crashes and timeouts are recorded.
//!
//! Needs a Docker engine and the static `roster-agent` (`ROSTER_AGENT_BINARY`); `scripts/test`
//! provides both. Without them these tests fail, loudly: they never pass by skipping.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{agent_binary, docker, restart_engine, wait_for, Served};
use serde_json::Value;

fn lab() -> Served {
    let s = Served::new();
    s.ok(&["team", "create", "lab"]);
    s
}

#[test]
fn a_hired_agent_runs_hardened_and_reaches_the_runtime_only_through_its_socket() {
    let s = lab();
    s.hire(
        "scout",
        &["--role", "reads the news", "--grant", "news.read@feed:*"],
    );
    let me: Value =
        serde_json::from_str(&s.exec("lab/scout", &["roster-agent", "whoami"])).unwrap();
    assert_eq!(me["name"], "scout", "{me}");
    let grants = s.exec("lab/scout", &["roster-agent", "grants"]);
    assert!(grants.contains("news.read@feed:*"), "{grants}");
    // Hardened: not root, no capabilities, read-only root, no network, no credentials.
    let uid: u32 = s.exec("lab/scout", &["id", "-u"]).trim().parse().unwrap();
    assert!(uid >= 0x7000_0000, "a host uid of its own, not {uid}");
    let status = s.exec("lab/scout", &["cat", "/proc/self/status"]);
    assert!(
        status
            .lines()
            .any(|l| l.starts_with("CapEff:") && l.ends_with("0000000000000000")),
        "{status}"
    );
    let out = s.run(&["exec", "lab/scout", "--", "touch", "/etc/x"]);
    assert!(!out.status.success(), "the root filesystem is writable");
    let nets = s.exec("lab/scout", &["ls", "/sys/class/net"]);
    assert_eq!(
        nets.split_whitespace().collect::<Vec<_>>(),
        ["lo"],
        "{nets}"
    );
    let env = s.exec("lab/scout", &["env"]);
    assert!(
        !env.to_lowercase().contains("token") && !env.contains("DOCKER"),
        "{env}"
    );
    // The agent's mounts: its home, its gateway directory, the client; nothing else of the host.
    let mounts = s.exec("lab/scout", &["cat", "/proc/mounts"]);
    assert!(!mounts.contains("docker.sock"), "{mounts}");
    // Its gateway directory is read-only: it cannot replace its socket or fill the host's disk.
    for cmd in [
        &["touch", "/run/roster/x"][..],
        &["rm", "-f", "/run/roster/gateway.sock"],
    ] {
        let mut args = vec!["exec", "lab/scout", "--"];
        args.extend_from_slice(cmd);
        assert!(
            !s.run(&args).status.success(),
            "{cmd:?} worked in /run/roster"
        );
    }
    s.exec("lab/scout", &["roster-agent", "whoami"]);
    // A bad call is a typed error with a useful exit code, and the gateway goes on answering.
    let bad = s.run(&[
        "exec",
        "lab/scout",
        "--",
        "roster-agent",
        "call",
        "frobnicate",
    ]);
    assert_eq!(
        bad.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
    s.exec("lab/scout", &["roster-agent", "whoami"]);
    // The log tells the story.
    assert_eq!(s.count("AgentStarted"), 1);
    let agent = s.agent("scout");
    assert_eq!(agent["runtime"], "runc");
    assert_eq!(agent["status"], "running");
}

#[test]
fn the_home_survives_container_daemon_and_engine_restarts_and_only_purge_deletes_it() {
    let mut s = lab();
    s.hire("keeper", &[]);
    s.exec(
        "lab/keeper",
        &["sh", "-c", "echo remembered > /home/agent/note"],
    );
    let note = |s: &Served| s.exec("lab/keeper", &["cat", "/home/agent/note"]);

    // Stop and start: a new container, the same home.
    s.ok(&["stop", "lab/keeper"]);
    assert_eq!(s.agent("keeper")["status"], "stopped (on request)");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        s.agent("keeper")["status"],
        "stopped (on request)",
        "a requested stop is not undone"
    );
    s.ok(&["start", "lab/keeper"]);
    s.wait_up("keeper");
    assert_eq!(note(&s).trim(), "remembered");

    // The daemon stops and starts again: it adopts the running container and reopens its socket.
    s.stop();
    let out = s.run(&["stop", "lab/keeper"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "container commands need the daemon"
    );
    s.start();
    s.wait_up("keeper");
    assert_eq!(note(&s).trim(), "remembered");
    s.exec("lab/keeper", &["roster-agent", "whoami"]);

    // The engine restarts: the container dies with it; the daemon notices, records it and
    // starts the agent again.
    let started = s.count("AgentStarted");
    restart_engine();
    wait_for(
        "the agent to be restarted after the engine came back",
        Duration::from_secs(90),
        || s.count("AgentStarted") > started,
    );
    s.wait_up("keeper");
    assert_eq!(note(&s).trim(), "remembered");

    // Retiring removes the container but keeps the home; purge deletes it.
    s.ok(&["retire", "lab/keeper"]);
    let id = s.agent("keeper")["id"].as_str().unwrap().to_string();
    let volume = format!("roster-{}-{id}-home", s.ns);
    let container = format!("roster-{}-{id}", s.ns);
    wait_for(
        "the retired agent's container to go",
        Duration::from_secs(30),
        || !docker(&["inspect", &container]).status.success(),
    );
    assert!(
        docker(&["volume", "inspect", &volume]).status.success(),
        "the home went with retirement"
    );
    s.ok(&["purge", "lab/keeper"]);
    assert!(
        !docker(&["volume", "inspect", &volume]).status.success(),
        "purge left the home"
    );
}

#[test]
fn an_agents_output_reaches_the_operator_escaped_unless_raw() {
    let s = lab();
    s.hire("noisy", &[]);
    s.wait_up("noisy");
    // Printed by the agent: a screen clear, a window title, a carriage return.
    let script = r#"printf 'hi\033[2J\033]0;owned\007\rX\n'"#;
    let shown = s.exec("lab/noisy", &["sh", "-c", script]);
    assert_eq!(shown, "hi\\u{1b}[2J\\u{1b}]0;owned\\u{7}\\u{d}X\n");
    let raw = s.ok(&["exec", "lab/noisy", "--raw", "--", "sh", "-c", script]);
    assert_eq!(raw, "hi\u{1b}[2J\u{1b}]0;owned\u{7}\rX\n");
    // The same through its container's output: `logs`.
    s.exec(
        "lab/noisy",
        &["sh", "-c", &format!("{script} > /proc/1/fd/1")],
    );
    wait_for("the line in the logs", Duration::from_secs(10), || {
        s.ok(&["logs", "lab/noisy", "--raw"]).contains("owned")
    });
    let logs = s.ok(&["logs", "lab/noisy"]);
    assert!(
        logs.contains("hi\\u{1b}[2J\\u{1b}]0;owned\\u{7}\\u{d}X"),
        "{logs}"
    );
    assert!(!logs.contains('\u{1b}'), "{logs}");
}

#[test]
fn what_an_agent_prints_is_kept_bounded_on_the_hosts_disk() {
    let s = lab();
    s.hire("chatty", &[]);
    s.wait_up("chatty");
    // 48 MB through its container's output, more than the 3 × 10 MiB the engine keeps.
    let script = "head -c 48000000 /dev/zero | tr '\\0' x | fold -w 999 > /proc/1/fd/1";
    s.exec("lab/chatty", &["sh", "-c", script]);
    let id = s.agent("chatty")["id"].as_str().unwrap().to_owned();
    let inspect = docker(&[
        "inspect",
        "--format",
        "{{.LogPath}}",
        &format!("roster-{}-{id}", s.ns),
    ]);
    let log = String::from_utf8(inspect.stdout).unwrap().trim().to_owned();
    let dir = std::path::Path::new(&log).parent().unwrap();
    let kept: u64 = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().contains("-json.log"))
        .map(|e| e.metadata().unwrap().len())
        .sum();
    println!("printed 48,000,000 bytes; the engine keeps {kept} bytes");
    assert!(kept > 10 << 20, "it kept almost nothing: {kept}");
    assert!(kept <= 31 << 20, "more than 3 × 10 MiB kept: {kept}");
    // And `roster logs` still reads what is kept.
    assert!(s
        .ok(&["logs", "lab/chatty", "--tail", "2"])
        .contains("xxxx"));
}

#[test]
fn a_crash_is_recorded_and_the_agent_restarted_a_timeout_is_not() {
    let s = lab();
    s.hire("fragile", &[]);
    // Kill every process of the agent's user, its main process included.
    let _ = s.run(&["exec", "lab/fragile", "--", "kill", "-KILL", "-1"]);
    wait_for("the crash to be recorded", Duration::from_secs(30), || {
        s.events().iter().any(|e| {
            e["event"]["AgentStopped"]["reason"]
                .get("crashed")
                .is_some()
                || e["event"]["AgentStopped"]["reason"].get("exited").is_some()
        })
    });
    wait_for("the restart", Duration::from_secs(30), || {
        s.count("AgentStarted") >= 2
    });
    s.wait_up("fragile");

    s.hire("brief", &["--timeout", "2"]);
    wait_for("the timeout", Duration::from_secs(30), || {
        s.agent("brief")["status"] == "stopped (timed out)"
    });
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        s.agent("brief")["status"],
        "stopped (timed out)",
        "a timed-out agent was restarted"
    );
}

#[test]
fn the_admin_socket_is_the_owners_alone_and_commands_go_through_it() {
    use std::os::unix::fs::PermissionsExt;
    let s = lab();
    let mode = std::fs::metadata(s.dir.join("admin.sock"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let dir_mode = std::fs::metadata(&s.dir).unwrap().permissions().mode();
    assert_eq!(dir_mode & 0o077, 0, "the data directory is open to others");
    // The store is the daemon's (sled allows one process); these only work through it.
    let teams = s.ok(&["team", "list"]);
    assert!(teams.contains("lab"), "{teams}");
    s.ok(&["verify"]);
    let out = s.run(&["hire", "--team", "nope", "--name", "x"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "a bad reference is still exit 2 through the daemon"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("nope"));
}

#[test]
fn the_log_is_made_owner_only_in_a_data_directory_open_to_others() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    // A data directory that exists already, open to every local user (as `$HOME` may be).
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    let log = data.join("log");
    let out = common::roster_in(&data, &["init"]);
    assert!(out.status.success(), "{out:?}");
    let note = String::from_utf8_lossy(&out.stderr);
    assert!(note.contains("open to other users"), "{note}");
    assert_owner_only(&log, "after `roster init`");
    assert_eq!(
        mode(&data),
        0o755,
        "init changed a directory it did not create"
    );
    // Loosened by hand (a copy, a chmod, a restore), then opened by a command without a daemon.
    loosen(&log);
    common::ok_in(&data, &["log"]);
    assert_owner_only(&log, "after `roster log` with no daemon");
    // And by every start of the daemon.
    let mut s = Served::in_tmp(tmp, format!("t{:x}", common::rand_u32()));
    s.stop();
    loosen(&log);
    s.start();
    assert_owner_only(&log, "after `roster serve` started");
    assert_eq!(mode(&s.dir.join("gateways")), 0o700);
    assert_eq!(mode(&s.dir.join("admin.sock")), 0o600);
}

/// Fails unless `log` and everything below it has no permission bit for group or others.
fn assert_owner_only(log: &Path, when: &str) {
    use std::os::unix::fs::PermissionsExt;
    let mut open = Vec::new();
    let mut files = 0;
    let mut dirs = vec![log.to_owned()];
    let log_mode = std::fs::metadata(log).unwrap().permissions().mode() & 0o777;
    assert_eq!(
        log_mode,
        0o700,
        "{} is mode {log_mode:o} {when}",
        log.display()
    );
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            let m = entry.metadata().unwrap();
            if m.permissions().mode() & 0o077 != 0 {
                open.push(format!(
                    "{} ({:o})",
                    entry.path().display(),
                    m.permissions().mode() & 0o777
                ));
            }
            if m.is_dir() {
                dirs.push(entry.path());
            } else {
                files += 1;
            }
        }
    }
    assert!(files > 0, "no files in {}", log.display());
    assert!(open.is_empty(), "open to others {when}: {open:?}");
}

/// Opens `log` and everything below it to every local user for reading (dirs 0755, files 0644).
fn loosen(log: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let mut dirs = vec![log.to_owned()];
    while let Some(dir) = dirs.pop() {
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
            }
        }
    }
}

/// One call on the admin socket, as any local program could send it; the frames back.
fn call(s: &Served, line: &str) -> Vec<Value> {
    use std::io::{BufRead, BufReader, Write};
    let mut sock = std::os::unix::net::UnixStream::connect(s.dir.join("admin.sock")).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    writeln!(sock, "{line}").unwrap();
    let mut frames = Vec::new();
    for line in BufReader::new(&sock).lines() {
        let frame: Value = serde_json::from_str(&line.unwrap()).unwrap();
        let end = frame.get("end").is_some();
        frames.push(frame);
        if end {
            break;
        }
    }
    frames
}

#[test]
fn the_admin_socket_parses_every_call_into_its_types_and_refuses_the_rest() {
    let s = lab();
    let before = s.count("AgentHired") + s.count("TeamCreated");
    // A well-formed hire with `field` set to `value`, as one line.
    let hire = |field: &str, value: Value| {
        let mut request = serde_json::json!({
            "op": "hire", "team": "lab", "name": "x", "role": "", "image": null,
            "runtime": null, "cpus": null, "memory": null, "pids": null, "tmpfs": null,
            "timeout": null, "by": null, "grants": [],
        });
        request[field] = value;
        serde_json::json!({"request": request, "operator": "tester", "cwd": "/"}).to_string()
    };
    for (line, says) in [
        // Limits are checked where the call is read, not only by the CLI's flags.
        (hire("memory", 4.into()), "outside 16 to 1048576"),
        (hire("cpus", 0.into()), "outside 0.01 to 1024"),
        (hire("pids", 7.into()), "outside 8 to 1000000"),
        (hire("by", "nobody".into()), "not an agent"),
        (hire("grants", serde_json::json!(["nothing"])), "nothing"),
        (hire("surprise", true.into()), "surprise"),
        (
            r#"{"request": {"op": "create_team", "name": "Not A Name"}, "operator": "tester", "cwd": "/"}"#.into(),
            "Not A Name",
        ),
        (
            r#"{"request": {"op": "create_team", "name": "ok", "extra": 1}, "operator": "tester", "cwd": "/"}"#.into(),
            "extra",
        ),
        (
            r#"{"request": {"op": "format_disk"}, "operator": "tester", "cwd": "/"}"#.into(),
            "format_disk",
        ),
        (
            r#"{"argv": ["team", "create", "old"], "operator": "tester", "json": true, "cwd": "/"}"#.into(),
            "argv",
        ),
        ("not json".into(), "not an admin call"),
    ] {
        let frames = call(&s, &line);
        let [end] = frames.as_slice() else {
            panic!("{line}: answered more than its end: {frames:?}");
        };
        assert_eq!(end["end"]["exit"], 2, "{line}: {end}");
        let error = end["end"]["error"].as_str().unwrap_or_default();
        assert!(error.contains(says), "{line}: `{error}` does not say `{says}`");
    }
    assert_eq!(
        s.count("AgentHired") + s.count("TeamCreated"),
        before,
        "a refused call recorded something"
    );
    // The same call, well-formed, is carried out and answered in items.
    let frames = call(&s, &hire("memory", 64.into()));
    assert_eq!(frames.last().unwrap()["end"]["exit"], 0, "{frames:?}");
    let hired = frames
        .iter()
        .find(|f| f["item"]["item"] == "hired")
        .unwrap_or_else(|| panic!("no `hired` item: {frames:?}"));
    assert_eq!(hired["item"]["value"]["address"], "lab/x");
    let log = s.ok(&["--json", "log"]);
    let recorded = log.lines().rfind(|l| l.contains("AgentHired")).unwrap();
    assert!(recorded.contains(r#""memory_mib":64"#), "{recorded}");
}

#[test]
fn an_agent_hired_with_runsc_runs_under_gvisor_where_it_is_installed() {
    let s = lab();
    if !Path::new("/usr/bin/runsc").exists() {
        // Without gVisor, the hire is refused before it is recorded.
        let out = s.run(&[
            "hire",
            "--team",
            "lab",
            "--name",
            "boxed",
            "--runtime",
            "runsc",
        ]);
        assert_eq!(out.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&out.stderr).contains("runsc"));
        assert_eq!(s.count("AgentHired"), 0);
        return;
    }
    s.hire("boxed", &["--runtime", "runsc"]);
    let agent = s.agent("boxed");
    assert_eq!(agent["runtime"], "runsc");
    let id = agent["id"].as_str().unwrap();
    let inspect = docker(&[
        "inspect",
        "--format",
        "{{.HostConfig.Runtime}}",
        &format!("roster-{}-{id}", s.ns),
    ]);
    assert_eq!(String::from_utf8_lossy(&inspect.stdout).trim(), "runsc");
    // Its gateway socket works through gVisor (host-uds), and it is the agent's own.
    let me: Value =
        serde_json::from_str(&s.exec("lab/boxed", &["roster-agent", "whoami"])).unwrap();
    assert_eq!(me["name"], "boxed");
    // gVisor's kernel answers, not the host's.
    let inside = s.exec("lab/boxed", &["cat", "/proc/version"]);
    let host = std::fs::read_to_string("/proc/version").unwrap();
    assert_ne!(
        inside.trim(),
        host.trim(),
        "the host kernel answered inside runsc"
    );
}

#[test]
fn a_hire_that_could_never_start_is_refused_before_it_is_recorded() {
    let mut s = lab();
    let out = s.run(&[
        "hire",
        "--team",
        "lab",
        "--name",
        "ghost",
        "--image",
        "nowhere/none:1",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("never pulls"), "{err}");
    assert_eq!(s.count("AgentHired"), 0, "the refused hire was recorded");

    // More than the host has (a 1 TiB machine is not this one): refused the same way, saying
    // what it has.
    for (flag, value, says) in [
        ("--cpus", "1000", "asks for 1000 CPUs; this host has"),
        (
            "--memory",
            "1048576",
            "asks for 1048576 MiB of memory; this host has",
        ),
    ] {
        let out = s.run(&["hire", "--team", "lab", "--name", "huge", flag, value]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flag} {value}: {err}");
        assert!(err.contains(says), "{err}");
    }
    assert_eq!(s.count("AgentHired"), 0, "a refused hire was recorded");

    // Hired while no daemon ran (nobody asked the engine): the daemon cannot start it and
    // says why in `agents`, trying again with its backoff.
    s.stop();
    s.ok(&["hire", "--team", "lab", "--name", "huge", "--cpus", "1000"]);
    s.start();
    wait_for("the reason to be shown", Duration::from_secs(30), || {
        s.agent("huge")["status"]
            .as_str()
            .is_some_and(|st| st.starts_with("hired; cannot start: the agent asks for 1000 CPUs"))
    });
    assert_eq!(s.count("AgentStarted"), 0);
}

#[test]
fn a_stop_right_after_a_hire_wins_over_the_start_under_way() {
    let s = lab();
    for i in 0..3 {
        let name = format!("quick-{i}");
        s.ok(&["hire", "--team", "lab", "--name", &name]);
        s.ok(&["stop", &format!("lab/{name}")]);
    }
    std::thread::sleep(Duration::from_secs(3));
    for i in 0..3 {
        let a = s.agent(&format!("quick-{i}"));
        assert_eq!(a["status"], "stopped (on request)", "{a}");
        let c = a["container"].as_str().unwrap();
        assert!(
            !c.starts_with("up"),
            "quick-{i} runs although it was stopped: {c}"
        );
    }
}

#[test]
fn a_namespace_belongs_to_one_data_directory() {
    let s = lab();
    s.hire("mine", &[]);
    // Another data directory in the same namespace would remove `mine` as unknown: refused.
    let tmp = tempfile::tempdir().unwrap();
    let other = tmp.path().join("data");
    common::ok_in(&other, &["init"]);
    let err = serve_refused(&other, &s.ns, &[]);
    assert!(
        err.contains(&format!(
            "is driven by the data directory {}",
            s.dir.display()
        )),
        "{err}"
    );
    // Without the lease (removed from outside), the containers it does not know still refuse
    // it, and the running daemon claims its lease again.
    let lease = format!("roster-{}-lease", s.ns);
    assert!(docker(&["volume", "rm", &lease]).status.success());
    let err = serve_refused(&other, &s.ns, &[]);
    assert!(err.contains("does not know"), "{err}");
    let holder = || {
        let out = docker(&[
            "volume",
            "inspect",
            "-f",
            "{{index .Labels \"roster.lease.dir\"}}",
            &lease,
        ]);
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    wait_for("the lease claimed again", Duration::from_secs(30), || {
        holder() == s.dir.display().to_string()
    });
    s.wait_up("mine");
    // And the first data directory keeps its namespace.
    assert_eq!(
        std::fs::read_to_string(s.dir.join("namespace"))
            .unwrap()
            .trim(),
        s.ns
    );
}

/// `roster --json verify` of `s`: the verdict's object.
fn verified(s: &Served) -> Value {
    serde_json::from_str(&s.ok(&["--json", "verify"])).unwrap()
}

#[test]
fn the_daemon_signs_the_head_on_its_cadence_when_it_stops_and_on_demand() {
    // A cadence so slow that only a stop (or a command that asks) signs.
    let slow = "[signing]\nevery_events = 1000000\nevery_secs = 86400\n";
    let mut s = Served::configured(format!("t{:x}", common::rand_u32()), &[], Some(slow));
    let key = verified(&s)["key"].clone();
    assert!(key.is_string(), "`init` made the key: {key}");
    s.ok(&["team", "create", "lab"]);
    s.ok(&["team", "create", "ops"]);
    let v = verified(&s);
    assert_eq!(
        (v["unsigned"].clone(), v["key"].clone()),
        (2.into(), key.clone())
    );
    // A clean stop signs what it leaves.
    s.stop();
    let v = verified(&s);
    assert_eq!(
        (v["signed_to"].clone(), v["unsigned"].clone()),
        (1.into(), 0.into())
    );
    // Every second: what a command appends through the daemon is signed soon after.
    std::fs::write(
        s.dir.join("roster.toml"),
        "[signing]\nevery_events = 1000\nevery_secs = 1\n",
    )
    .unwrap();
    s.start();
    s.ok(&["team", "create", "later"]);
    wait_for(
        "the daemon to sign the head",
        Duration::from_secs(10),
        || verified(&s)["unsigned"] == 0,
    );
    // On demand, through the daemon, with the same key; an export carries heads to its end.
    let head: Value = serde_json::from_str(&s.ok(&["--json", "head"])).unwrap();
    assert_eq!(
        (head["seq"].clone(), head["public_key"].clone()),
        (2.into(), key)
    );
    let export = s.ok(&["export"]);
    let last: Value = serde_json::from_str(export.lines().last().unwrap()).unwrap();
    assert_eq!(last["signed_head"]["seq"], 2);
}

/// `roster serve` on `dir` in namespace `ns`, with `extra` flags, expected to be refused: its
/// stderr. One still running after 30 s was not refused: killed, and the test fails.
fn serve_refused(dir: &Path, ns: &str, extra: &[&str]) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_roster"))
        .arg("--data-dir")
        .arg(dir)
        .args(["serve", "--ns", ns, "--agent-binary"])
        .arg(agent_binary())
        .args(extra)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "roster serve {extra:?} on {} was not refused",
                dir.display()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A second daemon on one data directory is refused naming the first; a copy of the data
/// directory (an import of its export, whose log knows the same agents) cannot drive the same
/// namespace while the first holds it — nor take it over while the first runs — and takes it
/// over, adopting its agents, once the first is stopped and the operator says so; the first
/// then is refused in turn.
#[test]
fn one_namespace_is_driven_by_one_data_directory_and_one_daemon() {
    let mut s = lab();
    s.hire("mine", &[]);
    let container = s.agent("mine")["container"].clone();
    let err = serve_refused(&s.dir, &s.ns, &[]);
    assert!(
        err.contains(&format!("roster serve already runs on {}", s.dir.display()))
            && err.contains(&format!("(pid {})", s.pid())),
        "{err}"
    );

    let tmp = tempfile::tempdir().unwrap();
    let export = tmp.path().join("log.jsonl");
    s.ok(&["export", export.to_str().unwrap()]);
    let copy = tmp.path().join("copy");
    common::ok_in(&copy, &["import", export.to_str().unwrap()]);
    std::fs::write(copy.join("roster.toml"), "[agent]\ndisk_mib = 64\n").unwrap();
    let held = format!("is driven by the data directory {}", s.dir.display());
    for extra in [&[][..], &["--take-over"][..]] {
        let err = serve_refused(&copy, &s.ns, extra);
        assert!(err.contains(&held), "{extra:?}: {err}");
        assert!(
            err.contains(&format!("whose daemon runs (pid {})", s.pid())),
            "{err}"
        );
    }
    s.wait_up("mine");

    s.stop();
    let err = serve_refused(&copy, &s.ns, &[]);
    assert!(err.contains(&held) && err.contains("--take-over"), "{err}");
    let mut taken = Served::on(tmp, copy.clone(), s.ns.clone(), &["--take-over"]);
    taken.wait_up("mine");
    assert_eq!(
        taken.agent("mine")["container"],
        container,
        "the copy adopted the running container"
    );

    let err = serve_refused(&s.dir, &s.ns, &[]);
    assert!(
        err.contains(&format!(
            "is driven by the data directory {}",
            copy.display()
        )) && err.contains(&format!("(pid {})", taken.pid())),
        "{err}"
    );

    // A daemon whose lease another takes (from another host, say) stops driving the
    // namespace: it exits, failed, within its next look.
    let lease = format!("roster-{}-lease", taken.ns);
    assert!(docker(&["volume", "rm", &lease]).status.success());
    let ns_label = format!("roster.ns={}", taken.ns);
    let made = docker(&[
        "volume",
        "create",
        "--label",
        &ns_label,
        "--label",
        "roster.lease.holder=00000000000000000000000000000000",
        "--label",
        "roster.lease.dir=/elsewhere",
        "--label",
        "roster.lease.host=another-host",
        &lease,
    ]);
    assert!(made.status.success());
    wait_for("the daemon to stop", Duration::from_secs(30), || {
        taken.exited().is_some()
    });
    assert!(!taken.exited().unwrap().success());
}
