//! What the end-to-end tests of `roster serve` share: a daemon in a data directory and
//! namespace of its own on the real Docker engine ([`Served`]), and a client of an agent's
//! gateway socket ([`Gateway`]).
//!
//! Needs a Docker engine and the static `roster-agent` (`ROSTER_AGENT_BINARY`); `scripts/test`
//! provides both. Without them these tests fail, loudly: they never pass by skipping.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic, dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The static roster-agent, or a loud failure saying how to get one.
pub fn agent_binary() -> PathBuf {
    let p = std::env::var_os("ROSTER_AGENT_BINARY").unwrap_or_else(|| {
        panic!(
            "ROSTER_AGENT_BINARY is not set: run scripts/test (it builds the static roster-agent)"
        )
    });
    PathBuf::from(p)
}

pub fn docker(args: &[&str]) -> Output {
    Command::new("docker")
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("Docker engine required (docker {args:?}: {e}): run scripts/setup")
        })
}

/// A `roster serve` in a data directory and namespace of its own; stopped, and everything it
/// made in the engine removed, on drop.
pub struct Served {
    _tmp: tempfile::TempDir,
    /// The data directory.
    pub dir: PathBuf,
    /// The namespace.
    pub ns: String,
    /// More arguments for `roster serve` (like `--bus nats://…`).
    pub serve_args: Vec<String>,
    child: Option<Child>,
    /// Where its agents' home disks are kept, when not in the data directory.
    homes: Option<tempfile::TempDir>,
}

impl Served {
    pub fn new() -> Self {
        Self::with(format!("t{:x}", rand_u32()), &[])
    }

    pub fn in_ns(ns: String) -> Self {
        Self::with(ns, &[])
    }

    /// A daemon in namespace `ns`, started with `serve_args` too.
    pub fn with(ns: String, serve_args: &[&str]) -> Self {
        Self::configured(ns, serve_args, None)
    }

    /// A daemon in namespace `ns`, started with `serve_args` and, when given, this
    /// `DATA/roster.toml` (else one giving agents 64 MiB homes).
    pub fn configured(ns: String, serve_args: &[&str], config: Option<&str>) -> Self {
        let info = docker(&["info", "--format", "{{.ServerVersion}}"]);
        assert!(
            info.status.success(),
            "Docker engine required: run scripts/setup ({})",
            String::from_utf8_lossy(&info.stderr)
        );
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("data");
        let mut s = Served::unstarted(tmp, dir, ns, serve_args, None);
        s.ok(&["init"]);
        // Homes are allocated whole: the tests' fleets (a hundred agents in the load test) get
        // the smallest, unless a test configures its own.
        let text = config.unwrap_or("[agent]\ndisk_mib = 64\n");
        std::fs::write(s.dir.join("roster.toml"), text).unwrap();
        s.start();
        s
    }

    pub fn start(&mut self) {
        assert!(self.child.is_none());
        let child = Command::new(env!("CARGO_BIN_EXE_roster"))
            .arg("--data-dir")
            .arg(&self.dir)
            .args(["serve", "--ns", &self.ns])
            .arg("--agent-binary")
            .arg(agent_binary())
            .args(&self.serve_args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start roster serve");
        self.child = Some(child);
        let sock = self.dir.join("admin.sock");
        wait_for("the admin socket", Duration::from_secs(60), || {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                panic!("roster serve exited: {status}");
            }
            std::os::unix::net::UnixStream::connect(&sock).is_ok()
        });
    }

    /// SIGTERM, as an operator would stop it; waits for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
            panic!("roster serve did not stop within 30 s of SIGTERM");
        }
    }

    /// The daemon's exit status, once it has exited on its own.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// SIGKILL: the daemon dies with no chance to clean up (its agents' containers stay).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    pub fn run(&self, args: &[&str]) -> Output {
        roster_in(&self.dir, args)
    }

    pub fn ok(&self, args: &[&str]) -> String {
        ok_in(&self.dir, args)
    }

    /// `roster exec AGENT -- CMD…`: its stdout.
    pub fn exec(&self, agent: &str, cmd: &[&str]) -> String {
        let mut args = vec!["exec", agent, "--"];
        args.extend_from_slice(cmd);
        self.ok(&args)
    }

    pub fn agent(&self, name: &str) -> Value {
        self.ok(&["--json", "agents", "--all"])
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .find(|a| a["name"] == name)
            .unwrap_or_else(|| panic!("no agent {name}"))
    }

    pub fn wait_up(&self, name: &str) {
        wait_for(
            &format!("{name}'s container to run"),
            Duration::from_secs(60),
            || {
                self.agent(name)["container"]
                    .as_str()
                    .is_some_and(|c| c.starts_with("up"))
            },
        );
    }

    /// `roster --json ARGS`: one value per line.
    pub fn json(&self, args: &[&str]) -> Vec<Value> {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        self.ok(&all)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    pub fn events(&self) -> Vec<Value> {
        self.json(&["log"])
    }

    /// How many events of `kind` the log holds.
    pub fn count(&self, kind: &str) -> usize {
        self.events()
            .iter()
            .filter(|e| e["event"].get(kind).is_some())
            .count()
    }

    pub fn hire(&self, name: &str, extra: &[&str]) {
        self.hire_into("lab", name, extra);
    }

    /// Hires `name` into `team` and waits until its container runs; its id.
    pub fn hire_into(&self, team: &str, name: &str, extra: &[&str]) -> String {
        let mut args = vec!["hire", "--team", team, "--name", name];
        args.extend_from_slice(extra);
        self.ok(&args);
        self.wait_up(name);
        self.agent(name)["id"].as_str().unwrap().to_owned()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let label = format!("label=roster.ns={}", self.ns);
        let ids = docker(&["ps", "-aq", "--filter", &label]);
        for id in String::from_utf8_lossy(&ids.stdout).split_whitespace() {
            docker(&["rm", "-f", id]);
        }
        let vols = docker(&["volume", "ls", "-q", "--filter", &label]);
        for v in String::from_utf8_lossy(&vols.stdout).split_whitespace() {
            docker(&["volume", "rm", "-f", v]);
        }
        // Home disks hold their space while attached, even once deleted.
        roster_sandbox::disk::detach_under(&self.dir);
        if let Some(homes) = &self.homes {
            roster_sandbox::disk::detach_under(homes.path());
        }
    }
}

/// `roster ARGS` on data directory `dir`, as the operator `tester`: through its daemon when one
/// runs, else on the store itself. A `ROSTER_JSON` or `ROSTER_BUS` of the test's own
/// environment is not passed on.
pub fn roster_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_roster"))
        .arg("--data-dir")
        .arg(dir)
        .arg("--as")
        .arg("tester")
        .args(args)
        .env_remove("ROSTER_JSON")
        .env_remove("ROSTER_BUS")
        .output()
        .expect("run roster")
}

/// [`roster_in`] that must succeed: its stdout.
pub fn ok_in(dir: &Path, args: &[&str]) -> String {
    let out = roster_in(dir, args);
    assert!(
        out.status.success(),
        "roster {args:?} failed ({:?}): {}{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// [`roster_in`] of a command that must fail with `code`; its stdout and stderr together.
pub fn fails_in(dir: &Path, args: &[&str], code: i32) -> String {
    let out = roster_in(dir, args);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(code), "roster {args:?}: {text}");
    text
}

/// The reliability suite's long form (`scripts/reliability`, `ROSTER_LONG=1`): more rounds,
/// more agents, more cases. The short form runs in CI.
pub fn long() -> bool {
    std::env::var_os("ROSTER_LONG").is_some_and(|v| !v.is_empty() && v != "0")
}

/// `short` in CI's run, `long` in the long form.
pub fn scaled(short: usize, long_form: usize) -> usize {
    if long() {
        long_form
    } else {
        short
    }
}

pub fn rand_u32() -> u32 {
    let mut b = [0u8; 4];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut b))
        .unwrap();
    u32::from_le_bytes(b)
}

pub fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("waited {limit:?} for {what}");
}

/// A client of one agent's gateway socket, as the agent's own process would use it (the test
/// runs as root on the host, so it can open the socket the daemon binds for the container).
pub struct Gateway {
    reader: std::io::BufReader<std::os::unix::net::UnixStream>,
    writer: std::os::unix::net::UnixStream,
    next_id: u64,
    pushes: std::collections::VecDeque<Value>,
}

impl Gateway {
    /// Connects to the socket of the agent with id `agent` in `s`'s data directory.
    pub fn connect(s: &Served, agent: &str) -> Gateway {
        let path = s.dir.join("gateways").join(agent).join("gateway.sock");
        let stream = std::os::unix::net::UnixStream::connect(&path)
            .unwrap_or_else(|e| panic!("cannot connect to {}: {e}", path.display()));
        Gateway {
            reader: std::io::BufReader::new(stream.try_clone().unwrap()),
            writer: stream,
            next_id: 1,
            pushes: std::collections::VecDeque::new(),
        }
    }

    fn line(&mut self, timeout: Duration) -> Option<Value> {
        use std::io::BufRead;
        self.reader
            .get_ref()
            .set_read_timeout(Some(timeout))
            .unwrap();
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) => panic!("the gateway closed the connection"),
            Ok(_) => Some(serde_json::from_str(&line).unwrap()),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                None
            }
            Err(e) => panic!("reading the gateway: {e}"),
        }
    }

    /// Calls `method` with `params`: the `ok` value, or the `error` object.
    pub fn call(&mut self, method: &str, params: Value) -> Result<Value, Value> {
        let id = self.send(method, params);
        self.answer(id, Duration::from_secs(30))
    }

    /// Sends a request without waiting for its answer; its id (for [`Gateway::answer`]).
    pub fn send(&mut self, method: &str, params: Value) -> u64 {
        self.try_send(method, params).unwrap()
    }

    /// [`Gateway::send`], failing when the gateway closed the connection.
    pub fn try_send(&mut self, method: &str, params: Value) -> std::io::Result<u64> {
        use std::io::Write;
        let id = self.next_id;
        self.next_id += 1;
        let mut req = serde_json::json!({ "id": id, "method": method });
        if !params.is_null() {
            req["params"] = params;
        }
        writeln!(self.writer, "{req}")?;
        Ok(id)
    }

    /// The answer to request `id` (the next answer on this connection), waiting at most
    /// `limit`: the `ok` value, or the `error` object.
    pub fn answer(&mut self, id: u64, limit: Duration) -> Result<Value, Value> {
        loop {
            let v = self
                .line(limit)
                .unwrap_or_else(|| panic!("no answer to request {id} within {limit:?}"));
            if let Some(p) = v.get("push") {
                self.pushes.push_back(p.clone());
                continue;
            }
            assert_eq!(v["id"], id, "an answer to another request: {v}");
            return match (v.get("ok"), v.get("error")) {
                (Some(ok), None) => Ok(ok.clone()),
                (None, Some(err)) => Err(err.clone()),
                _ => panic!("neither ok nor error: {v}"),
            };
        }
    }

    /// The next line within `timeout`: `Err(())` once the gateway closed the connection.
    pub fn line_unless_closed(&mut self, timeout: Duration) -> Result<Option<Value>, ()> {
        use std::io::BufRead;
        self.reader
            .get_ref()
            .set_read_timeout(Some(timeout.max(Duration::from_millis(1))))
            .unwrap();
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) => Err(()),
            Ok(_) => Ok(Some(serde_json::from_str(&line).unwrap())),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                Ok(None)
            }
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => Err(()),
            Err(e) => panic!("reading the gateway: {e}"),
        }
    }

    /// The next pushed message within `timeout`, if one comes.
    pub fn push(&mut self, timeout: Duration) -> Option<Value> {
        if let Some(p) = self.pushes.pop_front() {
            return Some(p);
        }
        let v = self.line(timeout.max(Duration::from_millis(1)))?;
        match v.get("push") {
            Some(p) => Some(p.clone()),
            None => panic!("an answer nobody asked for: {v}"),
        }
    }
}

/// The event lines of a `roster export` (what a subscriber prints), without the signed heads
/// interleaved between them.
pub fn event_lines(export: &str) -> Vec<String> {
    export
        .lines()
        .filter(|l| !l.starts_with(r#"{"signed_head""#))
        .map(str::to_owned)
        .collect()
}

/// Restarts dockerd the way this project's scripts start it (or through systemd where it runs
/// it), and waits until it answers again.
pub fn restart_engine() {
    with_engine_stopped(|| {});
}

/// Kills dockerd (SIGKILL: it stops nothing, its containers run on without it), starts it
/// again as [`restart_engine`] does, and waits until it answers: as it comes back, it kills
/// what ran on (Docker without live-restore).
pub fn crash_engine() {
    stopped("KILL", || {});
}

/// Stops dockerd, runs `f` while it is away, then starts it again the way this project's
/// scripts start it (or through systemd where it runs it), and waits until it answers. The
/// engine is started again even when `f` fails: the other tests on the machine need it.
pub fn with_engine_stopped(f: impl FnOnce()) {
    let outcome = stopped("TERM", move || {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
    });
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

/// Sends dockerd `signal`, waits for it to exit, runs `f`, starts it again.
fn stopped<T>(signal: &str, f: impl FnOnce() -> T) -> T {
    let result;
    let systemd = Command::new("systemctl")
        .args(["is-active", "--quiet", "docker"])
        .status()
        .is_ok_and(|s| s.success());
    if systemd {
        // The socket unit too: a client's connection would start the engine again.
        if signal != "TERM" {
            assert!(Command::new("systemctl")
                .args(["kill", "--signal", signal, "docker"])
                .status()
                .unwrap()
                .success());
        }
        assert!(Command::new("systemctl")
            .args(["stop", "docker.socket", "docker"])
            .status()
            .unwrap()
            .success());
        result = f();
        assert!(Command::new("systemctl")
            .args(["start", "docker.socket", "docker"])
            .status()
            .unwrap()
            .success());
    } else {
        let pid = String::from_utf8(
            Command::new("pgrep")
                .args(["-x", "dockerd"])
                .output()
                .unwrap()
                .stdout,
        )
        .unwrap();
        let pid = pid
            .split_whitespace()
            .next()
            .expect("dockerd runs")
            .to_string();
        Command::new("kill")
            .args([&format!("-{signal}"), &pid])
            .status()
            .unwrap();
        wait_for("dockerd to exit", Duration::from_secs(60), || {
            !Path::new(&format!("/proc/{pid}")).exists()
        });
        result = f();
        let log = std::fs::File::create("/var/log/roster-dockerd.log").unwrap();
        // Left running on purpose, like scripts/setup leaves it: the engine outlives the test,
        // in a session of its own so that nothing that ends the test's process group ends it.
        Command::new("setsid")
            .args(["-f", "dockerd"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .status()
            .expect("start dockerd");
    }
    wait_for("dockerd to answer again", Duration::from_secs(60), || {
        docker(&["info"]).status.success()
    });
    result
}

/// A tool provider program in `dir`: it writes the call it got to `dir/call.json` and answers
/// `answer`. Its path, for an `exec` in roster.toml.
pub fn recording_provider(dir: &Path, answer: &str) -> String {
    let script = dir.join("provider.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\ncat > '{}/call.json'\nprintf '%s' '{answer}'\n",
            dir.display()
        ),
    )
    .unwrap();
    script.display().to_string()
}

/// The last call the [`recording_provider`] in `dir` got.
pub fn last_call(dir: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(dir.join("call.json")).expect("the provider ran"))
        .unwrap()
}

impl Served {
    /// A daemon on `dir`, a data directory already made in `tmp` (an import), started with
    /// `serve_args`.
    pub fn on(tmp: tempfile::TempDir, dir: PathBuf, ns: String, serve_args: &[&str]) -> Self {
        let mut s = Served::unstarted(tmp, dir, ns, serve_args, None);
        s.start();
        s
    }

    /// A daemon on `dir` (in `tmp`) not started yet.
    fn unstarted(
        tmp: tempfile::TempDir,
        dir: PathBuf,
        ns: String,
        serve_args: &[&str],
        homes: Option<tempfile::TempDir>,
    ) -> Self {
        Served {
            _tmp: tmp,
            dir,
            ns,
            serve_args: serve_args.iter().map(|s| s.to_string()).collect(),
            child: None,
            homes,
        }
    }

    /// A daemon like [`Served::configured`] whose data directory is made inside `tmp` (say, a
    /// directory on a filesystem of the test's choosing), removed on drop with it.
    ///
    /// Its agents' home disks are kept outside `tmp` (which may be a small filesystem filled
    /// on purpose), in a directory removed with it.
    pub fn in_tmp(tmp: tempfile::TempDir, ns: String) -> Self {
        let dir = tmp.path().join("data");
        let homes = tempfile::tempdir().unwrap();
        let mut s = Served::unstarted(tmp, dir, ns, &[], Some(homes));
        s.ok(&["init"]);
        let config = format!(
            "[agent]\ndisk_mib = 64\n\n[serve]\nhomes = {:?}\n",
            s.homes.as_ref().unwrap().path().display().to_string()
        );
        std::fs::write(s.dir.join("roster.toml"), config).unwrap();
        s.start();
        s
    }
}

impl Served {
    /// The process id of the running `roster serve`.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("roster serve is running").id()
    }
}

/// The resident set of process `pid`, in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmRSS in /proc/{pid}/status"))
}

/// Decides `commands` as `actor`, each on the world as the previous ones left it, and appends
/// all their events in one commit to the store in `dir` (its daemon stopped): a big history
/// written at once. The entropy is seeded with `seed`.
pub fn commit_at_once(
    dir: &Path,
    actor: &roster_core::actor::Actor,
    seed: u64,
    commands: impl IntoIterator<Item = roster_core::command::Command>,
) {
    use roster_core::command::{decide, Decision};
    let log = std::sync::Arc::new(roster_store::SledLog::open(&dir.join("log")).unwrap());
    let mut ledger = roster_core::ledger::Ledger::open(log).unwrap();
    let now = roster_core::time::Timestamp::from_millis(ledger.world().last_at().as_millis() + 1);
    let mut entropy = roster_core::id::CountingEntropy::new(seed);
    let mut events = Vec::new();
    let mut team = None;
    for command in commands {
        let d = decide(ledger.world(), command, actor, now, &mut entropy).unwrap();
        team = Some(d.team);
        events.extend(d.events);
    }
    let team = team.expect("at least one command");
    let batch = Decision {
        team,
        expected_version: ledger.world().team_version(team),
        events,
    };
    ledger.commit(batch, actor, now).unwrap();
}
